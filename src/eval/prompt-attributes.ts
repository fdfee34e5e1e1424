/**
 * Reads the attributes a prompt asks for (object colour, shape, background, motion) in the vocabulary of a shapes
 * world. The world's own caption phrases come first; a few everyday paraphrases are accepted too, so a person can
 * score a video against a prompt they typed, not only against a caption the generator wrote.
 */
import type { Motion, Shape, VideoAttributes, World } from './world.js';

export type AttributeName = 'object colour' | 'shape' | 'background' | 'motion';

export type ParsedPrompt =
  | { readonly ok: true; readonly attributes: VideoAttributes }
  | { readonly ok: false; readonly missing: readonly AttributeName[] };

const ARTICLES = new Set(['a', 'an', 'the']);
const BACKGROUND_PREPOSITIONS = new Set(['on', 'against', 'over']);

/** Motion words other than directions, matched as whole-word phrases. */
const KIND_CUES: Readonly<Record<'still' | 'grow' | 'shrink', readonly string[]>> = {
  still: ['still', 'not moving', 'stationary', 'motionless', 'static', 'standing still'],
  grow: ['growing', 'grows', 'getting bigger', 'getting larger', 'expanding', 'expands', 'enlarging'],
  shrink: ['shrinking', 'shrinks', 'getting smaller', 'contracting'],
};

/** Direction words (hyphenated forms such as "up-right" are split first): unit steps, image y axis down. */
const DIRECTION_WORDS: Readonly<Record<string, readonly [number, number]>> = {
  left: [-1, 0],
  leftward: [-1, 0],
  leftwards: [-1, 0],
  right: [1, 0],
  rightward: [1, 0],
  rightwards: [1, 0],
  up: [0, -1],
  upward: [0, -1],
  upwards: [0, -1],
  down: [0, 1],
  downward: [0, 1],
  downwards: [0, 1],
};

type MotionCue = { readonly kind: 'still' | 'grow' | 'shrink' } | { readonly kind: 'translate'; readonly sign: readonly [number, number] };

export function parsePrompt(prompt: string, world: World): ParsedPrompt {
  const text = normalise(prompt);
  const words = text.split(' ').filter((word) => word !== '');
  const colours = new Set(Object.keys(world.colours));
  const shapes = new Set<string>(world.shapes);

  const shapeAt = words.findIndex((word) => shapes.has(word));
  const shapeWords = new Set(words.filter((word) => shapes.has(word)));
  const shape = shapeWords.size === 1 ? (words[shapeAt] as Shape) : undefined;
  const before = shape === undefined ? undefined : words[shapeAt - 1];
  const colour = before !== undefined && colours.has(before) ? before : undefined;
  const background = backgroundColour(words, colours, shapes);
  const motion = motionKey(text, words, world);

  const missing: AttributeName[] = [];
  if (colour === undefined) missing.push('object colour');
  if (shape === undefined) missing.push('shape');
  if (background === undefined) missing.push('background');
  if (motion === undefined) missing.push('motion');
  if (colour === undefined || shape === undefined || background === undefined || motion === undefined) {
    return { ok: false, missing };
  }
  return { ok: true, attributes: { colour, shape, background, motion } };
}

export type ParsedPair =
  | { readonly ok: true; readonly attributes: readonly [VideoAttributes, VideoAttributes] }
  | { readonly ok: false; readonly missing: readonly AttributeName[] };

/** How many of the world's shape words a prompt has: 2 makes it a two-object prompt. */
export function shapeMentions(prompt: string, world: World): number {
  const shapes = new Set<string>(world.shapes);
  return normalise(prompt)
    .split(' ')
    .filter((word) => shapes.has(word)).length;
}

/**
 * "a red circle moving left and a blue square moving up on a white background": the prompt is cut before the
 * second object's colour (and its "and a"), and each half is read as a one-object prompt on the shared background.
 */
