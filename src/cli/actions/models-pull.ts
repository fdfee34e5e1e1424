/**
 * `models pull` (download the published checkpoints into the Hugging Face cache, then convert them) and
 * `models convert` (checkpoint folders → a model folder), the two halves of getting real weights.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod';
import { checkpointFolders, type CheckpointFolders } from '../../convert/checkpoint-folders.js';
import { checkOutput, convertModel, DTYPES, FORMATS, type ConvertJob } from '../../convert/convert-model.js';
import { checkpointFiles, MODEL_IDS, OPENSORA_12, weightFiles, type RepoPin } from '../../convert/opensora-recipe.js';
import { COREMLTOOLS, CONVERTER_MODULES, findPython } from '../../convert/python.js';
import { displayPath } from '../../display-path.js';
import { ERROR_EXIT_CODES, SoraError } from '../../errors.js';
import { checkDiskSpace, type SpaceNeed } from '../../hub/disk-space.js';
import { HubClient } from '../../hub/hub-client.js';
import { hubSettings } from '../../hub/hub-settings.js';
import { fetchSnapshot, planSnapshot, type SnapshotPlan } from '../../hub/snapshot.js';
import { COMPONENTS, type Component } from '../../model/contract.js';
import type { Model } from '../../model/manifest.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { formatBytes } from '../format.js';
import { convertProgress, downloadProgress } from '../transfer-progress.js';

const ConvertFlagsBase = z.object({
  format: z.enum(FORMATS, `must be one of: ${FORMATS.join(', ')}`),
  dtype: z.enum(DTYPES, `must be one of: ${DTYPES.join(', ')}`),
  python: z.string().min(1, 'must name a Python interpreter').optional(),
  overwrite: z.boolean().optional(),
});

const PullFlags = ConvertFlagsBase.extend({
  model: z.enum(MODEL_IDS, `must be one of: ${MODEL_IDS.join(', ')}`),
  output: z.string().min(1, 'must name a folder').optional(),
  downloadOnly: z.boolean().optional(),
  revision: z.array(z.string().regex(/^([^=\s]+=)?[^=\s]+$/, 'must be REVISION or REPO=REVISION')),
});

const ConvertFlags = ConvertFlagsBase.extend({
  output: z.string().min(1, 'must name a folder'),
  name: z.string().min(1, 'must not be empty').optional(),
  stdit: z.string().min(1).optional(),
  t5: z.string().min(1).optional(),
  vae: z.string().min(1).optional(),
  tokenizer: z.string().min(1).optional(),
  configStdit: z.string().min(1).optional(),
  configT5: z.string().min(1).optional(),
  configVae: z.string().min(1).optional(),
});

/** SIGINT/SIGTERM abort the work in progress (a download keeps what it has, to resume); a second one exits. */
function interruptible(message: string): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (): void => {
    if (controller.signal.aborted) process.exit(ERROR_EXIT_CODES.INTERRUPTED);
    controller.abort(new SoraError('INTERRUPTED', message));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The pins after --revision: `REV` for all repositories, `REPO=REV` or `COMPONENT=REV` for one. */
function pinsWith(revisions: readonly string[]): Record<Component, RepoPin> {
  const pins = { ...OPENSORA_12 };
  for (const entry of revisions) {
    const [key, revision] = entry.includes('=') ? (entry.split('=') as [string, string]) : [undefined, entry];
    const targets = COMPONENTS.filter((c) => key === undefined || key === c || key === OPENSORA_12[c].repo);
    if (targets.length === 0) {
      const known = COMPONENTS.map((c) => OPENSORA_12[c].repo).join(', ');
      throw new SoraError('USAGE', `--revision: unknown repository "${key}" (one of ${known}, or t5, stdit, vae)`);
    }
    for (const component of targets) pins[component] = { ...pins[component], revision };
  }
  return pins;
}

/** About what the converted folder takes: the checkpoints' weights, halved for float16 storage. */
function outputEstimate(weightBytes: number, dtype: ConvertJob['dtype']): number {
  return dtype === 'float16' ? weightBytes / 2 : weightBytes;
}

function progressStream(context: CliContext): NodeJS.WriteStream | undefined {
  return context.options.quiet ? undefined : process.stderr;
}

async function converterPython(format: ConvertJob['format'], flag: string | undefined, purpose: string): Promise<string> {
  const python = await findPython({ purpose, modules: CONVERTER_MODULES, flag });
  if (format === 'onnx') return python;
  return findPython({ purpose: `${purpose} --format coreml`, modules: [...CONVERTER_MODULES, COREMLTOOLS], flag: python });
}

async function runConversion(job: Omit<ConvertJob, 'onEvent' | 'logger'>, context: CliContext): Promise<Model> {
  const stream = progressStream(context);
  const display = stream && convertProgress(stream);
  try {
    return await convertModel({ ...job, logger: context.logger, ...(display && { onEvent: (event) => display.event(event) }) });
  } finally {
    display?.finish();
  }
}

function modelLine(model: Model): string {
  const files = new Map([...model.tokenizer.files, ...model.blocks.flatMap((b) => b.files)].map((f) => [f.path, f.bytes]));
  const bytes = [...files.values()].reduce((sum, n) => sum + n, 0);
  return `wrote ${displayPath(model.dir)}: ${model.name}, ${model.blocks.length} blocks, ${formatBytes(bytes)}`;
}

function originsLine(folders: CheckpointFolders): string {
  const origin = (component: Component): string => {
    const { repo, revision, commit, folder } = folders[component].origin;
    if (repo === undefined) return `${component} ${folder}`;
    return `${repo}@${commit!.slice(0, 12)}${revision !== commit ? ` (${revision})` : ''}`;
  };
  return `from ${COMPONENTS.map(origin).join(', ')}`;
}

async function download(plans: readonly SnapshotPlan[], client: HubClient, settings: Awaited<ReturnType<typeof hubSettings>>, context: CliContext, signal: AbortSignal): Promise<void> {
  const missing = plans.reduce((sum, plan) => sum + plan.files.reduce((s, f) => s + f.missing, 0), 0);
  const stream = progressStream(context);
  const display = stream && downloadProgress(stream, missing);
  const label = (plan: SnapshotPlan, path: string): string => `${plan.repo}/${path}`;
  try {
    for (const plan of plans) {
      await fetchSnapshot(client, settings, plan, {
        signal,
        onFileStart: (p, file) => display?.fileStart(label(p, file.path), file.bytes, file.bytes - file.missing),
        onBytes: (p, file, bytes) => display?.bytes(label(p, file.path), bytes),
        onFileDone: (p, file) => display?.fileDone(label(p, file.path)),
        onWait: (p, file, pid) => display?.waiting(label(p, file.path), pid),
      });
    }
  } finally {
    display?.finish();
  }
}

/** What `models pull` runs (commands/models.ts defines its options). */
export async function pullAction(model: string, options: Record<string, unknown>, self: Command): Promise<void> {
  await pull(model, options, cliContext(self));
}

/** What `models convert` runs. */
export async function convertAction(dirs: string[], options: Record<string, unknown>, self: Command): Promise<void> {
  await convert(dirs, options, cliContext(self));
}

async function pull(model: string, options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(PullFlags, { ...options, model });
  const pins = pinsWith(flags.revision);
  const output = resolve(flags.output ?? (flags.format === 'coreml' ? `${flags.model}-coreml` : flags.model));
  const convert = flags.downloadOnly !== true;
  const interruption = interruptible('interrupted; run the same command again to resume the download where it stopped');
  try {
    let python: string | undefined;
    if (convert) {
      await checkOutput(output, flags.overwrite === true);
      python = await converterPython(flags.format, flags.python, 'models pull');
    }
    const settings = await hubSettings();
    const client = new HubClient(settings);
    const plans: SnapshotPlan[] = [];
    for (const component of COMPONENTS) {
      const pin = pins[component];
      plans.push(await planSnapshot(client, settings, { ...pin, pick: (files) => checkpointFiles(component, pin, files) }));
    }
    const missing = plans.reduce((sum, plan) => sum + plan.files.reduce((s, f) => s + f.missing, 0), 0);
    const weights = plans.reduce((sum, plan) => {
      const names = new Set(weightFiles(plan.files.map((f) => f.path)));
      return sum + plan.files.filter((f) => names.has(f.path)).reduce((s, f) => s + f.bytes, 0);
    }, 0);
    const needs: SpaceNeed[] = [{ path: settings.cacheDir, bytes: missing, what: 'the download' }];
    if (convert) needs.push({ path: output, bytes: outputEstimate(weights, flags.dtype), what: 'the converted model' });
    await checkDiskSpace(needs);
    context.status(`${formatBytes(missing)} to download into ${displayPath(settings.cacheDir)}`);
    await download(plans, client, settings, context, interruption.signal);
    const folders = Object.fromEntries(
      plans.map((plan, i) => {
        const component = COMPONENTS[i]!;
        const origin = { component, repo: plan.repo, revision: plan.revision, commit: plan.commit };
        return [component, { component, dir: plan.folder, origin }];
      }),
    ) as unknown as CheckpointFolders;
    if (!convert) {
      const dirs = COMPONENTS.map((c) => folders[c].dir);
      const text = [
        `downloaded ${originsLine(folders)}:`,
        ...dirs.map((dir) => `  ${dir}`),
        `convert with: ondevice-sora models convert ${dirs.join(' ')} -o ${displayPath(output)}`,
      ].join('\n');
      context.result(text, { downloaded: missing, checkpoints: COMPONENTS.map((c) => ({ ...folders[c].origin, dir: folders[c].dir })) });
      return;
    }
    const converted = await runConversion(
      { folders, output, format: flags.format, dtype: flags.dtype, overwrite: flags.overwrite === true, python: python!, configs: {}, signal: interruption.signal },
      context,
    );
    context.result(`${modelLine(converted)} (${originsLine(folders)})`, { dir: converted.dir, name: converted.name, blocks: converted.blocks.length, downloaded: missing, checkpoints: converted.checkpoints });
  } finally {
    interruption.dispose();
  }
}

async function convert(dirs: string[], options: Record<string, unknown>, context: CliContext): Promise<void> {
  const flags = parseFlags(ConvertFlags, options);
  const output = resolve(flags.output);
  const named = Object.fromEntries(COMPONENTS.flatMap((c) => (flags[c] === undefined ? [] : [[c, flags[c]]])));
  const folders = await checkpointFolders(dirs, named);
  await checkOutput(output, flags.overwrite === true);
  const python = await converterPython(flags.format, flags.python, 'models convert');
  const interruption = interruptible('interrupted; nothing was written');
  try {
    const configs = { stdit: flags.configStdit, t5: flags.configT5, vae: flags.configVae };
    const converted = await runConversion(
      {
        folders,
        output,
        format: flags.format,
        dtype: flags.dtype,
        overwrite: flags.overwrite === true,
        python,
        configs: Object.fromEntries(Object.entries(configs).filter(([, v]) => v !== undefined)),
        signal: interruption.signal,
        ...(flags.name !== undefined && { name: flags.name }),
        ...(flags.tokenizer !== undefined && { tokenizerDir: resolve(flags.tokenizer) }),
      },
      context,
    );
    context.result(`${modelLine(converted)} (${originsLine(folders)})`, { dir: converted.dir, name: converted.name, blocks: converted.blocks.length, checkpoints: converted.checkpoints });
  } finally {
    interruption.dispose();
  }
}
