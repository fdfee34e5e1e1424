/**
 * Prompt files for `batch`: one prompt per line in all three formats, so every problem has a line number and one
 * bad line never hides the others.
 * - `.txt`: the line is the prompt; blank lines and lines starting with `#` are skipped.
 * - `.jsonl`: one JSON object per line, `{"prompt": …}` plus optional overrides; blank lines skipped.
 * - `.csv`: a header line naming the columns (`prompt` required), then one record per line; quoted fields may hold
 *   commas and quotes but not line breaks; blank lines and lines starting with `#` skipped.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import * as z from 'zod';
import { resolutionFlag } from '../cli/flags.js';
import { displayPath } from '../display-path.js';
import { errorMessage, SoraError } from '../errors.js';
import { LIMITS } from '../model/limits.js';
import { VIDEO_FORMATS } from '../video/video-writer.js';

export const PROMPT_FILE_FORMATS = ['txt', 'jsonl', 'csv'] as const;
type PromptFileFormat = (typeof PROMPT_FILE_FORMATS)[number];

export interface Resolution {
  readonly width: number;
  readonly height: number;
}

/** One prompt and the settings its line overrides. */
export interface BatchEntry {
  /** Position among the prompt lines of the file (0-based, bad lines included): what `--shard` splits on. */
  readonly index: number;
  /** 1-based line number in the file. */
  readonly line: number;
  readonly prompt: string;
  readonly seed?: number;
  readonly steps?: number;
  readonly numFrames?: number;
  readonly resolution?: Resolution;
  /** File name (or folder name for frames) inside the batch's output folder. */
  readonly output?: string;
}

/** A line that could not be used; `message` starts with `file:line:`. */
export interface LineProblem {
  readonly index: number;
  readonly line: number;
  readonly message: string;
}

export interface PromptFile {
  readonly path: string;
  readonly entries: readonly BatchEntry[];
  readonly problems: readonly LineProblem[];
}

const FIELDS = ['prompt', 'seed', 'steps', 'num_frames', 'resolution', 'output'] as const;
const INTEGER_FIELDS: ReadonlySet<string> = new Set(['seed', 'steps', 'num_frames']);
const MAX_INTEGER = Number.MAX_SAFE_INTEGER;
/** A plain name: no folders, nothing hidden, nothing a shell or another OS would trip on. */
const OUTPUT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+=-]{0,199}$/;
const OUTPUT_EXTENSIONS = VIDEO_FORMATS.filter((format) => format !== 'frames').map((format) => `.${format}`);

const integer = (min: number, message: string, max: number = MAX_INTEGER) =>
  z.int({ error: (issue) => (issue.input === undefined ? 'is missing' : message) }).min(min, message).max(max, message);
const NUM_FRAMES_MESSAGE = `must be a multiple of 17 from 17 to ${LIMITS.numFrames} (the VAE makes 17 frames from 5 latent frames)`;

