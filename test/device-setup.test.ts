/**
 * `device setup`: off macOS it refuses in one line and runs nothing (the built CLI, a real process); its plan of
 * Xcode and devicectl steps, and the facts it shares with the iPhone app's sources (bundle id, where the model goes,
 * the runner port), checked everywhere. Running the plan needs a Mac, Xcode and an iPhone: the Mac self-check.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appPath, RUNNER_BUNDLE_ID, RUNNER_MODEL_PATH, setupSteps } from '../src/device/ios-setup.js';
import { DEFAULT_RUNNER_PORT } from '../src/runtime/runner-messages.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';

describe('device setup', () => {
  it.skipIf(process.platform === 'darwin')('refuses politely off macOS: one line, the dependency exit code', async () => {
    assertBuilt();
    const result = await cli(['device', 'setup', '--team', 'ABCDE12345']);
    expectOneLineError(result, 8, 'device setup: needs a Mac with Xcode', `this is ${process.platform}, nothing was run`);
  });

  it('plans cmake, xcodebuild, install, copy into the app container, launch: in that order, on that device', () => {
    const steps = setupSteps({ iosDir: '/repo/ios', buildDir: '/tmp/b', udid: 'UDID-1', modelDir: '/m/tiny-coreml', team: 'ABCDE12345' });
    expect(steps.map((step) => [step.command, ...step.args.slice(0, 4)].join(' '))).toEqual([
      'cmake -G Xcode -S /repo/ios',
      'xcodebuild -project /tmp/b/SoraRunner.xcodeproj -scheme SoraRunner',
      'xcrun devicectl device install app',
      'xcrun devicectl device copy to',
      'xcrun devicectl device process launch',
    ]);
    expect(steps[0]!.args).toContain('-DCMAKE_SYSTEM_NAME=iOS');
    expect(steps[0]!.args).toContain('-DSORA_TEAM=ABCDE12345');
    expect(steps[1]!.args).toEqual(expect.arrayContaining(['-destination', 'generic/platform=iOS', '-configuration', 'Release']));
    expect(steps[2]!.args.slice(-3)).toEqual(['--device', 'UDID-1', appPath('/tmp/b')]);
    const copy = steps[3]!.args.join(' ');
    expect(copy).toContain('--device UDID-1');
    expect(copy).toContain(`--domain-type appDataContainer --domain-identifier ${RUNNER_BUNDLE_ID}`);
    expect(copy).toContain(`--source /m/tiny-coreml --destination ${RUNNER_MODEL_PATH}`);
    expect(steps[4]!.args.at(-1)).toBe(RUNNER_BUNDLE_ID);
  });

  it('agrees with the app: bundle id, model folder, runner port, deployment of the bridge core', async () => {
    const cmake = await readFile(join(ROOT, 'ios', 'CMakeLists.txt'), 'utf8');
    expect(cmake).toContain(`set(SORA_BUNDLE_ID "${RUNNER_BUNDLE_ID}"`);
    expect(cmake).toContain('${bridge}/coreml_core.mm');
    const app = await readFile(join(ROOT, 'ios', 'SoraRunner', 'app.mm'), 'utf8');
    const [documents, folder] = RUNNER_MODEL_PATH.split('/');
    expect(documents).toBe('Documents');
    expect(app).toContain(`DirectoryOf(NSDocumentDirectory) + "/${folder}"`);
    expect(app).toContain(`kRunnerPort = ${DEFAULT_RUNNER_PORT};`);
    expect(app).toContain('idleTimerDisabled = YES');
  });
});
