import { createRequire } from 'node:module';
import { extname } from 'node:path';
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
  readonly output: { readonly path: string; readonly format: string };
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