export function parsePairPrompt(prompt: string, world: World): ParsedPair {
  const words = normalise(prompt).split(' ').filter((word) => word !== '');
  const shapes = new Set<string>(world.shapes);
  const at = words.flatMap((word, i) => (shapes.has(word) ? [i] : []));
  if (at.length !== 2) return { ok: false, missing: ['shape'] };
  let cut = at[1]! - 1;
  while (cut > at[0]! + 1 && (ARTICLES.has(words[cut - 1]!) || words[cut - 1] === 'and')) cut--;
  const background = backgroundColour(words, new Set(Object.keys(world.colours)), shapes);
  if (background === undefined) return { ok: false, missing: ['background'] };
  const [first, second] = [words.slice(0, cut), words.slice(cut)].map((half) => parsePrompt(`${half.join(' ')} on a ${background} background`, world));
  if (first?.ok !== true || second?.ok !== true) {
    const missing = [first, second].flatMap((half) => (half === undefined || half.ok ? [] : half.missing));
    return { ok: false, missing: [...new Set(missing)] };
  }
  return { ok: true, attributes: [first.attributes, second.attributes] };
}

/** Lowercase words separated by single spaces; hyphens kept ("up-right"), other punctuation dropped. */
function normalise(prompt: string): string {
  return prompt
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, ' ')
    .trim();
}

/** "black background", "on (a) black", "against (a) black": one colour, or none when they disagree. */
function backgroundColour(words: readonly string[], colours: ReadonlySet<string>, shapes: ReadonlySet<string>): string | undefined {
  const found = new Set<string>();
  for (const [i, word] of words.entries()) {
    const previous = words[i - 1];
    if ((word === 'background' || word === 'backdrop') && previous !== undefined && colours.has(previous)) found.add(previous);
    if (!BACKGROUND_PREPOSITIONS.has(word)) continue;
    const next = ARTICLES.has(words[i + 1] ?? '') ? i + 2 : i + 1;
    const candidate = words[next];
    // "on a red square" would name an object, not a background.
    if (candidate !== undefined && colours.has(candidate) && !shapes.has(words[next + 1] ?? '')) found.add(candidate);
  }
  return found.size === 1 ? [...found][0] : undefined;
}

/**
 * The world's caption phrase if the prompt has one (longest first: "moving up" is part of "moving up and to the
 * left"), else the paraphrases; none when the prompt also says something that contradicts it.
 */
function motionKey(text: string, words: readonly string[], world: World): string | undefined {
  const padded = ` ${text} `;
  const motions = Object.entries(world.motions);
  const byLength = [...motions].sort(([, a], [, b]) => b.phrase.length - a.phrase.length);
  const phrased = byLength.find(([, motion]) => padded.includes(` ${normalise(motion.phrase)} `));
  const cue = motionCue(padded, words);
  if (cue === 'conflict') return undefined;
  if (phrased !== undefined) return cue === 'none' || cueMatches(cue, phrased[1]) ? phrased[0] : undefined;
  if (cue === 'none') return undefined;
  return motions.find(([, motion]) => cueMatches(cue, motion))?.[0];
}

function cueMatches(cue: MotionCue, motion: Motion): boolean {
  if (cue.kind !== 'translate') return motion.kind === cue.kind;
  return motion.kind === 'translate' && Math.sign(motion.direction[0]) === cue.sign[0] && Math.sign(motion.direction[1]) === cue.sign[1];
}

/** The one motion the prompt's wording names, none, or a conflict ("left … right", "growing … moving left"). */
function motionCue(padded: string, words: readonly string[]): MotionCue | 'none' | 'conflict' {
  const cues: MotionCue[] = [];
  for (const [kind, phrases] of Object.entries(KIND_CUES) as [keyof typeof KIND_CUES, readonly string[]][]) {
    if (phrases.some((phrase) => padded.includes(` ${phrase} `))) cues.push({ kind });
  }
  const steps = words
    .flatMap((word) => word.split('-'))
    .flatMap((word) => {
      const step = DIRECTION_WORDS[word];
      return step === undefined ? [] : [step];
    });
  const xs = new Set(steps.map(([x]) => x).filter((x) => x !== 0));
  const ys = new Set(steps.map(([, y]) => y).filter((y) => y !== 0));
  if (xs.size > 1 || ys.size > 1) return 'conflict';
  if (steps.length > 0) cues.push({ kind: 'translate', sign: [[...xs][0] ?? 0, [...ys][0] ?? 0] });
  return cues.length === 0 ? 'none' : cues.length === 1 ? cues[0]! : 'conflict';
}
