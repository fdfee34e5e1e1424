/**
 * A folder of raw videos with the attributes they should show, as scripts/render_shapes_world.py writes it (the
 * world's own ground truth; with --pairs, two-object scenes) and scripts/reconstruct_shapes_world.py (the same
 * through the VAE): `index.json` and one RGB24 file of frames × height × width × 3 bytes per video. Read for the
 * evaluator's tests and scripts/score-world-videos.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import type { VideoFrames } from './frame-analysis.js';
import type { HeldoutPair, HeldoutPrompt } from './world.js';

const file = z.string().regex(/^[\w.-]+$/, 'must be a file name in the folder');
const ObjectSchema = z.object({ shape: z.string(), colour: z.string(), motion: z.string() });

const IndexSchema = z.object({
  width: z.int().positive(),
  height: z.int().positive(),
  frames: z.int().positive(),
  videos: z.array(
    z.union([
      z.object({ file, prompt: z.string(), background: z.string(), objects: z.tuple([ObjectSchema, ObjectSchema]) }),
      z.object({ file, prompt: z.string(), shape: z.string(), colour: z.string(), background: z.string(), motion: z.string() }),
    ]),
  ),
});

export interface WorldVideo {
  readonly file: string;
  /** A one-object held-out prompt, or a two-object scene (it has `objects`). */
  readonly entry: HeldoutPrompt | HeldoutPair;
  readonly video: VideoFrames;
}

export function isPairEntry(entry: HeldoutPrompt | HeldoutPair): entry is HeldoutPair {
  return 'objects' in entry;
}

export async function readWorldVideos(dir: string): Promise<WorldVideo[]> {
  const index = IndexSchema.parse(JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')));
  const frameBytes = index.width * index.height * 3;
  return Promise.all(
    index.videos.map(async ({ file: name, ...entry }) => {
      const bytes = await readFile(join(dir, name));
      if (bytes.length !== frameBytes * index.frames) throw new Error(`${name}: ${bytes.length} bytes, not ${index.frames} frames of ${index.width}x${index.height}`);
      const frames = Array.from({ length: index.frames }, (_, t) => new Uint8Array(bytes.subarray(t * frameBytes, (t + 1) * frameBytes)));
      return { file: name, entry, video: { width: index.width, height: index.height, frames } };
    }),
  );
}
