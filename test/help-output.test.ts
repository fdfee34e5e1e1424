/**
 * Every command's --help, from the real CLI, byte for byte against test/fixtures/help/ (captured from the CLI before
 * the commands' actions moved behind dynamic imports, so lazy loading cannot change what users read). A deliberate
 * change to a help text is recorded with `npx vitest run test/help-output.test.ts -u`. The CoreML cache folder shown
 * by `models cache` depends on HOME and XDG_CACHE_HOME, so the CLI runs with fixed ones; macOS puts it elsewhere
 * (~/Library/Caches, the same line lengths at these values), which is mapped back to the recorded Linux folder.
 * `device setup` shows its default model by absolute path; the package folder is recorded as <package>.
 */
import type { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { createProgram } from '../src/cli/program.js';
import { assertBuilt, cli, ROOT } from './helpers/cli.js';

beforeAll(() => {
  assertBuilt();
});

function commandPaths(command: Command, path: readonly string[] = []): string[][] {
  return [[...path], ...command.commands.flatMap((sub) => commandPaths(sub, [...path, sub.name()]))];
}

const PATHS = commandPaths(createProgram());

const HELP_ENV = { HOME: '/home/user', XDG_CACHE_HOME: '/home/user/.cache' };

function asRecorded(help: string): string {
  const here = help.replaceAll(ROOT.replace(/[/\\]+$/, ''), '<package>');
  if (process.platform !== 'darwin') return here;
  return here.replaceAll('/home/user/Library/Caches/ondevice-sora/', '/home/user/.cache/ondevice-sora/');
}

describe('--help output', () => {
  it('covers every command, subcommands included', () => {
    const names = PATHS.map((path) => path.join(' '));
    expect(names).toEqual(expect.arrayContaining(['', 'generate', 'batch status', 'models cache prune', 'doctor']));
    expect(names.length).toBeGreaterThanOrEqual(21);
  });

  it.each(PATHS.map((path) => [path.join(' ') || '(program)', path]))('%s is unchanged', async (_name, path) => {
    const result = await cli([...path, '--help'], HELP_ENV);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    await expect(asRecorded(result.stdout)).toMatchFileSnapshot(`fixtures/help/${path.join('-') || 'program'}.txt`);
  });
});
