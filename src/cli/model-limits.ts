/**
 * What a model says it can do, checked before any model work: the sizes its manifest declares (a model trained at
 * 64×64 gives a smeared blob at 128×128) and, for a closed-world model, the words it knows. Outside them a job is
 * refused (sizes) or warned about (words); `--allow-any-size` turns the refusal into a warning and
 * `--strict-prompt` the warning into an error.
 */
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Model } from '../model/manifest.js';
import type { GenerateSettings } from '../pipeline/generate.js';
import { promptProblems } from '../text/prompt-vocabulary.js';

/** Warns about (or with `strict`, refuses) a prompt the model's vocabulary does not cover; `fields` go with the warning. */
export function checkPromptVocabulary(prompt: string, model: Model, strict: boolean, logger: Logger, fields: object = {}): void {
  if (model.vocabulary === undefined) return;
  const { messages } = promptProblems(prompt, model.vocabulary);
  if (messages.length === 0) return;
  if (strict) throw new SoraError('INPUT', `prompt: ${messages.join('; ')} (--strict-prompt)`);
  for (const message of messages) logger.warn(fields, `prompt: ${message}`);
}

/** Refuses (or with `allowAny`, warns about) a resolution or frame count outside the manifest's declared choices. */
export function checkDeclaredSize(settings: GenerateSettings, model: Model, allowAny: boolean, logger: Logger, fields: object = {}): void {
  const { resolutions, numFramesChoices } = model.defaults;
  const resolution = `${settings.width}x${settings.height}`;
  const problems: string[] = [];
  if (!resolutions.includes(resolution)) {
    problems.push(`--resolution: ${model.name} was made for ${resolutions.join(', ')}, not ${resolution}`);
  }
  if (!numFramesChoices.includes(settings.numFrames)) {
    problems.push(`--num-frames: ${model.name} was made for ${numFramesChoices.join(', ')} frames, not ${settings.numFrames}`);
  }
  if (problems.length === 0) return;
  const source = `(${displayPath(model.manifestPath)}, defaults)`;
  if (!allowAny) throw new SoraError('USAGE', `${problems.join('; ')} ${source}; --allow-any-size tries it anyway`);
  for (const problem of problems) logger.warn(fields, `${problem} ${source}: trying anyway (--allow-any-size); expect a poor video`);
}
