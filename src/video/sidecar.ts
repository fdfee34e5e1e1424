import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import * as z from 'zod';
import { VERSION } from '../version.js';

/** `out.mp4` → `out.json`, `frames/` → `frames.json`: beside the output, same stem. */
export function sidecarPathFor(output: string): string {
  const trimmed = output.replace(/[/\\]+$/, '');
  const extension = extname(trimmed);
  return `${extension === '' ? trimmed : trimmed.slice(0, -extension.length)}.json`;
}

export interface Versions {
  readonly tool: string;
  readonly node: string;
  readonly onnxruntime: string | null;
  readonly ffmpeg: string | null;
}

/** Versions that can change the output, so a run can be reproduced. */
export function collectVersions(ffmpegVersion: string | null): Versions {
  return { tool: VERSION, node: process.version, onnxruntime: onnxRuntimeVersion(), ffmpeg: ffmpegVersion };
}

function onnxRuntimeVersion(): string | null {
  try {
    const pkg = createRequire(import.meta.url)('onnxruntime-node/package.json') as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

/** Everything needed to reproduce and judge a run; written as `<output stem>.json`. */
export interface Sidecar {
  /** `bytes`: what was written (a frames folder: its files together), so a later run can tell it is intact. */
  readonly output: { readonly path: string; readonly format: string; readonly bytes: number };
  readonly prompt: string;
  /** The text actually tokenized (prompt plus aesthetic-score suffix). */
  readonly promptText: string;
  readonly seed: number;
  readonly model: { readonly name: string; readonly path: string };
  readonly settings: Record<string, unknown>;
  readonly sampler: Record<string, unknown>;
  readonly timingsMs: Record<string, number>;
  readonly backend: { readonly kind: string; readonly device: string };
  /** Tensor bytes moved between the host and where blocks run, per component (GenerateResult.transfers). */
  readonly transfers: Record<string, unknown>;
  readonly versions: Versions;
  readonly createdAt: string;
}

export function sidecarJson(sidecar: Sidecar): string {
  return `${JSON.stringify(sidecar, null, 2)}\n`;
}

/** The fields that mark a JSON file as a sidecar this tool wrote, and those a later run reads back. */
const OwnSidecar = z.object({
  output: z.object({ path: z.string(), format: z.string(), bytes: z.number().int().nonnegative().optional() }),
  prompt: z.string(),
  versions: z.object({ tool: z.string() }),
});
export type OwnSidecar = z.infer<typeof OwnSidecar>;

/** The sidecar at `path` if it is one this tool wrote; undefined if missing, unreadable or anything else. */
export async function readOwnSidecar(path: string): Promise<OwnSidecar | undefined> {
  try {
    const parsed = OwnSidecar.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
