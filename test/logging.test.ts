/**
 * createLogger makes its pino logger at the first line logged at an enabled level (start-up time, issue 17): below
 * the level nothing loads pino, and what is logged is pino's JSON line as before. In a child process (the module's
 * source, through tsx: dist/ is a bundle), whose module cache shows whether pino was loaded.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const SCRIPT = `
import { createRequire } from 'node:module';
const { createLogger } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'logging.ts')).href)});
const pinoLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => /[\\\\/]node_modules[\\\\/]pino[\\\\/]/.test(path));
const logger = createLogger('warn', false);
logger.debug({ n: 1 }, 'below the level');
logger.info('below the level too');
const facts = { enabled: [logger.isLevelEnabled('debug'), logger.isLevelEnabled('warn'), logger.isLevelEnabled('error')], level: logger.level, loadedBefore: pinoLoaded() };
logger.warn({ n: 2 }, 'a warning');
console.log(JSON.stringify({ ...facts, loadedAfter: pinoLoaded() }));
`;

describe('createLogger', () => {
  it('loads pino only at the first enabled line, which is the usual JSON line on stderr', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: ROOT, encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ enabled: [false, true, true], level: 'warn', loadedBefore: false, loadedAfter: true });
    const lines = child.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, n: 2, msg: 'a warning' });
  });
});
