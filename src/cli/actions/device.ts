/**
 * `device setup`: builds the iPhone runner app (ios/), installs it on a tethered iPhone, copies a CoreML model
 * folder into it and starts it (src/device/ios-setup.ts). macOS with Xcode only; elsewhere it says so and runs
 * nothing.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod';
import { setupSteps, type SetupStep } from '../../device/ios-setup.js';
import { displayPath } from '../../display-path.js';
import { SoraError } from '../../errors.js';
import { loadModel } from '../../model/manifest.js';
import { packagePath } from '../../package-root.js';
import { findDevice } from '../../runtime/usbmux.js';
import { cliContext, type CliContext } from '../context.js';
import { parseFlags } from '../flags.js';
import { TEAM_ENV } from '../commands/device.js';

const IOS_DIR = packagePath('ios');

const FlagsSchema = z.object({
  device: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a device UDID or auto'),
  model: z.string().min(1, 'must name a folder'),
  team: z.string().regex(/^[A-Z0-9]{10}$/, 'must be a 10-character Apple team ID').optional(),
});

/** What `device setup` runs (commands/ defines its options). */
export async function setupAction(options: Record<string, unknown>, self: Command): Promise<void> {
  await setup(options, cliContext(self));
}

async function setup(options: Record<string, unknown>, context: CliContext): Promise<void> {
  if (process.platform !== 'darwin') {
    throw new SoraError(
      'DEPENDENCY',
      `device setup: needs a Mac with Xcode (xcodebuild, xcrun devicectl); this is ${process.platform}, nothing was run. ` +
        'The app is in ios/ (README: "iPhone")',
    );
  }
  const flags = parseFlags(FlagsSchema, options);
  const team = flags.team ?? process.env[TEAM_ENV];
  if (team === undefined || team === '') throw new SoraError('USAGE', `--team: needed to sign the app (or set ${TEAM_ENV}); Xcode → Settings → Accounts shows it`);
  const model = await loadModel(flags.model);
  const notCoreml = model.blocks.find((block) => block.format !== 'coreml');
  if (notCoreml !== undefined) {
    throw new SoraError('MODEL', `--model: ${displayPath(model.dir)} has ${notCoreml.format} blocks (${notCoreml.name}); the iPhone runs CoreML packages (models convert --format coreml)`);
  }
  const { udid } = await findDevice(flags.device);
  const buildDir = await mkdtemp(join(tmpdir(), 'ondevice-sora-ios-'));
  const steps = setupSteps({ iosDir: IOS_DIR, buildDir, udid, modelDir: model.dir, team });
  for (const [index, step] of steps.entries()) {
    context.status(`[${index + 1}/${steps.length}] ${step.title}`);
    await runStep(step, join(buildDir, `step-${index + 1}.log`));
  }
  context.result(
    `SoraRunner is running on iPhone ${udid} with ${model.name}; now: ondevice-sora generate "prompt" -o out.mp4 --device ${udid} --model ${displayPath(model.dir)}`,
    { device: udid, model: model.name, buildDir },
  );
}

/** Runs one step; on failure, one line naming it and the log that holds its output. */
function runStep(step: SetupStep, log: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(step.command, [...step.args], { maxBuffer: 256 << 20 }, (error, stdout, stderr) => {
      void writeFile(log, `$ ${step.command} ${step.args.join(' ')}\n${stdout}${stderr}`).finally(() => {
        if (error === null) return resolve();
        const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
        reject(
          new SoraError(
            missing ? 'DEPENDENCY' : 'BACKEND',
            missing
              ? `device setup: ${step.command} not found (install Xcode and its command line tools: xcode-select --install)`
              : `device setup: ${step.title} failed (${step.command} exit ${String(error.code)}); output in ${displayPath(log)}`,
          ),
        );
      });
    });
  });
}
