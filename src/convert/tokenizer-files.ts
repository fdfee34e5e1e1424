/**
 * The fast-tokenizer files a converted model ships (tokenizer.json + tokenizer_config.json), taken from the T5
 * repository: its own tokenizer.json when it has one, else built from its SentencePiece `spiece.model` by our code
 * (DeepFloyd/t5-v1_1-xxl ships only spiece.model). The result is loaded by the runtime's tokenizer before any
 * conversion starts, and must fit the T5 embedding.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import { buildT5TokenizerFiles } from '../text/t5-tokenizer-json.js';
import { PromptTokenizer } from '../text/tokenizer.js';

async function readIfPresent(path: string): Promise<Buffer | undefined> {
  return readFile(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new SoraError('INPUT', `${displayPath(path)}: cannot read: ${errorMessage(error)}`);
  });
}

function parseJsonObject(path: string, bytes: Buffer): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch (error) {
    throw new SoraError('INPUT', `${displayPath(path)}: invalid JSON: ${errorMessage(error)}`);
  }
  throw new SoraError('INPUT', `${displayPath(path)}: not a JSON object`);
}

/** How many ids a tokenizer.json can produce: its vocabulary plus added tokens beyond it. */
function tokenCount(tokenizer: Record<string, unknown>): number {
  const vocab = (tokenizer.model as { vocab?: unknown } | undefined)?.vocab;
  const size = Array.isArray(vocab) ? vocab.length : typeof vocab === 'object' && vocab !== null ? Object.keys(vocab).length : 0;
  const added = Array.isArray(tokenizer.added_tokens) ? (tokenizer.added_tokens as { id?: number }[]) : [];
  return Math.max(size, ...added.map((token) => (token.id ?? -1) + 1));
}

/**
 * Writes tokenizer.json and tokenizer_config.json into `out` from the tokenizer files in `source`; returns how it
 * made them. `vocabSize`: rows of the T5 embedding, which every id must fit.
 */
export async function writeTokenizerFiles(source: string, out: string, vocabSize: number | undefined, logger: Logger): Promise<string> {
  const jsonPath = join(source, 'tokenizer.json');
  const configPath = join(source, 'tokenizer_config.json');
  const spiecePath = join(source, 'spiece.model');
  const json = await readIfPresent(jsonPath);
  const configBytes = await readIfPresent(configPath);
  const config = configBytes === undefined ? undefined : parseJsonObject(configPath, configBytes);
  let tokenizer: Record<string, unknown>;
  let madeFrom: string;
  let outConfig: Record<string, unknown>;
  if (json !== undefined) {
    tokenizer = parseJsonObject(jsonPath, json);
    outConfig = config ?? { tokenizer_class: 'T5Tokenizer', eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' };
    madeFrom = `${displayPath(jsonPath)} (copied)`;
  } else {
    const spiece = await readIfPresent(spiecePath);
    if (spiece === undefined) {
      throw new SoraError('INPUT', `${displayPath(source)}: no tokenizer.json or spiece.model (the T5 repository's tokenizer files)`);
    }
    try {
      const built = buildT5TokenizerFiles(spiece, config);
      tokenizer = built.tokenizer;
      outConfig = built.config;
    } catch (error) {
      throw new SoraError('INPUT', `${displayPath(spiecePath)}: ${errorMessage(error)}`, { cause: error });
    }
    madeFrom = `built from ${displayPath(spiecePath)}`;
  }
  const count = tokenCount(tokenizer);
  if (vocabSize !== undefined && count > vocabSize) {
    throw new SoraError('INPUT', `${displayPath(source)}: the tokenizer has ${count} tokens, more than the ${vocabSize} rows of the T5 embedding (config.json vocab_size)`);
  }
  const files = { tokenizer: join(out, 'tokenizer.json'), config: join(out, 'tokenizer_config.json') };
  await writeFile(files.tokenizer, `${JSON.stringify(tokenizer)}\n`);
  await writeFile(files.config, `${JSON.stringify(outConfig, null, 2)}\n`);
  // What the runtime will do with it, now rather than after an hour of conversion.
  const check = await PromptTokenizer.load(files, { maxLength: 300, padId: 0, eosId: 1 }, logger);
  check.encode('a dog running on a beach');
  return `${madeFrom}, ${count} tokens`;
}
