/**
 * `--shard I/N`: machine I of N takes the prompt lines whose position in the file (0-based, bad lines included)
 * leaves I − 1 when divided by N. The split depends only on the file, so N machines given the same file and
 * 1/N … N/N together cover every prompt exactly once, and a rerun of one shard takes the same prompts.
 */
import * as z from 'zod';

export interface Shard {
  /** 1-based. */
  readonly index: number;
  readonly count: number;
}

const MESSAGE = 'must be I/N with 1 ≤ I ≤ N, e.g. 2/4';

export const shardFlag = z
  .string()
  .trim()
  .regex(/^\d+\/\d+$/, MESSAGE)
  .transform((text): Shard => {
    const [index = 0, count = 0] = text.split('/').map(Number);
    return { index, count };
  })
  .refine(({ index, count }) => index >= 1 && index <= count && Number.isSafeInteger(count), MESSAGE);

export function inShard(position: number, shard: Shard | undefined): boolean {
  return shard === undefined || position % shard.count === shard.index - 1;
}
