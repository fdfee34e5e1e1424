/**
 * What `ondevice-sora device setup` runs on a Mac to put the runner app on a tethered iPhone: generate the Xcode
 * project (cmake, ios/CMakeLists.txt), build and sign it (xcodebuild), install it (xcrun devicectl device install
 * app), copy a CoreML model folder into its data container (devicectl device copy to --domain-type
 * appDataContainer, to Documents/model where the app looks), then launch it (devicectl device process launch).
 * The steps are plain data so that the plan is tested everywhere, while running it needs macOS and Xcode.
 */
import { join } from 'node:path';

/** The app's bundle identifier (ios/CMakeLists.txt SORA_BUNDLE_ID). */
export const RUNNER_BUNDLE_ID = 'dev.ondevice-sora.runner';
/** Where in its container the app reads the model (ios/SoraRunner/app.mm). */
export const RUNNER_MODEL_PATH = 'Documents/model';

export interface SetupStep {
  /** What the step does, as the progress line says it. */
  readonly title: string;
  readonly command: string;
  readonly args: readonly string[];
}

export interface SetupInputs {
  /** The repository's ios/ folder (the app's CMake project). */
  readonly iosDir: string;
  /** Scratch folder for the Xcode project and the build. */
  readonly buildDir: string;
  readonly udid: string;
  /** The CoreML model folder to copy. */
  readonly modelDir: string;
  /** Apple development team that signs the app. */
  readonly team: string;
}

export function setupSteps({ iosDir, buildDir, udid, modelDir, team }: SetupInputs): SetupStep[] {
  const device = ['--device', udid];
  return [
    {
      title: 'generate the Xcode project',
      command: 'cmake',
      args: ['-G', 'Xcode', '-S', iosDir, '-B', buildDir, '-DCMAKE_SYSTEM_NAME=iOS', `-DSORA_TEAM=${team}`, `-DSORA_BUNDLE_ID=${RUNNER_BUNDLE_ID}`],
    },
    {
      title: 'build and sign SoraRunner',
      command: 'xcodebuild',
      args: [
        '-project', join(buildDir, 'SoraRunner.xcodeproj'),
        '-scheme', 'SoraRunner',
        '-configuration', 'Release',
        '-destination', 'generic/platform=iOS',
        '-allowProvisioningUpdates',
        'build',
      ],
    },
    { title: 'install it on the iPhone', command: 'xcrun', args: ['devicectl', 'device', 'install', 'app', ...device, appPath(buildDir)] },
    {
      title: `copy the model into its container (${RUNNER_MODEL_PATH})`,
      command: 'xcrun',
      args: [
        'devicectl', 'device', 'copy', 'to', ...device,
        '--domain-type', 'appDataContainer',
        '--domain-identifier', RUNNER_BUNDLE_ID,
        '--source', modelDir,
        '--destination', RUNNER_MODEL_PATH,
      ],
    },
    {
      title: 'start it',
      command: 'xcrun',
      args: ['devicectl', 'device', 'process', 'launch', ...device, '--terminate-existing', RUNNER_BUNDLE_ID],
    },
  ];
}

/** Where CMake's Xcode generator puts the signed app of a Release build for devices. */
export function appPath(buildDir: string): string {
  return join(buildDir, 'Release-iphoneos', 'SoraRunner.app');
}
