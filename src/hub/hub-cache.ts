/**
 * The hub cache layout of `huggingface_hub`, so that both tools share one cache:
 *
 *     <cache>/models--<org>--<name>/blobs/<etag>                    file contents, named by the hub's ETag
 *     <cache>/models--<org>--<name>/blobs/<etag>.incomplete         a download in progress (resumed from its size)
 *     <cache>/models--<org>--<name>/snapshots/<commit>/<path>       relative symlink to ../../blobs/<etag>
 *     <cache>/models--<org>--<name>/refs/<revision>                 the commit a branch or tag pointed to
 *
 * For LFS files the ETag is the content's sha256, which the download is checked against.
 */
import { copyFile, lstat, mkdir, readFile, readdir, readlink, rename, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

const COMMIT = /^[0-9a-f]{40}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT.test(revision);
}

export class RepoCache {
  readonly folder: string;

  constructor(cacheDir: string, readonly repo: string) {
    this.folder = join(cacheDir, `models--${repo.split('/').join('--')}`);
  }

  blob(etag: string): string {
    return join(this.folder, 'blobs', etag);
  }

  incomplete(etag: string): string {
    return `${this.blob(etag)}.incomplete`;
  }

  snapshot(commit: string, path = ''): string {
    return join(this.folder, 'snapshots', commit, ...path.split('/'));
  }

  /** The lock of one blob's download among this tool's processes (huggingface_hub's own locks use flock). */
  lock(etag: string): string {
    return join(dirname(this.folder), '.locks', `models--${this.repo.split('/').join('--')}`, `${etag}.ondevice-sora.lock`);
  }

  /** The commit a revision names: itself when it is a commit hash, else what refs/<revision> holds. */
  async commitOf(revision: string): Promise<string | undefined> {
    if (isCommitHash(revision)) return revision;
    const text = await readFile(join(this.folder, 'refs', ...revision.split('/')), 'utf8').catch(() => undefined);
    const commit = text?.trim();
    return commit !== undefined && isCommitHash(commit) ? commit : undefined;
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (isCommitHash(revision)) return;
    const path = join(this.folder, 'refs', ...revision.split('/'));
    await mkdir(dirname(path), { recursive: true });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, commit);
    await rename(temporary, path);
  }

  /** Whether the snapshot holds the file, its link resolving to a blob. */
  async hasSnapshotFile(commit: string, path: string): Promise<boolean> {
    return (await stat(this.snapshot(commit, path)).catch(() => undefined))?.isFile() === true;
  }

  async hasBlob(etag: string): Promise<boolean> {
    return (await stat(this.blob(etag)).catch(() => undefined))?.isFile() === true;
  }

  /** Links snapshots/<commit>/<path> to the blob, relatively (as huggingface_hub does); a copy where symlinks are refused. */
  async linkSnapshot(commit: string, path: string, etag: string): Promise<string> {
    const target = this.snapshot(commit, path);
    const link = relative(dirname(target), this.blob(etag));
    const linked = async (): Promise<boolean> => (await readlink(target).catch(() => undefined)) === link;
    await mkdir(dirname(target), { recursive: true });
    // Two pulls into one cache link the same files: a link already right is left as it is, never removed and remade.
    if (await linked()) return target;
    if ((await lstat(target).catch(() => undefined)) !== undefined) await unlink(target);
    try {
      await symlink(link, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await linked())) return target; // the other pull linked it between the look and now
      if (code !== 'EPERM') throw error;
      await copyFile(this.blob(etag), target); // Windows without developer mode
    }
    return target;
  }

  /** Files of a cached snapshot, as repository paths ('/'-separated). */
  async snapshotFiles(commit: string): Promise<string[]> {
    const root = this.snapshot(commit);
    const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
    const files = entries.filter((entry) => !entry.isDirectory());
    return files.map((entry) => relative(root, join(entry.parentPath, entry.name)).split(sep).join('/')).sort();
  }
}
