/**
 * The authors' converted CoreML packages (reference §A.1) used as a model folder without manifest.json: the 102
 * packages sit side by side, each a compiled `.mlmodelc` or an `.mlpackage`, next to tokenizer.json and
 * tokenizer_config.json. Recognising the layout reads only names and sizes; the manifest derived from it is ours
 * (models/README.md, "Published CoreML packages") with the packages' own input types and shapes.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { displayPath } from '../display-path.js';
import { errnoCode, errorMessage, SoraError } from '../errors.js';
import { componentOf, requiredBlocks, type BlockKind } from './contract.js';
import { isInside } from './folder.js';
import type { Manifest, ModelDescription, TensorSpec } from './manifest-schema.js';
import type { Model, ModelFile } from './manifest.js';

const PUBLISHED_DESCRIPTION = 'published On-device Sora CoreML packages (derived manifest)';

interface PackageForm {
  readonly extension: '.mlmodelc' | '.mlpackage';
  /** The ML Program weight file inside the package. */
  readonly weights: string;
  /** Files every package of this form holds (what `models verify` checks). */
  readonly required: readonly string[];
}

// Compiled first: when a name exists in both forms the .mlmodelc wins, since it loads without a compile step.
const PACKAGE_FORMS: readonly PackageForm[] = [
  { extension: '.mlmodelc', weights: 'weights/weight.bin', required: ['coremldata.bin', 'model.mil', 'weights/weight.bin'] },
  {
    extension: '.mlpackage',
    weights: 'Data/com.apple.CoreML/weights/weight.bin',
    required: ['Manifest.json', 'Data/com.apple.CoreML/model.mlmodel', 'Data/com.apple.CoreML/weights/weight.bin'],
  },
];

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

/** How many missing names one error line lists before "and N more". */
const LISTED_MISSING = 5;

// The full-size configs of scripts/sora/configs.py and scripts/sora/vae_config.py (test/published-layout.test.ts
// keeps them equal), which are those of the checkpoints the authors converted.
const ARCHITECTURE: Manifest['architecture'] = {
  t5: {
    vocab_size: 32128,
    d_model: 4096,
    num_layers: 24,
    num_heads: 64,
    d_kv: 64,
    d_ff: 10240,
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    layer_norm_eps: 1e-6,
    max_length: 300,
  },
  stdit: {
    depth: 28,
    hidden_size: 1152,
    num_heads: 16,
    mlp_ratio: 4,
    caption_channels: 4096,
    patch_size: [1, 2, 2],
    in_channels: 4,
    out_channels: 8,
    model_max_length: 300,
    input_sq_size: 512,
    qk_norm: true,
    freq_embed_size: 256,
    class_dropout_prob: 0.1,
  },
  vae: {
    name: 'OpenSora-VAE-v1.2',
    temporal: {
      latent_channels: 4,
      filters: 128,
      channel_multipliers: [1, 2, 2, 4],
      num_res_blocks: 4,
      temporal_downsample: [false, true, true],
      num_groups: 32,
      norm_eps: 1e-5,
    },
    spatial: {
      latent_channels: 4,
      block_out_channels: [128, 256, 512, 512],
      layers_per_block: 2,
      norm_num_groups: 32,
      norm_eps: 1e-6,
      out_channels: 3,
      scaling_factor: 0.18215,
    },
    scale: [3.85, 2.32, 2.33, 3.06],
    shift: [-0.1, 0.34, 0.27, 0.98],
    micro_frame_size: 17,
    micro_z_frame_size: 5,
    micro_batch_size: 4,
  },
};

// The app's settings (reference §F): 68 frames at 256² or 192². 68 is the only length the app ran through the
// packages' flexible shapes. Its timestep transform is recorded in the quirks; the tool's default stays Open-Sora's.
const DEFAULTS: Manifest['defaults'] = {
  steps: 30,
  cfgScale: 7.0,
  fps: 24,
  aestheticScore: 6.5,
  resolution: '256x256',
  numFrames: 68,
  resolutions: ['256x256', '192x192'],
  numFramesChoices: [68],
};

type ComputeUnits = NonNullable<Manifest['blocks'][number]['computeUnits']>;

// The app's compute units (SoraPipeline.swift, VAEDecoder.swift): CPU and GPU for T5 and STDiT; CPU only for the
// temporal VAE but part2_2, and for the spatial VAE's part3_3 and part3_4_*. The packages are float32, which the
// Neural Engine does not run, so `all` would only add planning work.
const CPU_ONLY_VAE_PARTS: Readonly<Record<'vae-temporal' | 'vae-spatial', readonly number[]>> = {
  'vae-temporal': [0, 1, 3, 4, 5, 6, 7, 8], // every part but part2_2 (index 2)
  'vae-spatial': [4, 5, 6, 7], // part3_3, part3_4_1, part3_4_2, part3_4_3
};

