/**
 * Exclusive claims on output paths, after git's lock files. Before any work a run creates `.<name>.lock` beside
 * each output it will write, holding who claimed it (tool, pid, host, start time, the process's kernel start time)
 * and the name of the one temporary it may write there (`.<name>.<pid>-<random>.part`). The lock is created
 * complete: written under a unique name, then link(2)ed to `.<name>.lock`, which fails if it exists (O_EXCL where
 * a file system has no hard links). A second claimant therefore fails at once, naming the holder; or, for a file
 * the tool updates briefly (a batch's results), waits its turn.
 *
 * A claim is released when its output is committed or given up, and at any exit of the process. A run killed with
 * SIGKILL (or crashing) leaves its locks and temporaries: the next run that claims anything in that folder removes
 * them once it has checked that the holder is gone (same host, pid not running, or running with another kernel
 * start time: a reused pid). It removes only a lock that parses as this tool's claim and the temporary that lock
 * names, nothing else.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { link, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import { displayPath } from '../display-path.js';
import { SoraError } from '../errors.js';
import { folderError } from './folder-errors.js';

const TOOL = 'ondevice-sora';

const ClaimRecord = z.object({
  tool: z.literal(TOOL),
  pid: z.number().int().positive(),
  host: z.string(),
  started: z.string(),
  command: z.string(),
  /** Field 22 of /proc/<pid>/stat: tells a reused pid from the claimant. Absent where there is no /proc. */
  processStart: z.string().optional(),
  /** The name, in the same folder, of the claim's temporary output. */
  part: z.string(),
  /** The queue job (`worker`) this claim writes for. */
  job: z.string().optional(),
});
type ClaimRecord = z.infer<typeof ClaimRecord>;

const LOCK_SUFFIX = '.lock';
/** Locks, and the unique names a lock is written under (`.tmp`) or moved aside to when stale (`.stale`). */
const CLAIM_FILE = /^\.(.+)\.lock(?:\.\d+-[0-9a-f]+\.(tmp|stale))?$/;
const POLL_MS = 25;

