import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import * as z from 'zod';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Model } from '../model/manifest.js';

/** Token-level facts from the model's manifest (`tokenizer` section). */
export interface TokenizerSettings {
  readonly maxLength: number;
  readonly padId: number;
  readonly eosId: number;
}

export interface TokenizedPrompt {
  /** [1, maxLength] ids: the prompt's first maxLength−1 ids, EOS, then padding. */
  readonly ids: BigInt64Array;
  /** [1, maxLength] 1 for the valid tokens (EOS included), 0 for padding. */
  readonly mask: Float32Array;
  /** Number of valid tokens, EOS included (L in the block contract). */
  readonly validLength: number;
}

/** The HF fast-tokenizer files, under the names the On-device Sora app expects. */
export interface TokenizerFiles {
  readonly tokenizer: string;
  readonly config: string;
}

/**
 * Files written by older `tokenizers` versions (the authors' published CoreML set ships one) have no `model.type`;
 * their Unigram model is recognised by its vocabulary of [piece, score] pairs, as tokenizers.js does.
 */
const tokenizerJsonSchema = z.looseObject({
  model: z
    .looseObject({ type: z.string().optional(), vocab: z.unknown().optional() })
    .refine((model) => model.type !== undefined || Array.isArray(model.vocab), {
      message: 'has no type and no Unigram vocabulary ([piece, score] pairs) to infer it from',
    }),
});
const tokenizerConfigSchema = z.looseObject({});

export class PromptTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly settings: TokenizerSettings,
    private readonly logger: Logger,
  ) {}

  static async load(files: TokenizerFiles, settings: TokenizerSettings, logger: Logger): Promise<PromptTokenizer> {
    // One after the other, so a broken folder always reports the same file first.
    const json = await readJsonFile(files.tokenizer, tokenizerJsonSchema);
    const config = await readJsonFile(files.config, tokenizerConfigSchema);
    try {
      return new PromptTokenizer(new Tokenizer(json, config), settings, logger);
    } catch (error) {
      const message = `${displayPath(files.tokenizer)}: unusable tokenizer: ${errorMessage(error)}`;
      throw new SoraError('MODEL', message, { cause: error });
    }
  }

  /** The tokenizer a model folder lists in its manifest, with the manifest's token settings. */
  static forModel(model: Pick<Model, 'dir' | 'tokenizer'>, logger: Logger): Promise<PromptTokenizer> {
    return PromptTokenizer.load(PromptTokenizer.filesIn(model.dir, model.tokenizer.files), model.tokenizer, logger);
  }

  /** Ids this tokenizer can produce: one more than the largest id in its vocabulary, added tokens included. */
  get vocabularySize(): number {
    let largest = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) largest = Math.max(largest, id);
    return largest + 1;
  }

  /** The tokenizer files a model folder lists in its manifest (found by file name, wherever they are). */
  static filesIn(dir: string, listed: readonly { readonly path: string }[]): TokenizerFiles {
    const find = (name: string): string => listed.find((file) => basename(file.path) === name)?.path ?? join(dir, name);
    return { tokenizer: find('tokenizer.json'), config: find('tokenizer_config.json') };
  }

  /**
   * Open-Sora's T5 handling: ids without special tokens, the first maxLength−1 kept, EOS appended, right-padded.
   * The mask marks positions (as the HF tokenizer's attention_mask does), not ids ≠ pad, so a literal "<pad>" typed
   * in a prompt stays a valid token, as it does in Open-Sora.
   */
  encode(prompt: string): TokenizedPrompt {
    const { maxLength, padId, eosId } = this.settings;
    const textIds = this.tokenizer.encode(prompt, { add_special_tokens: false }).ids;
    const kept = Math.min(textIds.length, maxLength - 1);
    if (textIds.length > kept) {
      this.logger.warn(
        { tokens: textIds.length, kept },
        `prompt has ${textIds.length} tokens; only the first ${kept} are used`,
      );
    }
    const ids = new BigInt64Array(maxLength).fill(BigInt(padId));
    for (let i = 0; i < kept; i++) ids[i] = BigInt(textIds[i]!);
    ids[kept] = BigInt(eosId);
    const validLength = kept + 1;
    const mask = new Float32Array(maxLength);
    mask.fill(1, 0, validLength);
    return { ids, mask, validLength };
  }
}

async function readJsonFile<T>(path: string, schema: z.ZodType<T>): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const message = `${displayPath(path)}: cannot read tokenizer file: ${errorMessage(error)}`;
    throw new SoraError('MODEL', message, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SoraError('MODEL', `${displayPath(path)}: invalid JSON: ${errorMessage(error)}`, { cause: error });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'top level';
    throw new SoraError('MODEL', `${displayPath(path)}: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
