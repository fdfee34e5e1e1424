/**
 * The shapes world a model was trained on (`world.json`, written by the training data generator): its palette,
 * shapes, motions, the clip geometry and the held-out prompts. It comes from outside the tool, so it is validated
 * in full before any model work, and every reference of a held-out prompt must name something the world defines.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as z from 'zod';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';

export { WORLD_FILE } from './world-file.js';

/** The shapes the frame analysis has a template for; a world with another shape cannot be scored. */
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

export const MOTION_KINDS = ['translate', 'still', 'grow', 'shrink'] as const;
export type MotionKind = (typeof MOTION_KINDS)[number];

const byte = z.int().min(0).max(255);
const Rgb = z.tuple([byte, byte, byte]).readonly();
export type Rgb = readonly [number, number, number];

const MotionSchema = z
  .object({
    phrase: z.string().trim().min(1),
    kind: z.enum(MOTION_KINDS),
    direction: z.tuple([z.number(), z.number()]).readonly(),
  })
  .refine(
    (motion) => (motion.kind === 'translate') === (motion.direction[0] !== 0 || motion.direction[1] !== 0),
    'a translate motion needs a non-zero direction, any other kind [0, 0]',
  );
export type Motion = z.infer<typeof MotionSchema>;

const HeldoutSchema = z.object({
  prompt: z.string().trim().min(1),
  shape: z.string(),
  colour: z.string(),
  background: z.string(),
  motion: z.string(),
});
export type HeldoutPrompt = z.infer<typeof HeldoutSchema>;

const PairObjectSchema = z.object({ shape: z.string(), colour: z.string(), motion: z.string() });
/** A held-out scene of the two-object world: two objects, each with its own colour, shape and motion. */
const HeldoutPairSchema = z.object({
  prompt: z.string().trim().min(1),
  background: z.string(),
  objects: z.tuple([PairObjectSchema, PairObjectSchema]),
});
export type HeldoutPair = z.infer<typeof HeldoutPairSchema>;

const Range = z
  .tuple([z.number().positive(), z.number().positive()])
  .readonly()
  .refine(([low, high]) => low <= high, 'must be [low, high] with low ≤ high');

/** The world's trajectories, which the evaluator measures sizes and motion against. */
const GeometrySchema = z.object({
  /** Half the width of a shape that does not grow or shrink, px. */
  half_size: Range,
  /** Half-width at the start and at the end of a growing clip (a shrinking one runs backwards), px. */
  grow_half_size: Range,
  /** How far a moving shape's centre travels over the clip, px. */
  travel: Range,
  /** Least gap between a shape and the frame's edge, px. */
  margin: z.number().nonnegative(),
});
export type WorldGeometry = z.infer<typeof GeometrySchema>;

export const WORLD_VERSION = 2;

export const WorldSchema = z
  .object({
    version: z.literal(WORLD_VERSION, `must be ${WORLD_VERSION} (re-export the model's world.json with scripts/train_shapes.py --stage export)`),
    // The generation resolution is size × size: the VAE scales by 8 and STDiT patches are 2×2.
    size: z.int().positive().refine((size) => size % 16 === 0, 'must be a multiple of 16'),
    fps: z.number().positive().max(240),
    // The VAE makes 17 frames from 5 latent frames.
    num_frames: z.int().positive().refine((frames) => frames % 17 === 0, 'must be a multiple of 17'),
    colours: z
      .record(z.string().regex(/^[a-z]+$/, 'colour names must be single lowercase words'), Rgb)
      .refine((colours) => Object.keys(colours).length >= 2, 'needs at least two colours'),
    shapes: z.array(z.enum(SHAPES, `must be one of: ${SHAPES.join(', ')}`)).min(1),
    motions: z.record(z.string().min(1), MotionSchema).refine((motions) => Object.keys(motions).length >= 1, 'needs a motion'),
    caption_template: z.string(),
    geometry: GeometrySchema,
    heldout: z.array(HeldoutSchema).min(1),
    /** 2 for a world (and a model) with two-object scenes too; their held-out scenes are heldout_pairs. */
    max_objects: z.union([z.literal(1), z.literal(2)]).default(1),
    heldout_pairs: z.array(HeldoutPairSchema).default([]),
  })
  .superRefine((world, context) => {
    for (const [index, entry] of world.heldout.entries()) checkEntry(world, entry, ['heldout', index], context);
    for (const [index, pair] of world.heldout_pairs.entries()) {
      const entries = pair.objects.map((object) => ({ ...object, background: pair.background, prompt: pair.prompt }));
      for (const [which, entry] of entries.entries()) checkEntry(world, entry, ['heldout_pairs', index, 'objects', which], context);
      if (new Set([pair.background, ...pair.objects.map((object) => object.colour)]).size !== 3) {
        context.addIssue({ code: 'custom', path: ['heldout_pairs', index], message: 'the two objects and the background need three different colours' });
      }
    }
  });
export type World = z.infer<typeof WorldSchema>;

type Known = Pick<World, 'shapes' | 'colours' | 'motions'>;

/** Every attribute of a held-out entry names something the world defines; the object is not the background's colour. */
function checkEntry(world: Known, entry: HeldoutPrompt, path: (string | number)[], context: z.RefinementCtx): void {
  const unknown = (field: keyof HeldoutPrompt, known: readonly string[]): void => {
    if (!known.includes(entry[field])) {
      context.addIssue({ code: 'custom', path: [...path, field], message: `"${entry[field]}" is not one of: ${known.join(', ')}` });
    }
  };
  unknown('shape', world.shapes);
  unknown('colour', Object.keys(world.colours));
  unknown('background', Object.keys(world.colours));
  unknown('motion', Object.keys(world.motions));
  if (entry.colour === entry.background) {
    context.addIssue({ code: 'custom', path, message: 'object and background have the same colour' });
  }
}

/** Reads and validates a world file; problems name the file and the field. */
export async function loadWorld(path: string): Promise<World> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new SoraError('INPUT', `cannot read the world file ${displayPath(file)}: ${errorMessage(error)}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SoraError('INPUT', `${displayPath(file)}: not valid JSON: ${errorMessage(error)}`, { cause: error });
  }
  const parsed = WorldSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)).join('').slice(1);
    throw new SoraError('INPUT', `${displayPath(file)}: ${field === '' ? '' : `${field}: `}${issue.message}`);
  }
  return parsed.data;
}

/** The attributes one video is meant to show. */
export interface VideoAttributes {
  readonly shape: Shape;
  readonly colour: string;
  readonly background: string;
  /** A key of the world's motions. */
  readonly motion: string;
}

/** A held-out two-object scene's attributes, object by object. */
export function pairAttributes(pair: HeldoutPair): readonly [VideoAttributes, VideoAttributes] {
  const [first, second] = pair.objects.map((object) => heldoutAttributes({ ...object, background: pair.background, prompt: pair.prompt }));
  return [first!, second!];
}

/** A held-out entry's attributes, typed (the schema has checked that they exist in the world). */
export function heldoutAttributes(entry: HeldoutPrompt): VideoAttributes {
  return { shape: entry.shape as Shape, colour: entry.colour, background: entry.background, motion: entry.motion };
}
