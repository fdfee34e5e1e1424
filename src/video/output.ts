import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import { claimPath, type Claim } from './claim.js';
import { folderError } from './folder-errors.js';
import { watchInterruption } from './interruption.js';
import { checkReplaceable, fileOutput, framesOutput, SIDECAR_OUTPUT, type OutputKind } from './replaceable.js';

/** A video is one file; `frames` is a folder of PNG files. */
export type OutputShape = 'file' | 'directory';

/**
 * The output and its sidecar. Both are claimed before any work (claim.ts: a second run writing either fails at
 * once, naming this one), written under the claims' temporary names in the destination folder and renamed into
 * place only when complete, so a failed or interrupted run never leaves a partial video that looks finished. Same
 * folder, so the rename is atomic (one file system). The video is renamed first and the sidecar last: a sidecar in
 * place means its video is complete.
 *
 * SIGINT/SIGTERM remove the temporary files at once, then fire `interrupted` (interruption.ts).
 */
export class OutputFiles {
  private readonly watch = watchInterruption();
  /** Aborted, with the INTERRUPTED or TERMINATED SoraError as reason, on the first SIGINT/SIGTERM. */
  readonly interrupted: AbortSignal = this.watch.signal;
  private settled = false;

  private constructor(
    readonly path: string,
    readonly sidecarPath: string,
    private readonly shape: OutputShape,
    private readonly video: Claim,
    private readonly sidecar: Claim,
  ) {
    this.watch.onSignal(() => this.removeTemporaries());
  }

  /** Where the video (or the frames folder) is written until commit(). */
  get tempPath(): string {
    return this.video.partPath;
  }

  /**
   * Claims the output and its sidecar; `command` names this run to a second claimant, `job` the queue job it
   * writes for (claim.ts: a later attempt of that job takes the claims over).
   */
  static async claim(path: string, sidecarPath: string, shape: OutputShape, command: string, job?: string): Promise<OutputFiles> {
    const options = { command, ...(job !== undefined && { job }) };
    const video = await claimPath(path, options);
    const sidecar = await claimPath(sidecarPath, options).catch((error: unknown) => {
      video.release();
      throw error;
    });
    return new OutputFiles(resolve(path), resolve(sidecarPath), shape, video, sidecar);
  }

  /**
   * Checks the destination before any model work (claim, then what is there, then a temporary created in the
   * folder, which proves it takes new files).
   */
  static async prepare(path: string, sidecarPath: string, shape: OutputShape, overwrite: boolean, command: string): Promise<OutputFiles> {
    const output = await OutputFiles.claim(path, sidecarPath, shape, command);
    try {
      await output.checkExisting(overwrite);
      await output.open();
    } catch (error) {
      await output.discard();
      throw error;
    }
    return output;
  }

  /** An existing output or sidecar: replaced only with `overwrite`, and only if this tool wrote it (replaceable.ts). */
  async checkExisting(overwrite: boolean): Promise<void> {
    await checkReplaceable(this.path, this.outputKind(), overwrite);
    await checkReplaceable(this.sidecarPath, SIDECAR_OUTPUT, overwrite);
  }

  /** Creates the temporary output. */
  async open(): Promise<void> {
    try {
      if (this.shape === 'directory') await mkdir(this.tempPath);
      else await (await open(this.tempPath, 'wx')).close();
    } catch (error) {
      throw await folderError(dirname(this.path), error);
    }
  }

  /** Bytes written so far (a frames folder: its files together); the sidecar records them for --resume. */
  async writtenBytes(): Promise<number> {
    return outputBytes(this.tempPath);
  }

  /** Writes the sidecar, then moves the output and the sidecar into place (unless interrupted meanwhile). */
  async commit(sidecarJson: string): Promise<void> {
    this.interrupted.throwIfAborted();
    try {
      await writeFile(this.sidecar.partPath, sidecarJson, { flag: 'wx' });
      // rename() cannot replace a non-empty folder: a replaced frames folder is removed first, once it is checked
      // again that nothing but this tool's frames went into it meanwhile.
      if (this.shape === 'directory') await this.removeReplacedFolder();
      await rename(this.tempPath, this.path);
      await rename(this.sidecar.partPath, this.sidecarPath);
    } catch (error) {
      await this.discard();
      if (error instanceof SoraError) throw error;
      throw new SoraError('IO', `cannot write ${displayPath(this.path)}: ${errorMessage(error)}`, { cause: error });
    }
    this.settle();
  }

  /** Removes whatever was written and gives the claims back; the destination stays as it was. */
  async discard(): Promise<void> {
    if (this.settled) return;
    this.removeTemporaries();
    this.settle();
  }

  private outputKind(): OutputKind {
    return this.shape === 'directory' ? framesOutput(this.sidecarPath) : fileOutput('a video file');
  }

  private async removeReplacedFolder(): Promise<void> {
    const stats = await lstat(this.path).catch(() => undefined);
    if (stats === undefined) return;
    const problem = await this.outputKind().inTheWay(this.path, stats);
    if (problem !== undefined) throw new SoraError('IO', `${displayPath(this.path)} ${problem}; not replaced`);
    await rm(this.path, { recursive: true });
  }

  private removeTemporaries(): void {
    rmSync(this.video.partPath, { recursive: true, force: true });
    rmSync(this.sidecar.partPath, { force: true });
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.video.release();
    this.sidecar.release();
    this.watch.dispose();
  }
}

/** The size of a video file, or of the files of a frames folder together. */
export async function outputBytes(path: string): Promise<number> {
  const stats = await stat(path);
  if (!stats.isDirectory()) return stats.size;
  let total = 0;
  for (const name of await readdir(path)) total += await outputBytes(join(path, name));
  return total;
}

/** Writes a claimed file: its temporary, renamed into place, then the claim given back. */
export async function writeClaimed(claim: Claim, data: string | Uint8Array): Promise<void> {
  try {
    await writeFile(claim.partPath, data, { flag: 'wx' });
    await rename(claim.partPath, claim.path);
  } catch (error) {
    throw new SoraError('IO', `cannot write ${displayPath(claim.path)}: ${errorMessage(error)}`, { cause: error });
  } finally {
    claim.release();
  }
}

/**
 * Writes a whole file under a temporary name in its folder and renames it into place: readers never see it half
 * written, and a failure leaves the destination as it was.
 */
export async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const target = resolve(path);
  const tempPath = join(dirname(target), `.${basename(target)}.${process.pid}-${randomBytes(4).toString('hex')}.part`);
  try {
    await writeFile(tempPath, data, { flag: 'wx' });
    await rename(tempPath, target);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw new SoraError('IO', `cannot write ${displayPath(target)}: ${errorMessage(error)}`, { cause: error });
  }
}
