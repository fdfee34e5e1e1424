import { hostOutputs } from '../src/runtime/backend.js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { blockSource } from '../src/model/manifest.js';
import { blockDiagonalMask, queryRowsPerSample } from '../src/pipeline/attention-mask.js';
import { sample, type StepPolicy } from '../src/pipeline/sampler.js';
import type { Float32Tensor } from '../src/pipeline/tensors.js';
import { tdtmPolicy, type TdtmSetting } from '../src/policies/tdtm.js';
import { maxRelativeError, readGolden } from './helpers/golden.js';
import { RecordingProvider, stditProvider, tinyRunner, tinyTimesteps, tinyStditSuite } from './helpers/tiny-stdit.js';

const suite = tinyStditSuite();

const silent = pino({ level: 'silent' });

describe.each([
  ['even', 4],
  ['odd', 3],
])('stdit3_TDTM_1 parity with PyTorch, %s T', (file, frames) => {
  it(`takes the half-height mask 2·⌊T/2⌋·S rows that the runner builds and matches the golden output (T = ${frames})`, async () => {
    const golden = await readGolden(`stdit3_TDTM_1.${file}.json`);
    const x = golden.inputs.x as Float32Tensor;
    const y = golden.inputs.y as Float32Tensor;
    const [, tokens = 0] = x.dims;
    const patchesPerFrame = tokens / frames;
    expect(Number(golden.inputs.T!.data[0])).toBe(frames);

    // Our mask for this grid (3×3 patches per frame) and caption, not the golden's, goes into the real block.
    const grid = { frames, paddedHeight: 6, paddedWidth: 6 };
    expect((grid.paddedHeight / 2) * (grid.paddedWidth / 2)).toBe(patchesPerFrame);
    const mask = blockDiagonalMask(queryRowsPerSample(grid, 'tdtm'), y.dims[1]! / 2);
    expect(mask.dims[2]).toBe(2 * Math.floor(frames / 2) * patchesPerFrame);
    expect(mask.dims).toEqual(golden.inputs.attn!.dims);
    expect(mask.data).toEqual(golden.inputs.attn!.data);

    const block = suite.tiny.model.blocks.find((candidate) => candidate.name === 'stdit3_TDTM_1')!;
    const handle = await suite.backend.load(blockSource(block));
    try {
      const outputs = hostOutputs(await suite.backend.run(handle, { ...golden.inputs, attn: mask }));
      const expected = golden.outputs.output as Float32Tensor;
      expect(outputs.output!.dims).toEqual(expected.dims);
      expect(maxRelativeError(outputs.output!.data as Float32Array, expected.data)).toBeLessThan(1e-5);
    } finally {
      await suite.backend.unload(handle);
    }
  });
});

/** Samples `steps` steps on the real tiny blocks with `policies`, recording every acquired block and run. */
async function sampleTiny(frames: number, steps: number, policies: StepPolicy[]) {
  const provider = new RecordingProvider(stditProvider(suite.tiny, suite.backend));
  try {
    const { runner, noise } = tinyRunner(suite.tiny, provider, frames);
    const result = await sample(runner, noise, { timesteps: tinyTimesteps(suite.tiny, steps), cfgScale: suite.tiny.cfgScale, policies });
    return { result, provider };
  } finally {
    await provider.close();
  }
}

/** The blocks acquired at each step: part1, the depth block pairs, part2. */
function blocksPerStep(provider: RecordingProvider, depth: number): string[][] {
  const perStep = depth + 2;
  return Array.from({ length: provider.acquired.length / perStep }, (_, step) =>
    provider.acquired.slice(step * perStep, (step + 1) * perStep),
  );
}

const blocks = (variant: 'ST' | 'TDTM', depth: number) => [
  'stdit3_part1',
  ...Array.from({ length: depth }, (_, i) => `stdit3_${variant}_${i}`),
  'stdit3_part2',
];

describe('TDTM policy on the real tiny model (ONNX blocks)', () => {
  const depth = () => suite.tiny.model.architecture.stdit.depth;

  it.each([
    [5, 2],
    [4, 2],
    [5, 'all'],
  ] as [number, TdtmSetting][])('T = %i, --tdtm %s: merged steps run TDTM blocks with the half-height mask, the rest ST', async (frames, setting) => {
    const steps = 5;
    const policy = tdtmPolicy(setting, frames, silent);
    const { result, provider } = await sampleTiny(frames, steps, [policy]);
    const merged = setting === 'all' ? steps : setting;
    expect(blocksPerStep(provider, depth())).toEqual(
      Array.from({ length: steps }, (_, step) => blocks(step < merged ? 'TDTM' : 'ST', depth())),
    );
    expect(result.policies.tdtm).toEqual({ mergeSteps: setting, mergedSteps: merged });

    // 8×8 latent → S = 16 patches per frame; CFG doubles the rows.
    const rows = (variant: string) =>
      new Set(provider.runs.filter((run) => run.block.startsWith(`stdit3_${variant}_`)).map((run) => run.inputs.attn!.dims[2]));
    expect(rows('TDTM')).toEqual(new Set([2 * Math.floor(frames / 2) * 16]));
    expect(rows('ST')).toEqual(merged < steps ? new Set([2 * frames * 16]) : new Set());
  });

  it('--tdtm 0 is bit-identical to the baseline; merging the first steps changes the latent', async () => {
    const baseline = await sampleTiny(5, 30, []);
    const none = await sampleTiny(5, 30, [tdtmPolicy(0, 5, silent)]);
    expect(none.result.latent).toEqual(baseline.result.latent);
    expect(none.provider.acquired).toEqual(baseline.provider.acquired);
    const merged = await sampleTiny(5, 30, [tdtmPolicy(15, 5, silent)]);
    expect(merged.result.latent).not.toEqual(baseline.result.latent);
  });

  it('T = 1: runs ST blocks at every step and says why at debug level', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const { result, provider } = await sampleTiny(1, 3, [tdtmPolicy('all', 1, logger)]);
    expect(blocksPerStep(provider, depth())).toEqual([blocks('ST', depth()), blocks('ST', depth()), blocks('ST', depth())]);
    expect(result.policies.tdtm).toEqual({ mergeSteps: 'all', mergedSteps: 0 });
    expect(lines.map((line) => JSON.parse(line) as { level: number; msg: string })).toEqual([
      expect.objectContaining({ level: 20, msg: expect.stringContaining('at least 2 latent frames') }),
    ]);
  });
});
