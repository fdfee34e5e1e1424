import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { presetFromFlags } from '../src/cli/policy-flags.js';
import { ERROR_EXIT_CODES, SoraError } from '../src/errors.js';
import { sample } from '../src/pipeline/sampler.js';
import { PRESETS, stepPolicies } from '../src/policies/presets.js';
import { assertBuilt, cli, expectOneLineError } from './helpers/cli.js';
import { tempDir } from './helpers/model-folder.js';
import { RecordingProvider, stditProvider, tinyRunner, tinyTimesteps, tinyStditSuite } from './helpers/tiny-stdit.js';

const silent = pino({ level: 'silent' });

describe('presets and the flags that override them', () => {
  it('baseline has no speed-ups; paper is LPL 15, TDTM 15 and CI-DL', () => {
    expect(PRESETS.baseline).toEqual({ lpl: { mode: 'off' }, tdtm: 0, stepCache: 0, reuseEvery: 1, cidl: false });
    expect(PRESETS.paper).toEqual({ lpl: { mode: 'fixed', step: 15 }, tdtm: 15, stepCache: 0, reuseEvery: 1, cidl: true });
    expect(stepPolicies(PRESETS.baseline, 5, silent)).toEqual([]);
    expect(stepPolicies(PRESETS.paper, 5, silent).map((policy) => policy.name)).toEqual(['tdtm', 'lpl']);
  });

  it('fast is LPL 15 and the step cache at 0.15, without TDTM or CI-DL', () => {
    expect(PRESETS.fast).toEqual({ lpl: { mode: 'fixed', step: 15 }, tdtm: 0, stepCache: 0.15, reuseEvery: 1, cidl: false });
    expect(stepPolicies(PRESETS.fast, 5, silent).map((policy) => policy.name)).toEqual(['lpl', 'step-cache']);
    expect(stepPolicies({ ...PRESETS.baseline, reuseEvery: 2 }, 5, silent).map((policy) => policy.name)).toEqual(['block-reuse']);
  });

  it('explicit flags replace the preset’s fields, the rest stays', () => {
    expect(presetFromFlags({ preset: 'baseline' })).toEqual(PRESETS.baseline);
    expect(presetFromFlags({ preset: 'paper', tdtm: 0 })).toEqual({ ...PRESETS.paper, tdtm: 0 });
    expect(presetFromFlags({ preset: 'paper', lpl: 'off' })).toEqual({ ...PRESETS.paper, lpl: { mode: 'off' } });
    expect(presetFromFlags({ preset: 'paper', tdtm: 'all', lpl: 20 })).toEqual({
      lpl: { mode: 'fixed', step: 20 },
      tdtm: 'all',
      stepCache: 0,
      reuseEvery: 1,
      cidl: true,
    });
    expect(presetFromFlags({ preset: 'fast', stepCache: 0, reuseEvery: 2 })).toEqual({ ...PRESETS.fast, stepCache: 0, reuseEvery: 2 });
  });

  it('--lpl auto defaults to tolerance 1e-4 and patience 3; --lpl-tolerance and --lpl-patience change them', () => {
    expect(presetFromFlags({ preset: 'baseline', lpl: 'auto' }).lpl).toEqual({ mode: 'auto', tolerance: 1e-4, patience: 3 });
    expect(presetFromFlags({ preset: 'paper', lpl: 'auto', lplTolerance: 0, lplPatience: 5 }).lpl).toEqual({
      mode: 'auto',
      tolerance: 0,
      patience: 5,
    });
  });

  it('refuses --lpl-tolerance / --lpl-patience when the leap is not auto, naming the flag', () => {
    const usage = (run: () => unknown, message: string) => {
      expect(run).toThrow(SoraError);
      expect(run).toThrow(message);
    };
    usage(() => presetFromFlags({ preset: 'paper', lplPatience: 4 }), '--lpl-patience: only applies with --lpl auto');
    usage(() => presetFromFlags({ preset: 'baseline', lplTolerance: 1e-3 }), '--lpl-tolerance: only applies with --lpl auto');
    usage(() => presetFromFlags({ preset: 'baseline', lpl: 12, lplTolerance: 1e-3 }), '--lpl-tolerance');
  });
});

describe('--preset paper on the real tiny model (ONNX blocks)', () => {
  const suite = tinyStditSuite();

  it('merges steps 0–14, leaps at step 15 with ST blocks: 16 evaluations of 30', async () => {
    const provider = new RecordingProvider(stditProvider(suite.tiny, suite.backend));
    try {
      const { runner, noise } = tinyRunner(suite.tiny, provider);
      const policies = stepPolicies(PRESETS.paper, 5, silent);
      const result = await sample(runner, noise, { timesteps: tinyTimesteps(suite.tiny, 30), cfgScale: suite.tiny.cfgScale, policies });
      expect(result.evaluations).toBe(16);
      expect(result.leapStep).toBe(15);
      expect(result.policies).toEqual({
        tdtm: { mergeSteps: 15, mergedSteps: 15 },
        lpl: { mode: 'fixed', step: 15, leapStep: 15, evaluations: 16 },
      });
      const firstBlockPerStep = provider.acquired.filter((name) => /_(ST|TDTM)_0$/.test(name));
      expect(firstBlockPerStep).toEqual([...Array<string>(15).fill('stdit3_TDTM_0'), 'stdit3_ST_0']);
    } finally {
      await provider.close();
    }
  });
});