export function lockPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}${LOCK_SUFFIX}`);
}

function uniqueSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

export class Claim {
  #released = false;

  constructor(
    /** The claimed output (absolute). */
    readonly path: string,
    readonly lockPath: string,
    /** The one temporary this claim may write, in the output's folder. */
    readonly partPath: string,
  ) {}

  /** Removes the temporary if it is still there, then the lock. Synchronous, so it can run at exit. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    held.delete(this);
    rmSync(this.partPath, { recursive: true, force: true });
    rmSync(this.lockPath, { force: true });
  }
}

const held = new Set<Claim>();
let exitHookInstalled = false;

function hold(claim: Claim): void {
  held.add(claim);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const claim of [...held]) claim.release();
  });
}

export interface ClaimOptions {
  /** What holds the claim, for the message a second claimant gets: `generate`, `batch`, … */
  readonly command: string;
  /** Wait this long for a live holder to release it (a file every run updates briefly); default: fail at once. */
  readonly waitMs?: number;
  /**
   * The queue job this claim writes for. A claim naming the same job is taken over, on whatever host it was made:
   * the queue hands a job to one worker at a time, so its holder is an attempt the queue gave up on (a killed or
   * cut-off worker), and its temporary is removed with it.
   */
  readonly job?: string;
}

/** Claims `path` for this process, or fails with an IO error naming the live holder. */
export async function claimPath(path: string, options: ClaimOptions): Promise<Claim> {
  const target = resolve(path);
  const folder = dirname(target);
  await cleanStaleClaims(folder);
  const lockPath = lockPathFor(target);
  const partPath = join(folder, `.${basename(target)}.${uniqueSuffix()}.part`);
  const start = processStart(process.pid);
  const record: ClaimRecord = {
    tool: TOOL,
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: options.command,
    ...(start !== undefined && { processStart: start }),
    part: basename(partPath),
    ...(options.job !== undefined && { job: options.job }),
  };
  const deadline = Date.now() + (options.waitMs ?? 0);
  for (;;) {
    if (await createLock(lockPath, record)) {
      const claim = new Claim(target, lockPath, partPath);
      hold(claim);
      return claim;
    }
    const holder = await readClaim(lockPath);
    if (holder === 'gone') continue;
    if (holder === 'foreign') {
      throw new SoraError(
        'IO',
        `${displayPath(lockPath)} is in the way of ${displayPath(target)} and is not a claim of this tool; ` +
          'remove it if nothing is writing there',
      );
    }
    if (!isAlive(holder) || (options.job !== undefined && holder.job === options.job)) {
      await removeStale(lockPath, holder);
      continue;
    }
    if (Date.now() >= deadline) throw heldError(target, lockPath, holder);
    await sleep(POLL_MS);
  }
}

function heldError(target: string, lockPath: string, holder: ClaimRecord): SoraError {
  return new SoraError(
    'IO',
    `${displayPath(target)} is claimed by another run: ${holder.command}, pid ${holder.pid} on ${holder.host}, ` +
      `since ${holder.started}; if that run is gone, remove ${displayPath(lockPath)}`,
  );
}

/** Creates the lock complete (see the top of the file); false when it exists. */
async function createLock(lockPath: string, record: ClaimRecord): Promise<boolean> {
  const text = `${JSON.stringify(record)}\n`;
  const staging = `${lockPath}.${uniqueSuffix()}.tmp`;
  try {
    await writeFile(staging, text, { flag: 'wx' });
  } catch (error) {
    throw await folderError(dirname(lockPath), error);
  }
  try {
    await link(staging, lockPath);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
      throw await folderError(dirname(lockPath), error);
    }
    // No hard links here (FAT, some network file systems): O_EXCL, with a moment in which the lock is empty.
    return writeFile(lockPath, text, { flag: 'wx' }).then(
      () => true,
      (exclusive: unknown) => {
        if ((exclusive as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw exclusive;
      },
    );
  } finally {
    await unlink(staging).catch(() => undefined);
  }
}

async function readClaim(path: string): Promise<ClaimRecord | 'gone' | 'foreign'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'foreign';
  }
  try {
    const parsed = ClaimRecord.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : 'foreign';
  } catch {
    return 'foreign';
  }
}

/** Kernel start time of a process (from /proc), 'zombie', or undefined when unknown or not running. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name, in parentheses, may hold spaces: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? 'zombie' : fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the claimant may still be running; a claim from another host is assumed to be. */
function isAlive(holder: ClaimRecord): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  const start = processStart(holder.pid);
  if (start === undefined || start === 'zombie') return false;
  return holder.processStart === undefined || holder.processStart === start;
}

/**
 * Removes a dead claimant's lock and the temporary it names. The lock is first renamed aside, so that of two runs
 * cleaning at once only one removes it; if what was moved is not the stale claim (a live run re-claimed in
 * between), it is linked back.
 */
async function removeStale(lockPath: string, stale: ClaimRecord): Promise<void> {
  const aside = `${lockPath}.${uniqueSuffix()}.stale`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // already removed by another run
  }
  const moved = await readClaim(aside);
  const same = typeof moved === 'object' && moved.pid === stale.pid && moved.started === stale.started && moved.host === stale.host;
  if (!same) await link(aside, lockPath).catch(() => undefined);
  else await removePart(dirname(lockPath), basename(lockPath).slice(1, -LOCK_SUFFIX.length), stale);
  await unlink(aside).catch(() => undefined);
}

/** The temporary a claim names, if its name is one this tool gives (so a tampered lock cannot point elsewhere). */
async function removePart(folder: string, output: string, record: ClaimRecord): Promise<void> {
  const expected = new RegExp(`^\\.${escapeRegExp(output)}\\.${record.pid}-[0-9a-f]+\\.part$`);
  if (expected.test(record.part)) await rm(join(folder, record.part), { recursive: true, force: true });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const cleanedFolders = new Set<string>();

/** Once per folder and process: removes what dead runs of this tool left there (locks and their temporaries). */
async function cleanStaleClaims(folder: string): Promise<void> {
  if (cleanedFolders.has(folder)) return;
  cleanedFolders.add(folder);
  const names = await readdir(folder).catch(() => [] as string[]);
  for (const name of names) {
    const [, output, kind] = CLAIM_FILE.exec(name) ?? [];
    if (output === undefined) continue;
    const path = join(folder, name);
    const record = await readClaim(path);
    if (typeof record !== 'object' || isAlive(record)) continue;
    if (kind === undefined) {
      await removeStale(path, record);
      continue;
    }
    // A lock moved aside by a cleaner that died before finishing; a staging copy only duplicates a lock.
    if (kind === 'stale') await removePart(folder, output, record);
    await unlink(path).catch(() => undefined);
  }
}
