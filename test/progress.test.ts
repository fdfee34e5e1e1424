import { describe, expect, it } from 'vitest';
import { formatDuration, jobLines, progressDisplay } from '../src/cli/progress.js';

function stream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, write: (chunk: string) => chunks.push(chunk) } as unknown as NodeJS.WriteStream };
}

describe('progress display', () => {
  it('prints one plain line per event when stderr is not a terminal', () => {
    const { chunks, stream: out } = stream(false);
    const display = progressDisplay(out);
    display.update({ phase: 'text' });
    display.update({ phase: 'denoise', step: 1, steps: 2 });
    display.update({ phase: 'denoise', step: 2, steps: 2 });
    display.update({ phase: 'decode', frames: 17, total: 17 });
    display.update({ phase: 'write' });
    display.finish();
    expect(chunks.join('')).toBe(
      'encoding prompt\ndenoising 1/2 steps\ndenoising 2/2 steps\ndecoding 17/17 frames\nwriting video\n',
    );
  });

  it('redraws one line with a bar and an ETA on a terminal', () => {
    const { chunks, stream: out } = stream(true);
    let now = 0;
    const display = progressDisplay(out, () => now);
    display.update({ phase: 'denoise', step: 1, steps: 4 });
    now = 3000; // the rate is measured from the first event: 3 s per step
    display.update({ phase: 'denoise', step: 2, steps: 4 });
    display.finish();
    expect(chunks[0]).toBe(`\rdenoising [${'#'.repeat(6)}${'-'.repeat(18)}] 1/4 steps\x1b[K`);
    expect(chunks[1]).toBe(`\rdenoising [${'#'.repeat(12)}${'-'.repeat(12)}] 2/4 steps  ETA 0:06\x1b[K`);
    expect(chunks.at(-1)).toBe('\n');
  });

  it('counts the jobs of a long run, with an ETA from the mean time of those done', () => {
    let now = 1000;
    const line = jobLines(() => now);
    expect(line(1, 10, 'baseline: prompt 1')).toBe('[1/10] baseline: prompt 1');
    now += 4000; // one job took 4 s: 9 more to go
    expect(line(2, 10, 'lpl15: prompt 1')).toBe('[2/10] lpl15: prompt 1  ETA 0:36');
    now += 2000; // two done in 6 s: 3 s each, 8 to go
    expect(line(3, 10, 'baseline: prompt 2')).toBe('[3/10] baseline: prompt 2  ETA 0:24');
  });

  it('formats durations as m:ss and h:mm:ss', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(61_400)).toBe('1:01');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
  });
});
