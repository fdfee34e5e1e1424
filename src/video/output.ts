import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { lstat, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { displayPath } from '../display-path.js';
import { ERROR_EXIT_CODES, errorMessage, SoraError } from '../errors.js';

export type OutputKind = 'file' | 'directory';

/**
 * The output and its sidecar, written under temporary names in the destination folder and renamed into place only
 * when complete, so a failed or interrupted run never leaves a partial video that looks finished. Same folder, so
 * the rename is atomic (one file system).
 *
 * SIGINT/SIGTERM remove the temporary files at once, then fire `interrupted`: the job stops at its next block and
 * fails with the INTERRUPTED error (exit 130). It does not exit on the spot because ending the process while an
 * ONNX Runtime call runs in a worker thread aborts it (the binding throws during teardown: SIGABRT, exit 134).
 * A second signal exits immediately.
 */
export class OutputFiles {
  private readonly interruption = new AbortController();
  /** Aborted, with the INTERRUPTED SoraError as reason, on the first SIGINT/SIGTERM. */
  readonly interrupted: AbortSignal = this.interruption.signal;
  private readonly onSignal = (): void => {
    this.removeTemporaries();
    if (this.interrupted.aborted) process.exit(ERROR_EXIT_CODES.INTERRUPTED);
    this.interruption.abort(new SoraError('INTERRUPTED', 'interrupted; nothing was written'));
  };
  private settled = false;

  private constructor(
    readonly path: string,
    readonly sidecarPath: string,
    private readonly kind: OutputKind,
    /** Where the video (or the frames folder) is written until commit(). */
    readonly tempPath: string,
    private readonly sidecarTempPath: string,
  ) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /**
   * Checks the destination before any model work: an existing output or sidecar is refused unless `overwrite`;
   * the folder must exist and be writable, which is proven by creating the temporary output there.
   */
  static async prepare(path: string, sidecarPath: string, kind: OutputKind, overwrite: boolean): Promise<OutputFiles> {
    const target = resolve(path);
    const sidecar = resolve(sidecarPath);
    await refuseExisting(target, kind, overwrite);
    await refuseExisting(sidecar, 'file', overwrite);
    const folder = dirname(target);
    const tempPath = temporaryName(target);
    try {
      if (kind === 'directory') await mkdir(tempPath);
      else await (await open(tempPath, 'wx')).close();
    } catch (error) {
      throw folderError(folder, error);
    }
    return new OutputFiles(target, sidecar, kind, tempPath, temporaryName(sidecar));
  }

  /** Writes the sidecar, then moves the output and the sidecar into place (unless interrupted meanwhile). */
  async commit(sidecarJson: string): Promise<void> {
    this.interrupted.throwIfAborted();
    try {
      await writeFile(this.sidecarTempPath, sidecarJson, { flag: 'wx' });
      // rename() cannot replace a non-empty folder: an overwritten frames folder is removed first.
      if (this.kind === 'directory') await rm(this.path, { recursive: true, force: true });
      await rename(this.tempPath, this.path);
      await rename(this.sidecarTempPath, this.sidecarPath);
    } catch (error) {
      await this.discard();
      throw new SoraError('IO', `cannot write ${displayPath(this.path)}: ${errorMessage(error)}`, { cause: error });
    }
    this.settle();
  }

  /** Removes whatever was written; the destination stays as it was. */
  async discard(): Promise<void> {
    this.removeTemporaries();
    this.settle();
  }

  private removeTemporaries(): void {
    rmSync(this.tempPath, { recursive: true, force: true });
    rmSync(this.sidecarTempPath, { force: true });
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}

/**
 * Writes a whole file under a temporary name in its folder and renames it into place: readers never see it half
 * written, and a failure leaves the destination as it was.
 */
export async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const target = resolve(path);
  const tempPath = temporaryName(target);
  try {
    await writeFile(tempPath, data, { flag: 'wx' });
    await rename(tempPath, target);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw new SoraError('IO', `cannot write ${displayPath(target)}: ${errorMessage(error)}`, { cause: error });
  }
}

/** Makes an output folder and any parents (nothing if it exists); IO error naming it otherwise. */
export async function makeOutputFolder(folder: string): Promise<void> {
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    throw new SoraError('IO', `cannot make output folder ${displayPath(resolve(folder))}: ${errorMessage(error)}`, { cause: error });
  }
}

export async function refuseExisting(path: string, kind: OutputKind, overwrite: boolean): Promise<void> {
  const existing = await lstat(path).catch(() => undefined);
  if (existing === undefined) return;
  if (!overwrite) throw new SoraError('IO', `${displayPath(path)} already exists (pass --overwrite to replace it)`);
  const isDirectory = existing.isDirectory();
  if (isDirectory !== (kind === 'directory')) {
    const replacement = kind === 'directory' ? 'a folder of frames' : 'a video file';
    const what = isDirectory ? 'a folder' : 'a file';
    throw new SoraError('IO', `${displayPath(path)} is ${what}; cannot replace it with ${replacement}`);
  }
}

function temporaryName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.part`);
}

function folderError(folder: string, error: unknown): SoraError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'does not exist'
      : code === 'ENOTDIR'
        ? 'is not a folder'
        : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
          ? 'is not writable'
          : errorMessage(error);
  return new SoraError('IO', `output folder ${displayPath(folder)} ${reason}`, { cause: error });
}
