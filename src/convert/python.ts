/**
 * The Python interpreter that runs the model scripts (scripts/*.py), found and checked before any work: the one
 * named by `--python`, else by ONDEVICE_SORA_PYTHON or PYTHON, else the first of `python3` on PATH and Debian's
 * `/usr/bin/python3` that has every module needed (a pyenv or conda `python3` often lacks torch while the system
 * one has it). What is missing is named with the install command for Debian/Ubuntu and for pip.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SoraError } from '../errors.js';

const execFileAsync = promisify(execFile);

export interface PythonModule {
  /** The name `import` uses. */
  readonly module: string;
  /** Debian/Ubuntu package, when there is one. */
  readonly debian?: string;
  /** What `pip install` takes. */
  readonly pip: string;
}

export const TORCH: PythonModule = { module: 'torch', debian: 'python3-torch', pip: 'torch' };
export const ONNX: PythonModule = { module: 'onnx', debian: 'python3-onnx', pip: 'onnx' };
export const NUMPY: PythonModule = { module: 'numpy', debian: 'python3-numpy', pip: 'numpy' };
export const JSONSCHEMA: PythonModule = { module: 'jsonschema', debian: 'python3-jsonschema', pip: 'jsonschema' };
export const COREMLTOOLS: PythonModule = { module: 'coremltools', pip: 'coremltools==8.3' };

/** What scripts/convert_checkpoint.py imports to write ONNX blocks and validate the manifest. */
export const CONVERTER_MODULES = [TORCH, ONNX, NUMPY, JSONSCHEMA] as const;

export const PYTHON_ENV = ['ONDEVICE_SORA_PYTHON', 'PYTHON'] as const;
const DEFAULT_CANDIDATES = ['python3', '/usr/bin/python3'];
const MIN_VERSION = [3, 8] as const;

// find_spec locates a module without importing it (importing torch alone takes seconds).
const PROBE = `
import importlib.util, json, sys
missing = [name for name in sys.argv[1:] if importlib.util.find_spec(name) is None]
print(json.dumps({"version": list(sys.version_info[:2]), "missing": missing}))
`;

interface Probe {
  readonly python: string;
  readonly problem?: string;
  readonly missing: readonly PythonModule[];
}

async function probe(python: string, modules: readonly PythonModule[]): Promise<Probe> {
  try {
    const { stdout } = await execFileAsync(python, ['-c', PROBE, ...modules.map((m) => m.module)], { timeout: 60_000 });
    const result = JSON.parse(stdout) as { version: [number, number]; missing: string[] };
    const [major, minor] = result.version;
    if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
      return { python, problem: `${python} is Python ${major}.${minor} (needs ${MIN_VERSION.join('.')} or newer)`, missing: [] };
    }
    return { python, missing: modules.filter((m) => result.missing.includes(m.module)) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? `${python} not found` : `${python} does not run (${(error as Error).message.split('\n')[0]})`;
    return { python, problem, missing: [] };
  }
}

function listed(names: readonly string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}

function installHint(modules: readonly PythonModule[]): string {
  const debian = modules.filter((m) => m.debian !== undefined).map((m) => m.debian!);
  const pip = modules.map((m) => m.pip);
  const apt = debian.length > 0 ? `Debian/Ubuntu: sudo apt-get install ${debian.join(' ')}; or ` : '';
  return `install ${debian.length === modules.length ? 'them' : 'with pip'} (${apt}pip install ${pip.join(' ')})`;
}

export interface PythonRequest {
  /** The command, for the message: "models convert". */
  readonly purpose: string;
  readonly modules: readonly PythonModule[];
  /** The value of the command's --python flag; undefined when not given, null when the command has no such flag. */
  readonly flag: string | undefined | null;
}

/**
 * The interpreter to use, having every module; throws a DEPENDENCY error that names the interpreters tried, what
 * each lacks and how to install it.
 */
export async function findPython({ purpose, modules, flag }: PythonRequest): Promise<string> {
  const explicit = flag ?? undefined;
  const fromEnv = PYTHON_ENV.map((name) => ({ name, value: process.env[name] })).find((entry) => entry.value);
  const named = explicit ?? fromEnv?.value;
  const candidates = named !== undefined ? [named] : DEFAULT_CANDIDATES;
  const probes: Probe[] = [];
  for (const python of candidates) {
    const result = await probe(python, modules);
    if (result.problem === undefined && result.missing.length === 0) return python;
    probes.push(result);
  }
  const usable = probes.filter((p) => p.problem === undefined);
  const best = usable.sort((a, b) => a.missing.length - b.missing.length)[0];
  const tried = probes.map((p) => p.problem ?? `${p.python} lacks ${listed(p.missing.map((m) => m.module))}`).join('; ');
  const how = best === undefined ? installHint(modules) : installHint(best.missing);
  const source = explicit !== undefined ? '--python' : fromEnv !== undefined ? fromEnv.name : undefined;
  const ways = [...(flag === null ? [] : ['--python']), PYTHON_ENV[0]].join(' or ');
  const choose = source === undefined ? `, or name another Python with ${ways}` : ` (named by ${source})`;
  throw new SoraError('DEPENDENCY', `${purpose} needs Python with ${listed(modules.map((m) => m.module))}: ${tried}; ${how}${choose}`);
}
