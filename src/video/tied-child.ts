/**
 * Child processes that die with this process, even when it is killed with SIGKILL and cannot clean up. On Linux
 * the child is started through util-linux's `setpriv --pdeathsig KILL`, which sets PR_SET_PDEATHSIG and then execs
 * the program (same pid, so signals and exit status are the program's). Node cannot set it itself: it must happen
 * between fork and exec. Where setpriv is missing (macOS, minimal images) the child is started directly; ffmpeg
 * then still ends once its input pipe closes, just not at once.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { findOnPath } from './executables.js';

let setpriv: string | null | undefined;

function parentDeathWrapper(): string | null {
  if (setpriv !== undefined) return setpriv;
  setpriv = null;
  if (process.platform !== 'linux') return setpriv;
  const candidate = findOnPath('setpriv', process.env.PATH ?? '') ?? '/usr/bin/setpriv';
  // --pdeathsig exists since util-linux 2.33; an older setpriv fails this probe.
  const probe = spawnSync(candidate, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5000 });
  if (probe.status === 0) setpriv = candidate;
  return setpriv;
}

export function spawnTiedToParent(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const wrapper = parentDeathWrapper();
  return wrapper === null
    ? spawn(command, [...args], options)
    : spawn(wrapper, ['--pdeathsig', 'KILL', '--', command, ...args], options);
}
