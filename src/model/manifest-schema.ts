/**
 * manifest.json of a model folder: the single definition. `npm run schema` writes models/manifest.schema.json
 * from it, which the Python exporter validates against; every object is strict so both sides reject the same
 * documents (a stripped unknown key here would be an error there).
 */
import { z } from 'zod';
import { TIMESTEP_TRANSFORMS } from '../pipeline/timesteps.js';
import { BLOCK_FORMATS, TENSOR_DTYPES } from '../runtime/backend.js';
import { BLOCK_KINDS, COMPONENTS } from './contract.js';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hexadecimal digits');

// A regex rather than a refinement so the rule also reaches the JSON schema (and the Python exporter).
// It rejects absolute paths (POSIX and Windows), backslashes and any `..` segment.
const relativePath = z
  .string()
  .regex(
    /^(?!\/)(?![A-Za-z]:)(?!.*\\)(?!(?:.*\/)?\.\.(?:\/|$)).+$/,
    "escapes the model folder (must be a relative path inside it, without '..')",
  );

const bytes = z.int().min(0);

const fileEntry = z.strictObject({ path: relativePath, bytes, sha256 });

const tensorSpec = z.strictObject({
  name: z.string().min(1),
  dtype: z.enum(TENSOR_DTYPES),
  // Numbers are fixed sizes; strings name a symbolic size (`N`, `B`) that depends on the request.
  shape: z.array(z.union([z.int().min(0), z.string().min(1)])),
});

const block = z.strictObject({
  name: z.string().min(1),
  component: z.enum(COMPONENTS),
  kind: z.enum(BLOCK_KINDS),
  index: z.int().min(0),
  // `coreml` blocks are package folders (.mlmodelc / .mlpackage); only manifests derived from the published layout
  // hold them (src/model/published-layout.ts), because a folder has no sha256 for manifest.json to record.
  format: z.enum(BLOCK_FORMATS),
  dtype: z.enum(['float32', 'float16']),
  files: z.array(fileEntry.extend({ role: z.enum(['graph', 'weights']) })).min(1),
  weightBytes: bytes,
  inputs: z.array(tensorSpec).min(1),
  outputs: z.array(tensorSpec).min(1),
});

// Architecture sections are filled from the Python exporter's config dataclasses (`dataclasses.asdict`), so they
// are open records; only the sizes the contract checks need are required here.
const scalar = z.union([z.number(), z.string(), z.boolean()]);
const configValue = z.union([scalar, z.array(scalar)]);
const configEntry = z.union([configValue, z.record(z.string(), configValue)]);
const positive = z.int().min(1);
const count = z.int().min(0);

const architecture = z.strictObject({
  t5: z.object({ num_layers: positive, d_model: positive, num_heads: positive }).catchall(configEntry),
  stdit: z.object({ depth: positive, hidden_size: positive, num_heads: positive }).catchall(configEntry),
  vae: z.record(z.string(), configEntry),
});

/**
 * Model-wide facts of the published CoreML packages that no single input spec can carry (per-input quirks, such
 * as token ids fed as float32 or the attention mask's 16 heads, live in the block's `inputs`).
 */
const quirks = z.strictObject({
  // Upper bound of the flexible `y`/`outY` row axis (2L): prompts longer than maxCaptionRows/2 − 1 tokens + EOS fail.
  maxCaptionRows: positive,
  // The TDTM graphs add frame pairs without a leftover-frame rule, so they need an even number of latent frames.
  evenTdtmOnly: z.boolean(),
  // The timestep transform the authors' app used; the tool's default stays `opensora`.
  appTimestepTransform: z.enum(TIMESTEP_TRANSFORMS),
});

/**
 * What a model trained on a closed world knows: its words and how many objects a scene may hold. A model trained
 * on open captions (real Open-Sora weights) has none, and its prompts are never checked.
 */
const vocabulary = z.strictObject({
  // Every word of its training captions, lowercase letters only.
  words: z.array(z.string().regex(/^[a-z]+$/, 'must be a lowercase word')).min(1),
  // The words among them that name an object ("circle", "square").
  objectWords: z.array(z.string().regex(/^[a-z]+$/, 'must be a lowercase word')),
  // The most objects one of its videos shows.
  maxObjects: positive,
});

const resolution = z.string().regex(/^[1-9][0-9]*x[1-9][0-9]*$/, 'must look like 256x256');

const defaults = z.strictObject({
  steps: positive,
  cfgScale: z.number().min(0),
  fps: z.number().positive(),
  aestheticScore: z.number(),
  resolution,
  numFrames: positive,
  resolutions: z.array(resolution).min(1),
  numFramesChoices: z.array(positive).min(1),
});

export const ManifestSchema = z
  .strictObject({
    format: z.literal('ondevice-sora-model'),
    formatVersion: z.literal(1),
    name: z.string().min(1),
    description: z.string(),
    architecture,
    tokenizer: z.strictObject({
      files: z.array(fileEntry).min(1),
      maxLength: positive,
      padId: count,
      eosId: count,
    }),
    blocks: z.array(block).min(1),
    defaults,
    quirks: quirks.optional(),
    vocabulary: vocabulary.optional(),
  })
  .meta({
    title: 'ondevice-sora model manifest',
    description: 'manifest.json of a model folder; generated from src/model/manifest-schema.ts, do not edit.',
  });

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestBlock = Manifest['blocks'][number];
export type ManifestFile = z.infer<typeof fileEntry>;
export type TensorSpec = z.infer<typeof tensorSpec>;
export type Quirks = z.infer<typeof quirks>;
export type Vocabulary = z.infer<typeof vocabulary>;

/** A file as the loader works with it: read from manifest.json it has a sha256; derived from a folder it has none. */
export type FileRef = Omit<ManifestFile, 'sha256'> & { readonly sha256?: string };
export type BlockDescription = Omit<ManifestBlock, 'files'> & {
  readonly files: readonly (FileRef & { readonly role: ManifestBlock['files'][number]['role'] })[];
};
/** A manifest read from manifest.json, or derived in memory from a recognised folder layout (no sha256 anywhere). */
export type ModelDescription = Omit<Manifest, 'tokenizer' | 'blocks'> & {
  readonly tokenizer: Omit<Manifest['tokenizer'], 'files'> & { readonly files: readonly FileRef[] };
  readonly blocks: readonly BlockDescription[];
};

export function manifestJsonSchema(): string {
  return `${JSON.stringify(z.toJSONSchema(ManifestSchema), null, 2)}\n`;
}
