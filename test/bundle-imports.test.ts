import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');

describe('imports the bundle depends on (scripts/build.mjs)', () => {
  it("zod only as a namespace: `import { z } from 'zod'` would bundle all of zod, every locale included", async () => {
    const files = (await readdir(SRC, { recursive: true })).filter((file) => file.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(50);
    const named = [];
    for (const file of files) {
      if (/import\s*\{[^}]*\}\s*from\s*'zod'/.test(await readFile(join(SRC, file), 'utf8'))) named.push(file);
    }
    expect(named).toEqual([]);
  });
});
