import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { manifestJsonSchema } from '../src/model/manifest-schema.js';

describe('models/manifest.schema.json', () => {
  it('is exactly what `npm run schema` generates from the zod schema', async () => {
    const committed = await readFile(new URL('../models/manifest.schema.json', import.meta.url), 'utf8');
    expect(committed, 'models/manifest.schema.json is stale: run `npm run schema`').toBe(manifestJsonSchema());
  });
});
