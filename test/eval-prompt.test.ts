/** Reading a prompt into shapes-world attributes, and the world file it is read against. */
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SoraError } from '../src/errors.js';
import { parsePrompt } from '../src/eval/prompt-attributes.js';
import { loadWorld } from '../src/eval/world.js';
import { tempDir } from './helpers/model-folder.js';
import { TEST_WORLD } from './helpers/shapes-frames.js';

const world = TEST_WORLD;

describe('parsePrompt', () => {
  it.each([
    ['a red circle moving left on a black background', 'red', 'circle', 'black', 'left'],
    ['A Blue Square moving up and to the right on a white background.', 'blue', 'square', 'white', 'up-right'],
    ['a green triangle moving up on an orange background', 'green', 'triangle', 'orange', 'up'],
    ['a yellow circle moving down and to the left against a purple background', 'yellow', 'circle', 'purple', 'down-left'],
    ['a white square staying still on black', 'white', 'square', 'black', 'still'],
    ['red circle to the left, black background', 'red', 'circle', 'black', 'left'],
    ['a red circle going leftwards on a black background', 'red', 'circle', 'black', 'left'],
    ['a red circle drifting rightward against black', 'red', 'circle', 'black', 'right'],
    ['a purple triangle moving diagonally up and right on a green background', 'purple', 'triangle', 'green', 'up-right'],
    ['a purple triangle going up-left on a green background', 'purple', 'triangle', 'green', 'up-left'],
    ['an orange square, not moving, on a blue background', 'orange', 'square', 'blue', 'still'],
    ['a black circle, stationary, on a yellow background', 'black', 'circle', 'yellow', 'still'],
    ['a blue triangle getting bigger on a red background', 'blue', 'triangle', 'red', 'growing'],
    ['a blue triangle expanding on red', 'blue', 'triangle', 'red', 'growing'],
    ['a blue triangle getting smaller on a red background', 'blue', 'triangle', 'red', 'shrinking'],
    ['a blue triangle shrinking on a red background', 'blue', 'triangle', 'red', 'shrinking'],
  ])('"%s" → %s %s on %s, %s', (prompt, colour, shape, background, motion) => {
    expect(parsePrompt(prompt, world)).toEqual({ ok: true, attributes: { colour, shape, background, motion } });
  });

  it.each([
    ['a circle moving left on a black background', ['object colour']],
    ['a red ball moving left on a black background', ['object colour', 'shape']],
    ['a red circle moving left', ['background']],
    ['a red circle on a black background', ['motion']],
    ['a red circle moving left and right on a black background', ['motion']],
    ['a red circle growing and moving left on a black background', ['motion']],
    ['a red circle on a black background, a blue square on white, moving left', ['object colour', 'shape', 'background']],
    ['something nice', ['object colour', 'shape', 'background', 'motion']],
  ])('"%s" misses %j', (prompt, missing) => {
    expect(parsePrompt(prompt, world)).toEqual({ ok: false, missing });
  });

  it('uses the world file\'s phrases and words, not a fixed list', () => {
    const other = {
      ...world,
      colours: { teal: [0, 128, 128] as const, grey: [128, 128, 128] as const },
      motions: { sideways: { phrase: 'sliding sideways', kind: 'translate' as const, direction: [1, 0] as const } },
    };
    expect(parsePrompt('a teal square sliding sideways on a grey background', other)).toEqual({
      ok: true,
      attributes: { colour: 'teal', shape: 'square', background: 'grey', motion: 'sideways' },
    });
    // "moving left" is not one of this world's motions.
    expect(parsePrompt('a teal square moving left on a grey background', other)).toEqual({ ok: false, missing: ['motion'] });
  });
});

describe('loadWorld', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir('sora-world-');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** Writes `content` (unless undefined) and loads it, expecting a SoraError. */
  async function loadingFails(content: unknown, path = join(root, 'world.json')): Promise<SoraError> {
    if (content !== undefined) await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
    const error = await loadWorld(path).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(SoraError);
    return error as SoraError;
  }

  it('reads a valid world file', async () => {
    const path = join(root, 'ok.json');
    await writeFile(path, JSON.stringify(world));
    expect(await loadWorld(path)).toEqual(world);
  });

  it('names the file and the field of what is wrong', async () => {
    const badHeldout = { ...world, heldout: [{ ...world.heldout[0]!, colour: 'pink' }] };
    const error = await loadingFails(badHeldout);
    expect(error.code).toBe('INPUT');
    expect(error.message).toMatch(/world\.json: heldout\[0\]\.colour: "pink" is not one of: red, green/);
    expect((await loadingFails({ ...world, num_frames: 50 })).message).toContain('num_frames: must be a multiple of 17');
    expect((await loadingFails({ ...world, shapes: ['star'] })).message).toContain('shapes[0]: must be one of: circle, square, triangle');
    expect((await loadingFails({ ...world, colours: { ...world.colours, red: [300, 0, 0] } })).message).toContain('colours.red[0]');
    expect((await loadingFails('{ nope')).message).toContain('not valid JSON');
    const missing = await loadingFails(undefined, join(root, 'absent.json'));
    expect(missing.message).toMatch(/cannot read the world file .*absent\.json/);
  });
});