function appComputeUnits(kind: BlockKind, index: number): ComputeUnits {
  if (kind !== 'vae-temporal' && kind !== 'vae-spatial') return 'cpu-gpu';
  return CPU_ONLY_VAE_PARTS[kind].includes(index) ? 'cpu' : 'cpu-gpu';
}

const QUIRKS: NonNullable<Manifest['quirks']> = { maxCaptionRows: 300, evenTdtmOnly: true, appTimestepTransform: 'ios' };

type Shape = TensorSpec['shape'];

/** Every tensor of the published packages is float32, integers included (the app feeds ids, pads and T as floats). */
function float32(shapes: Record<string, Shape>): TensorSpec[] {
  return Object.entries(shapes).map(([name, shape]) => ({ name, dtype: 'float32', shape }));
}

const T5_HIDDEN: Shape = [1, 300, 4096];
const T5_MASK: Shape = [1, 1, 1, 300];
const T5_POSITION_BIAS: Shape = [1, 64, 300, 300];
const STDIT_TOKENS: Shape = [2, 'N', 1152];
const LATENT: Shape = [2, 4, 'T', 'H', 'W'];

/** [input, output] of each VAE part, in contract order: `h`,`w` are the latent height and width. */
const VAE_TEMPORAL_SHAPES: readonly (readonly [Shape, Shape])[] = [
  [[1, 4, 5, 'h', 'w'], [1, 512, 5, 'h', 'w']],
  [[1, 512, 5, 'h', 'w'], [1, 512, 10, 'h', 'w']],
  [[1, 512, 10, 'h', 'w'], [1, 256, 20, 'h', 'w']],
  [[1, 256, 20, 'h', 'w'], [1, 256, 20, 'h', 'w']],
  [[1, 256, 20, 'h', 'w'], [1, 256, 20, 'h', 'w']],
  [[1, 256, 20, 'h', 'w'], [1, 256, 20, 'h', 'w']],
  [[1, 256, 20, 'h', 'w'], [1, 256, 20, 'h', 'w']],
  [[1, 256, 20, 'h', 'w'], [1, 128, 20, 'h', 'w']],
  [[1, 128, 20, 'h', 'w'], [1, 4, 17, 'h', 'w']],
];
const VAE_SPATIAL_SHAPES: readonly (readonly [Shape, Shape])[] = [
  [[1, 4, 4, 'h', 'w'], [4, 512, 'h', 'w']],
  [[4, 512, 'h', 'w'], [4, 512, 'h', 'w']],
  [[4, 512, 'h', 'w'], [4, 512, '2h', '2w']],
  [[4, 512, '2h', '2w'], [4, 512, '4h', '4w']],
  [[4, 512, '4h', '4w'], [4, 256, '8h', '8w']],
  [[4, 256, '8h', '8w'], [4, 128, '8h', '8w']],
  [[4, 128, '8h', '8w'], [4, 128, '8h', '8w']],
  [[4, 128, '8h', '8w'], [4, 128, '8h', '8w']],
  [[4, 128, '8h', '8w'], [1, 3, 4, '8h', '8w']],
];

