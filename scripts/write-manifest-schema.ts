/** `npm run schema`: writes models/manifest.schema.json from the zod schema (test/schema.test.ts keeps them equal). */
import { writeFile } from 'node:fs/promises';
import { manifestJsonSchema } from '../src/model/manifest-schema.js';

await writeFile(new URL('../models/manifest.schema.json', import.meta.url), manifestJsonSchema());
