import { fileURLToPath } from 'node:url';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SoraError } from '../src/errors.js';
import { buildPrompt, formatOneDecimal } from '../src/text/prompt.js';
import { PromptTokenizer } from '../src/text/tokenizer.js';

// A small T5-style Unigram tokenizer.json written for these tests, loaded by the real @huggingface/tokenizers.
const fixtureDir = fileURLToPath(new URL('./fixtures/tokenizer/', import.meta.url));
const fixture = PromptTokenizer.filesIn(fixtureDir, []);
const settings = { maxLength: 300, padId: 0, eosId: 1 };

function capturingLogger() {
  const lines: { level: number; msg: string; tokens?: number; kept?: number }[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe('prompt text', () => {
  it('appends the aesthetic score with %.1f formatting', () => {
    expect(buildPrompt('a red ball', 6.5)).toBe('a red ball aesthetic score: 6.5.');
    expect(buildPrompt('a red ball', 7)).toBe('a red ball aesthetic score: 7.0.');
    expect(buildPrompt('a red ball', null)).toBe('a red ball');
  });

  it('rounds exact ties half to even, as Python does', () => {
    expect(formatOneDecimal(6.25)).toBe('6.2');
    expect(formatOneDecimal(6.75)).toBe('6.8');
    expect(formatOneDecimal(0.15)).toBe('0.1'); // 0.1499999… in binary: not a tie
    expect(formatOneDecimal(6.35)).toBe('6.3');
  });

  it('rejects an empty or whitespace-only prompt', () => {
    for (const text of ['', '   ', '\n\t']) {
      expect(() => buildPrompt(text, 6.5)).toThrow(SoraError);
      try {
        buildPrompt(text, 6.5);
      } catch (error) {
        expect((error as SoraError).code).toBe('INPUT');
      }
    }
  });
});

describe('prompt tokenizer', () => {
  it('gives the ids without special tokens, then EOS = 1, then padding 0 to 300', async () => {
    const { logger, lines } = capturingLogger();
    const tokenizer = await PromptTokenizer.load(fixture, settings, logger);
    const encoded = tokenizer.encode('a red ball bouncing aesthetic score: 6.5.');
    // ▁a ▁red ▁ball ▁bouncing ▁aesthetic ▁score : ▁6 . 5 .
    const expected = [4, 5, 6, 7, 15, 16, 17, 83, 18, 80, 18, 1]; // positions in the fixture's vocab
    expect([...encoded.ids.subarray(0, 12)].map(Number)).toEqual(expected);
    expect(encoded.ids).toHaveLength(300);
    expect(encoded.ids.subarray(12).every((id) => id === 0n)).toBe(true);
    expect(encoded.validLength).toBe(12);
    expect([...encoded.mask.subarray(0, 12)]).toEqual(new Array(12).fill(1));
    expect(encoded.mask.subarray(12).every((v) => v === 0)).toBe(true);
    expect(lines).toEqual([]);
  });

  it('keeps the first 299 tokens of a long prompt, appends EOS, and warns', async () => {
    const { logger, lines } = capturingLogger();
    const tokenizer = await PromptTokenizer.load(fixture, settings, logger);
    const encoded = tokenizer.encode(Array.from({ length: 320 }, () => 'red').join(' '));
    expect(encoded.validLength).toBe(300);
    expect(encoded.ids.subarray(0, 299).every((id) => id === 5n)).toBe(true);
    expect(encoded.ids[299]).toBe(1n);
    expect(encoded.mask.every((v) => v === 1)).toBe(true);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ tokens: 320, kept: 299 });
    expect(lines[0]!.msg).toContain('320 tokens');
  });

  it('does not warn at exactly 299 tokens', async () => {
    const { logger, lines } = capturingLogger();
    const tokenizer = await PromptTokenizer.load(fixture, settings, logger);
    expect(tokenizer.encode(Array.from({ length: 299 }, () => 'red').join(' ')).validLength).toBe(300);
    expect(lines).toEqual([]);
  });

  it('maps unknown text to <unk> = 2 rather than dropping it', async () => {
    const tokenizer = await PromptTokenizer.load(fixture, settings, capturingLogger().logger);
    const encoded = tokenizer.encode('red 🎈 ball');
    expect([...encoded.ids.subarray(0, encoded.validLength)].map(Number)).toContain(2);
  });

  it('reports a missing or broken tokenizer file as a MODEL error naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sora-tok-'));
    const files = PromptTokenizer.filesIn(dir, []);
    await expect(PromptTokenizer.load(files, settings, capturingLogger().logger)).rejects.toMatchObject({
      code: 'MODEL',
      message: expect.stringContaining(join(dir, 'tokenizer.json')),
    });
    await writeFile(join(dir, 'tokenizer.json'), '{ not json');
    await writeFile(join(dir, 'tokenizer_config.json'), '{}');
    await expect(PromptTokenizer.load(files, settings, capturingLogger().logger)).rejects.toMatchObject({
      code: 'MODEL',
      message: expect.stringMatching(/tokenizer\.json: invalid JSON/),
    });
    await writeFile(join(dir, 'tokenizer.json'), '{"model": 3}');
    await expect(PromptTokenizer.load(files, settings, capturingLogger().logger)).rejects.toMatchObject({
      code: 'MODEL',
      message: expect.stringMatching(/tokenizer\.json: model: /),
    });
  });
});