/** Inputs and outputs of one published package (reference §A.2–A.4). */
function publishedIO(kind: BlockKind, index: number): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  switch (kind) {
    case 't5-embed':
      return { inputs: float32({ input_ids: [1, 300] }), outputs: float32({ output: T5_HIDDEN }) };
    case 't5-layer':
      return index === 0
        ? {
            inputs: float32({ hidden_states: T5_HIDDEN, attention_mask: T5_MASK, y_embedding: [300, 4096] }),
            outputs: float32({ output_hidden_states: T5_HIDDEN, output_position_bias: T5_POSITION_BIAS, yNull: [300, 4096] }),
          }
        : {
            inputs: float32({ hidden_states: T5_HIDDEN, attention_mask: T5_MASK, position_bias: T5_POSITION_BIAS }),
            outputs: float32({ output_hidden_states: T5_HIDDEN }),
          };
    case 't5-final-norm':
      return { inputs: float32({ input: T5_HIDDEN }), outputs: float32({ output: T5_HIDDEN }) };
    case 'stdit-part1':
      return {
        inputs: float32({
          z_in: LATENT,
          t: [2],
          y: [2, 1, 300, 4096],
          mask: [1, 300],
          fps: [1],
          height: [1],
          width: [1],
          padH: [1],
          padW: [1],
        }),
        outputs: float32({ x: STDIT_TOKENS, outY: [1, 'M', 1152], t_mlp: [2, 6912], T: [1], outT: [2, 1152] }),
      };
    case 'stdit-st':
    case 'stdit-tdtm':
      // The mask carries one copy per head (16); Q is 2N rows for ST and N rows (merged frames) for TDTM.
      return {
        inputs: float32({ x: STDIT_TOKENS, y: [1, 'M', 1152], t_mlp: [2, 6912], attn: [1, 16, 'Q', 'M'], T: [1] }),
        outputs: float32({ output: STDIT_TOKENS }),
      };
    case 'stdit-part2':
      // `t` is part1's 1152-wide `outT`, not the scalar timestep.
      return {
        inputs: float32({ z_in: LATENT, x: STDIT_TOKENS, t: [2, 1152], padH: [1], padW: [1] }),
        outputs: float32({ output: [2, 8, 'T', 'H', 'W'] }),
      };
    case 'vae-temporal':
    case 'vae-spatial': {
      const shapes = (kind === 'vae-temporal' ? VAE_TEMPORAL_SHAPES : VAE_SPATIAL_SHAPES)[index];
      if (shapes === undefined) throw new RangeError(`${kind} has no part ${index}`);
      return { inputs: float32({ latents: shapes[0] }), outputs: float32({ output: shapes[1] }) };
    }
  }
}

export interface PublishedLayout {
  readonly manifest: ModelDescription;
  /** Package folders beside the blocks that are not blocks of the contract; left alone. */
  readonly ignored: readonly string[];
}

const PUBLISHED_BLOCKS = requiredBlocks(ARCHITECTURE.t5.num_layers, ARCHITECTURE.stdit.depth);

/**
 * The manifest of a folder of published packages, or undefined when the folder does not look like one (at most
 * half of the 102 packages present). Throws when most are there but some package or tokenizer file is missing, or
 * when anything inside resolves outside the folder.
 */
export async function derivePublishedManifest(dir: string): Promise<PublishedLayout | undefined> {
  const entries = new Set(await readdir(dir));
  const found = PUBLISHED_BLOCKS.flatMap((block) => {
    const file = packageFile(block.name, entries);
    return file === undefined ? [] : [{ block, file }];
  });
  if (found.length * 2 <= PUBLISHED_BLOCKS.length) return undefined;

  const missing = [
    ...PUBLISHED_BLOCKS.filter((block) => !found.some((entry) => entry.block === block)).map((block) => block.name),
    ...TOKENIZER_FILES.filter((name) => !entries.has(name)),
  ];
  if (missing.length > 0) {
    const listed = missing.slice(0, LISTED_MISSING).join(', ');
    const more = missing.length > LISTED_MISSING ? ` and ${missing.length - LISTED_MISSING} more` : '';
    throw new SoraError(
      'MODEL',
      `${displayPath(dir)}: incomplete published On-device Sora CoreML packages: missing ${listed}${more} ` +
        `(each of the ${PUBLISHED_BLOCKS.length} packages as .mlmodelc or .mlpackage, plus ${TOKENIZER_FILES.join(' and ')})`,
    );
  }

  const realDir = await realpath(dir);
  const blocks: ModelDescription['blocks'][number][] = [];
  for (const { block, file } of found) {
    const { bytes, weightBytes } = await measurePackage(dir, realDir, file);
    blocks.push({
      name: block.name,
      component: componentOf(block.kind),
      kind: block.kind,
      index: block.index,
      format: 'coreml',
      dtype: 'float32',
      files: [{ path: file.name, bytes, role: 'graph' }],
      weightBytes,
      ...publishedIO(block.kind, block.index),
      computeUnits: appComputeUnits(block.kind, block.index),
    });
  }
  const tokenizerFiles = [];
  for (const name of TOKENIZER_FILES) tokenizerFiles.push({ path: name, bytes: await measureFile(dir, realDir, name) });

  const used = new Set(found.map((entry) => entry.file.name));
  const ignored = [...entries].filter((name) => formOf(name) !== undefined && !used.has(name)).sort();
  return {
    manifest: {
      format: 'ondevice-sora-model',
      formatVersion: 1,
      name: 'on-device-sora-coreml',
      description: PUBLISHED_DESCRIPTION,
      architecture: ARCHITECTURE,
      tokenizer: { files: tokenizerFiles, maxLength: 300, padId: 0, eosId: 1 },
      blocks,
      defaults: DEFAULTS,
      quirks: QUIRKS,
    },
    ignored,
  };
}