describe('generate --preset/--lpl/--tdtm on the shipped tiny model (built CLI)', () => {
  let dir: string;

  beforeAll(async () => {
    assertBuilt();
    dir = await tempDir('sora-presets-');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const PROMPT = 'a red ball bouncing';

  it.each([
    [['--preset', 'faster'], '--preset: must be one of: baseline, paper, fast, got "faster"'],
    [['--step-cache', '-0.1'], '--step-cache: must be a number ≥ 0, got "-0.1"'],
    [['--step-cache', 'big'], '--step-cache: must be a number ≥ 0, got "big"'],
    [['--reuse-every', '0'], '--reuse-every: must be an integer from 1 to 1000, got "0"'],
    [['--lpl', '0'], '--lpl: must be a step number from 1 to 1000, auto or off, got "0"'],
    [['--lpl', 'soon'], '--lpl: must be a step number from 1 to 1000, auto or off, got "soon"'],
    [['--lpl', 'auto', '--lpl-patience', '0'], '--lpl-patience: must be an integer from 1 to 1000, got "0"'],
    [['--lpl', 'auto', '--lpl-tolerance', '-1'], '--lpl-tolerance: must be a number ≥ 0, got "-1"'],
    [['--tdtm', 'half'], '--tdtm: must be a number of steps from 0 to 1000, or all, got "half"'],
    [['--preset', 'paper', '--lpl-patience', '2'], '--lpl-patience: only applies with --lpl auto'],
  ])('%j fails with one line naming the flag and writes nothing', async (flags, message) => {
    const output = join(dir, 'bad.mp4');
    expectOneLineError(await cli(['generate', PROMPT, '-o', output, ...flags]), ERROR_EXIT_CODES.USAGE, message);
    expect((await readdir(dir)).filter((name) => name.includes('bad'))).toEqual([]);
  });

  async function frames(name: string, ...flags: string[]) {
    const folder = join(dir, name);
    const result = await cli(['generate', PROMPT, '-o', folder, '--format', 'frames', '--seed', '3', ...flags]);
    expect(result.code, result.stderr).toBe(0);
    const files = (await readdir(folder)).sort();
    const sidecar = JSON.parse(await readFile(join(dir, `${name}.json`), 'utf8'));
    return { images: await Promise.all(files.map((file) => readFile(join(folder, file)))), sidecar };
  }

  it('--preset paper records its settings and what the policies did in the sidecar', async () => {
    const { sidecar } = await frames('paper', '--preset', 'paper');
    expect(sidecar.settings).toMatchObject({ preset: 'paper', lpl: { mode: 'fixed', step: 15 }, tdtm: 15 });
    expect(sidecar.sampler).toEqual({
      evaluations: 16,
      leapStep: 15,
      reusedBlocks: 0,
      policies: {
        tdtm: { mergeSteps: 15, mergedSteps: 15 },
        lpl: { mode: 'fixed', step: 15, leapStep: 15, evaluations: 16 },
      },
    });
  });

  it('--lpl auto records the leap step, the evaluations and the similarity trace', async () => {
    const { sidecar } = await frames('auto', '--steps', '10', '--lpl', 'auto', '--lpl-patience', '2');
    const lpl = sidecar.sampler.policies.lpl;
    expect(sidecar.settings.lpl).toEqual({ mode: 'auto', tolerance: 1e-4, patience: 2 });
    expect(lpl).toMatchObject({ mode: 'auto', tolerance: 1e-4, patience: 2, checkedFrom: 4 });
    expect(lpl.evaluations).toBe(sidecar.sampler.evaluations);
    expect(lpl.leapStep).toBe(sidecar.sampler.leapStep);
    expect(lpl.similarities).toHaveLength(sidecar.sampler.evaluations - 1);
  });

  it('--tdtm 0, and --preset paper with both speed-ups turned off, give the baseline’s frames bit for bit', async () => {
    const baseline = await frames('baseline', '--steps', '6');
    expect(baseline.sidecar.settings).toMatchObject({ preset: 'baseline', lpl: { mode: 'off' }, tdtm: 0 });
    expect((await frames('tdtm0', '--steps', '6', '--tdtm', '0')).images).toEqual(baseline.images);
    const paperOff = await frames('paper-off', '--steps', '6', '--preset', 'paper', '--tdtm', '0', '--lpl', 'off');
    expect(paperOff.images).toEqual(baseline.images);
  }, 360_000); // three generations, one under CI-DL's first-step measurements: 72 s alone on a loaded 2-vCPU machine
});
