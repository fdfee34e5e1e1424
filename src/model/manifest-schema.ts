/**
 * manifest.json of a model folder: the single definition. `npm run schema` writes models/manifest.schema.json
 * from it, which the Python exporter validates against; every object is strict so both sides reject the same
 * documents (a stripped unknown key here would be an error there).
 */
import * as z from 'zod';
import { COMPUTE_UNITS } from '../native/coreml.js';
import { TIMESTEP_TRANSFORMS } from '../pipeline/timesteps.js';
import { BLOCK_FORMATS, TENSOR_DTYPES } from '../runtime/backend.js';
import { BLOCK_KINDS, COMPONENTS } from './contract.js';
import { LIMITS, positiveIntegerUpTo } from './limits.js';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hexadecimal digits');

// A regex rather than a refinement so the rule also reaches the JSON schema (and the Python exporter).
// It rejects absolute paths (POSIX and Windows), backslashes and any `..` segment.
const relativePath = z
  .string()
  .regex(
    /^(?!\/)(?![A-Za-z]:)(?!.*\\)(?!(?:.*\/)?\.\.(?:\/|$)).+$/,
    "escapes the model folder (must be a relative path inside it, without '..')",
  );

// Every number has a bound (src/model/limits.ts): max() reaches the JSON Schema, so the Python exporter holds to it.
const bytes = z.int().min(0).max(LIMITS.bytes);

const fileEntry = z.strictObject({ path: relativePath, bytes, sha256 });

export const MAX_ELEMENTS_KEYWORD = 'x-maxElements';

/** Elements of a shape's fixed dimensions; also checked by scripts/sora/manifest.py (a JSON Schema cannot multiply). */
export function fixedElements(shape: readonly (number | string)[]): number {
  return shape.reduce<number>((product, dim) => (typeof dim === 'number' ? product * dim : product), 1);
}

const tensorSpec = z.strictObject({
  name: z.string().min(1),
  dtype: z.enum(TENSOR_DTYPES),
  // Numbers are fixed sizes; strings name a symbolic size (`N`, `B`) that depends on the request.
  shape: z
    .array(z.union([z.int().min(0).max(LIMITS.dimension), z.string().min(1)]))
    .max(LIMITS.rank)
    .refine((shape) => fixedElements(shape) <= LIMITS.elements, `holds more than ${LIMITS.elements} elements`)
    // The refinement does not reach the JSON Schema; this keyword carries its bound to scripts/sora/manifest.py.
    .meta({ [MAX_ELEMENTS_KEYWORD]: LIMITS.elements }),
});

const block = z.strictObject({
  name: z.string().min(1),
  component: z.enum(COMPONENTS),
  kind: z.enum(BLOCK_KINDS),
  index: z.int().min(0).max(LIMITS.layers),
  // A `coreml` block's one file entry is its package folder (.mlpackage / .mlmodelc): `bytes` is the total of the
  // files inside and `sha256` the package digest (packageContentHash in src/runtime/coreml-cache.ts), absent in a
  // derived manifest.
  format: z.enum(BLOCK_FORMATS),
  // onnx: how weights are stored (float16 and int8 weights are computed in float32; int8 only for matrices and
  // kernels, with a scale per output channel); coreml: the compute precision.
  dtype: z.enum(['float32', 'float16', 'int8']),
  files: z.array(fileEntry.extend({ role: z.enum(['graph', 'weights']) })).min(1),
  weightBytes: bytes,
  inputs: z.array(tensorSpec).min(1),
  outputs: z.array(tensorSpec).min(1),
  // MLComputeUnits this block runs with on the CoreML backend (ignored by ONNX Runtime); `--compute-units`
  // overrides it for every block, and a block without it runs with `all`.
  computeUnits: z.enum(COMPUTE_UNITS).optional(),
});

// Architecture sections are filled from the Python exporter's config dataclasses (`dataclasses.asdict`), so they
// are open records; only the sizes the contract checks need are required here.
const configNumber = z.number().min(-LIMITS.configMagnitude).max(LIMITS.configMagnitude);
const scalar = z.union([configNumber, z.string(), z.boolean()]);
const configValue = z.union([scalar, z.array(scalar)]);
const configEntry = z.union([configValue, z.record(z.string(), configValue)]);
const positiveUpTo = (max: number) => z.int().min(1).max(max);
const layers = positiveUpTo(LIMITS.layers);
const width = positiveUpTo(LIMITS.width);
const heads = positiveUpTo(LIMITS.heads);
const tokenId = z.int().min(0).max(LIMITS.tokenId);

const architecture = z.strictObject({
  t5: z.object({ num_layers: layers, d_model: width, num_heads: heads }).catchall(configEntry),
  stdit: z.object({ depth: layers, hidden_size: width, num_heads: heads }).catchall(configEntry),
  vae: z.record(z.string(), configEntry),
});

/**
 * Model-wide facts of the published CoreML packages that no single input spec can carry (per-input quirks, such
 * as token ids fed as float32 or the attention mask's 16 heads, live in the block's `inputs`).
 */
const quirks = z.strictObject({
  // Upper bound of the flexible `y`/`outY` row axis (2L): prompts longer than maxCaptionRows/2 − 1 tokens + EOS fail.
  maxCaptionRows: positiveUpTo(2 * LIMITS.tokens),
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
  maxObjects: positiveUpTo(64),
});

/**
 * Where a converted model's weights came from: per component the Hugging Face repository, the revision asked for
 * and the commit it resolved to, or only the folder's name for checkpoints that were not in the hub cache.
 */
const checkpoint = z.strictObject({
  component: z.enum(COMPONENTS),
  repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be org/name').optional(),
  revision: z.string().min(1).optional(),
  commit: z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-digit commit hash').optional(),
  folder: z.string().min(1).optional(),
});

const side = positiveIntegerUpTo(LIMITS.side);
const resolution = z
  .string()
  .regex(new RegExp(`^${side}x${side}$`), `must look like 256x256, each side at most ${LIMITS.side}`);
const numFrames = positiveUpTo(LIMITS.numFrames);

const defaults = z.strictObject({
  steps: positiveUpTo(LIMITS.steps),
  cfgScale: z.number().min(0).max(LIMITS.cfgScale),
  fps: z.number().positive().max(LIMITS.fps),
  aestheticScore: z.number().min(0).max(LIMITS.aestheticScore),
  resolution,
  numFrames,
  resolutions: z.array(resolution).min(1),
  numFramesChoices: z.array(numFrames).min(1),
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
      maxLength: positiveUpTo(LIMITS.tokens),
      padId: tokenId,
      eosId: tokenId,
    }),
    blocks: z.array(block).min(1),
    defaults,
    quirks: quirks.optional(),
    checkpoints: z.array(checkpoint).optional(),
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
export type CheckpointOrigin = z.infer<typeof checkpoint>;
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