interface PackageFile {
  readonly name: string;
  readonly form: PackageForm;
}

function packageFile(block: string, entries: ReadonlySet<string>): PackageFile | undefined {
  const form = PACKAGE_FORMS.find((candidate) => entries.has(`${block}${candidate.extension}`));
  return form === undefined ? undefined : { name: `${block}${form.extension}`, form };
}

function formOf(name: string): PackageForm | undefined {
  return PACKAGE_FORMS.find((form) => form.extension === extname(name));
}

/** Whether a path names a CoreML package folder (.mlmodelc or .mlpackage). */
export function isPackagePath(path: string): boolean {
  return formOf(path) !== undefined;
}

/** Total bytes of the files in a package folder; refuses any entry that resolves outside realDir. */
export async function packageBytes(path: string, realDir: string): Promise<number> {
  return treeBytes(path, realDir, new Set());
}

/** Total bytes of the package's files, and of its weight file (0 when the package has none). */
async function measurePackage(dir: string, realDir: string, file: PackageFile): Promise<{ bytes: number; weightBytes: number }> {
  const path = join(dir, file.name);
  const info = await stat(await realInside(path, realDir));
  if (!info.isDirectory()) throw new SoraError('MODEL', `${displayPath(path)}: is not a folder (a CoreML package is one)`);
  const bytes = await packageBytes(path, realDir);
  const weights = await stat(join(path, file.form.weights)).catch((error: unknown) => {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw folderError(error, join(path, file.form.weights));
  });
  return { bytes, weightBytes: weights?.size ?? 0 };
}

/**
 * Bytes of every file under `path`. Each entry is resolved to its real path first, so a symlink anywhere in a
 * package that points out of the model folder is refused, and a link back to a folder already counted is not
 * followed twice.
 */
async function treeBytes(path: string, realDir: string, seen: Set<string>): Promise<number> {
  const real = await realInside(path, realDir);
  const info = await stat(real);
  if (info.isFile()) return info.size;
  if (!info.isDirectory() || seen.has(real)) return 0;
  seen.add(real);
  let bytes = 0;
  for (const name of await readdir(real)) bytes += await treeBytes(join(path, name), realDir, seen);
  return bytes;
}

async function measureFile(dir: string, realDir: string, name: string): Promise<number> {
  const path = join(dir, name);
  const info = await stat(await realInside(path, realDir));
  if (!info.isFile()) throw new SoraError('MODEL', `${displayPath(path)}: is not a file`);
  return info.size;
}

async function realInside(path: string, realDir: string): Promise<string> {
  const real = await realpath(path).catch((error: unknown) => {
    throw folderError(error, path);
  });
  if (!isInside(realDir, real)) {
    throw new SoraError('MODEL', `${displayPath(path)}: escapes the model folder (it resolves to ${real})`);
  }
  return real;
}

function folderError(error: unknown, path: string): SoraError {
  const code = errnoCode(error) === 'ENOENT' ? 'MODEL' : 'IO';
  return new SoraError(code, `${displayPath(path)}: ${errorMessage(error)}`, { cause: error });
}

export interface StructureResult {
  readonly files: number;
  readonly bytes: number;
}

/**
 * What `models verify` can check without opening a package: every CoreML block's package holds the files of its
 * form. Tokenizer files and package paths were already checked by loadModel.
 */
export async function checkPackageStructure(model: Model, onFile?: (file: ModelFile) => void): Promise<StructureResult> {
  const problems: string[] = [];
  for (const block of model.blocks.filter((candidate) => candidate.format === 'coreml')) {
    const form = formOf(block.graph.path);
    if (form === undefined) throw new SoraError('INTERNAL', `${block.name}: ${block.graph.path} is not a CoreML package`);
    onFile?.(block.graph);
    for (const required of form.required) {
      const path = join(block.graph.path, required);
      const info = await stat(path).catch((error: unknown) => {
        if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined;
        throw folderError(error, path);
      });
      if (info?.isFile() !== true) {
        problems.push(`${displayPath(block.graph.path)}: missing ${required} (every ${form.extension} holds it)`);
      }
    }
  }
  const [first, ...rest] = problems;
  if (first !== undefined) {
    const more = rest.length > 0 ? ` (and ${rest.length} more missing file${rest.length > 1 ? 's' : ''})` : '';
    throw new SoraError('MODEL', `${first}${more}`);
  }
  const files = [...model.tokenizer.files, ...model.blocks.flatMap((block) => block.files)];
  return { files: files.length, bytes: files.reduce((sum, file) => sum + file.bytes, 0) };
}