const LineSchema = z.strictObject(
  {
    prompt: z
      .string({ error: (issue) => (issue.input === undefined ? 'is missing' : 'must be a string') })
      .trim()
      .min(1, 'is empty'),
    seed: integer(0, `must be an integer from 0 to ${MAX_INTEGER}`).optional(),
    steps: integer(1, `must be an integer from 1 to ${LIMITS.steps}`, LIMITS.steps).optional(),
    num_frames: integer(17, NUM_FRAMES_MESSAGE, LIMITS.numFrames)
      .refine((value) => value % 17 === 0, NUM_FRAMES_MESSAGE)
      .optional(),
    resolution: resolutionFlag.optional(),
    output: z
      .string('must be a string')
      .regex(OUTPUT_NAME, 'must be a plain file name (letters, digits, _ . + = -; no folders)')
      .refine(
        (name) => extname(name) === '' || OUTPUT_EXTENSIONS.includes(extname(name).toLowerCase()),
        `must end in ${OUTPUT_EXTENSIONS.join(', ')}, or have no extension (then --format decides)`,
      )
      .optional(),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown field ${issue.keys.map((key) => `"${key}"`).join(', ')} (known: ${FIELDS.join(', ')})`
        : issue.code === 'invalid_type'
          ? 'must be a JSON object with a "prompt" field'
          : undefined,
  },
);

export type PromptLine = Omit<BatchEntry, 'index' | 'line'>;

/**
 * One prompt line's object (a JSON line, a CSV record, a queued job's line) checked against the schema: the entry,
 * or the problem as `field: what is wrong, got value`.
 */
export function parsePromptLine(value: unknown): PromptLine | string {
  const result = LineSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path[0];
    const given = key === undefined ? undefined : (value as Record<PropertyKey, unknown>)[key];
    const got = given === undefined ? '' : `, got ${JSON.stringify(given)}`;
    const field = key === undefined ? '' : `${String(key)}: `;
    return `${field}${issue.message}${got}`;
  }
  const { prompt, seed, steps, num_frames: numFrames, resolution, output } = result.data;
  return {
    prompt,
    ...(seed !== undefined && { seed }),
    ...(steps !== undefined && { steps }),
    ...(numFrames !== undefined && { numFrames }),
    ...(resolution !== undefined && { resolution }),
    ...(output !== undefined && { output }),
  };
}

/** The inverse of parsePromptLine: the object a JSON line would hold for this entry. */
export function promptLineObject(line: PromptLine): Record<string, unknown> {
  const { prompt, seed, steps, numFrames, resolution, output } = line;
  return {
    prompt,
    ...(seed !== undefined && { seed }),
    ...(steps !== undefined && { steps }),
    ...(numFrames !== undefined && { num_frames: numFrames }),
    ...(resolution !== undefined && { resolution: `${resolution.width}x${resolution.height}` }),
    ...(output !== undefined && { output }),
  };
}

export async function readPromptFile(path: string): Promise<PromptFile> {
  const format = formatOf(path);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new SoraError('INPUT', `cannot read prompt file ${displayPath(path)}: ${errorMessage(error)}`, { cause: error });
  }
  const text = textOf(bytes, path);
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const parsed = PARSERS[format](lines, displayPath(path));
  if (parsed.entries.length === 0 && parsed.problems.length === 0) {
    throw new SoraError('INPUT', `${displayPath(path)}: no prompts in the file`);
  }
  return { path, ...parsed };
}

/** The file as UTF-8 text; a binary file (NUL bytes, or bytes that are not UTF-8) is refused, not read as prompts. */
function textOf(bytes: Buffer, path: string): string {
  const notText = (why: string): SoraError => new SoraError('INPUT', `${displayPath(path)}: not a text file (${why})`);
  const nul = bytes.indexOf(0);
  if (nul !== -1) throw notText(`byte ${nul} is NUL`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw notText('it is not valid UTF-8');
  }
}

function formatOf(path: string): PromptFileFormat {
  const extension = extname(path).slice(1).toLowerCase();
  const format = PROMPT_FILE_FORMATS.find((name) => name === extension);
  if (format === undefined) {
    throw new SoraError('USAGE', `<file>: ${path} must end in ${PROMPT_FILE_FORMATS.map((f) => `.${f}`).join(', ')}`);
  }
  return format;
}

type Parsed = Omit<PromptFile, 'path'>;

/** Collects entries and problems, numbering the prompt lines as they come. */
class Collector {
  readonly entries: BatchEntry[] = [];
  readonly problems: LineProblem[] = [];
  #index = 0;

  constructor(private readonly file: string) {}

  add(line: number, value: unknown): void {
    const index = this.#index++;
    const parsed = parsePromptLine(value);
    if (typeof parsed === 'string') this.problem(index, line, parsed);
    else this.entries.push({ index, line, ...parsed });
  }

  /** A line that is a prompt line but cannot be read at all. */
  fail(line: number, message: string): void {
    this.problem(this.#index++, line, message);
  }

  private problem(index: number, line: number, message: string): void {
    this.problems.push({ index, line, message: `${this.file}:${line}: ${message}` });
  }
}

const isSkipped = (line: string): boolean => line.trim() === '' || line.trimStart().startsWith('#');

const PARSERS: Record<PromptFileFormat, (lines: readonly string[], file: string) => Parsed> = {
  txt(lines, file) {
    const collector = new Collector(file);
    lines.forEach((text, i) => {
      if (!isSkipped(text)) collector.add(i + 1, { prompt: text });
    });
    return collector;
  },

  jsonl(lines, file) {
    const collector = new Collector(file);
    lines.forEach((text, i) => {
      if (text.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        collector.fail(i + 1, `not valid JSON (${errorMessage(error)})`);
        return;
      }
      collector.add(i + 1, value);
    });
    return collector;
  },

  csv(lines, file) {
    const collector = new Collector(file);
    const headerAt = lines.findIndex((line) => !isSkipped(line));
    if (headerAt < 0) return collector;
    const header = csvRecord(lines[headerAt]!);
    if (header === undefined || !header.includes('prompt')) {
      throw new SoraError('INPUT', `${file}:${headerAt + 1}: the first line must name the columns, "prompt" among them`);
    }
    lines.forEach((text, i) => {
      if (i <= headerAt || isSkipped(text)) return;
      const cells = csvRecord(text);
      if (cells === undefined) return collector.fail(i + 1, 'not a valid CSV record (a stray or unclosed quote?)');
      if (cells.length !== header.length) {
        return collector.fail(i + 1, `${cells.length} fields, but the header names ${header.length}`);
      }
      collector.add(i + 1, csvObject(header, cells));
    });
    return collector;
  },
};

function csvRecord(line: string): string[] | undefined {
  try {
    const records = parseCsv(line, { trim: true }) as string[][];
    return records[0];
  } catch {
    return undefined;
  }
}

/** Empty cells are absent; integer columns holding digits become numbers (anything else fails validation). */
function csvObject(header: readonly string[], cells: readonly string[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  header.forEach((column, i) => {
    const cell = cells[i]!;
    if (cell === '') return;
    record[column] = INTEGER_FIELDS.has(column) && /^\d+$/.test(cell) ? Number(cell) : cell;
  });
  return record;
}
