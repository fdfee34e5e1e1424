/**
 * What a prompt asks of a closed-world model that it never learned: words outside its training captions (its
 * tokenizer spells them out letter by letter, and the model has learned to ignore such words), and more objects
 * than its videos ever show. Each problem is one sentence, for a warning or, with --strict-prompt, an error.
 */
import type { Vocabulary } from '../model/manifest-schema.js';

export interface PromptProblems {
  /** Words the model does not know, each once, in prompt order. */
  readonly unknown: readonly string[];
  /** Object words in the prompt, one entry per mention. */
  readonly objects: readonly string[];
  /** One sentence per kind of problem; empty when the model knows every word and can show every object. */
  readonly messages: readonly string[];
}

/** Lowercase runs of letters or digits: how the captions were split into words. */
export function promptWords(prompt: string): string[] {
  return prompt.toLowerCase().match(/[a-z]+|[0-9]+/g) ?? [];
}

/** Words shown in a message at most; the rest are counted. */
const LISTED = 8;

export function promptProblems(prompt: string, vocabulary: Vocabulary): PromptProblems {
  const known = new Set(vocabulary.words);
  const objectWords = new Set(vocabulary.objectWords);
  const words = promptWords(prompt);
  const unknown = [...new Set(words.filter((word) => !known.has(word)))];
  const objects = words.filter((word) => objectWords.has(word));
  const messages: string[] = [];
  if (unknown.length > 0) {
    const listed = unknown.slice(0, LISTED).map((word) => `"${word}"`).join(', ');
    const more = unknown.length > LISTED ? ` and ${unknown.length - LISTED} more` : '';
    messages.push(
      `the model does not know ${listed}${more}: it was trained on ${known.size} words (see \`models inspect\`), ` +
        'and words outside them are spelled out letter by letter and have no effect',
    );
  }
  if (objects.length > vocabulary.maxObjects) {
    const most = vocabulary.maxObjects === 1 ? 'one object' : `at most ${vocabulary.maxObjects} objects`;
    messages.push(`names ${objects.length} objects (${objects.join(', ')}), but the model draws ${most}: expect one object, or a mix of them`);
  }
  return { unknown, objects, messages };
}
