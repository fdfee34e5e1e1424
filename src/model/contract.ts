/**
 * The block contract of models/README.md as data: which blocks a model folder must hold, their names and the
 * names of their inputs and outputs. The names are those of the published On-device Sora CoreML packages.
 */
export const COMPONENTS = ['t5', 'stdit', 'vae'] as const;
export type Component = (typeof COMPONENTS)[number];

export const BLOCK_KINDS = [
  't5-embed',
  't5-layer',
  't5-final-norm',
  'stdit-part1',
  'stdit-st',
  'stdit-tdtm',
  'stdit-part2',
  'vae-temporal',
  'vae-spatial',
] as const;
export type BlockKind = (typeof BLOCK_KINDS)[number];

export const VAE_TEMPORAL_PARTS = [
  'vae_temporal_part1',
  'vae_temporal_part2_1',
  'vae_temporal_part2_2',
  'vae_temporal_part2_3_1',
  'vae_temporal_part2_3_2',
  'vae_temporal_part2_3_3',
  'vae_temporal_part2_3_4',
  'vae_temporal_part2_4',
  'vae_temporal_part3',
] as const;

export const VAE_SPATIAL_PARTS = [
  'vae_spatial_part1',
  'vae_spatial_part2',
  'vae_spatial_part3_1',
  'vae_spatial_part3_2',
  'vae_spatial_part3_3',
  'vae_spatial_part3_4_1',
  'vae_spatial_part3_4_2',
  'vae_spatial_part3_4_3',
  'vae_spatial_part4',
] as const;

export interface BlockIO {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export interface ContractBlock extends BlockIO {
  readonly kind: BlockKind;
  readonly index: number;
  readonly name: string;
}

export function componentOf(kind: BlockKind): Component {
  return kind.startsWith('t5-') ? 't5' : kind.startsWith('stdit-') ? 'stdit' : 'vae';
}

/** The contract name of block `index` of `kind`, or undefined when that kind has no such index. */
export function contractName(kind: BlockKind, index: number): string | undefined {
  switch (kind) {
    case 't5-embed':
      return index === 0 ? 't5embed-tokens' : undefined;
    case 't5-layer':
      return `t5block-layer${index}`;
    case 't5-final-norm':
      return index === 0 ? 't5final-layer-norm' : undefined;
    case 'stdit-part1':
      return index === 0 ? 'stdit3_part1' : undefined;
    case 'stdit-st':
      return `stdit3_ST_${index}`;
    case 'stdit-tdtm':
      return `stdit3_TDTM_${index}`;
    case 'stdit-part2':
      return index === 0 ? 'stdit3_part2' : undefined;
    case 'vae-temporal':
      return VAE_TEMPORAL_PARTS[index];
    case 'vae-spatial':
      return VAE_SPATIAL_PARTS[index];
  }
}

const STDIT_BLOCK_IO: BlockIO = { inputs: ['x', 'y', 't_mlp', 'attn', 'T'], outputs: ['output'] };

export function contractIO(kind: BlockKind, index: number): BlockIO {
  switch (kind) {
    case 't5-embed':
      return { inputs: ['input_ids'], outputs: ['output'] };
    case 't5-layer':
      // Layer 0 owns the relative position bias and emits it (mask added) for every later layer.
      return index === 0
        ? {
            inputs: ['hidden_states', 'attention_mask', 'y_embedding'],
            outputs: ['output_hidden_states', 'output_position_bias', 'yNull'],
          }
        : { inputs: ['hidden_states', 'attention_mask', 'position_bias'], outputs: ['output_hidden_states'] };
    case 't5-final-norm':
      return { inputs: ['input'], outputs: ['output'] };
    case 'stdit-part1':
      return {
        inputs: ['z_in', 't', 'y', 'mask', 'fps', 'height', 'width', 'padH', 'padW'],
        outputs: ['x', 'outY', 't_mlp', 'T', 'outT'],
      };
    case 'stdit-st':
    case 'stdit-tdtm':
      return STDIT_BLOCK_IO;
    case 'stdit-part2':
      return { inputs: ['z_in', 'x', 't', 'padH', 'padW'], outputs: ['output'] };
    case 'vae-temporal':
    case 'vae-spatial':
      return { inputs: ['latents'], outputs: ['output'] };
  }
}

function contractBlock(kind: BlockKind, index: number): ContractBlock {
  const name = contractName(kind, index);
  if (name === undefined) throw new RangeError(`${kind} has no block ${index}`);
  return { kind, index, name, ...contractIO(kind, index) };
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}

/** Every block a complete model must hold, in pipeline order. */
export function requiredBlocks(t5Layers: number, stditDepth: number): ContractBlock[] {
  return [
    contractBlock('t5-embed', 0),
    ...range(t5Layers).map((i) => contractBlock('t5-layer', i)),
    contractBlock('t5-final-norm', 0),
    contractBlock('stdit-part1', 0),
    ...range(stditDepth).flatMap((i) => [contractBlock('stdit-st', i), contractBlock('stdit-tdtm', i)]),
    contractBlock('stdit-part2', 0),
    ...VAE_TEMPORAL_PARTS.map((_, i) => contractBlock('vae-temporal', i)),
    ...VAE_SPATIAL_PARTS.map((_, i) => contractBlock('vae-spatial', i)),
  ];
}

/** What differs between two name lists, as message text (`missing "x", unexpected "y"`), or undefined when equal as sets. */
export function nameMismatch(expected: readonly string[], actual: readonly string[]): string | undefined {
  const missing = expected.filter((name) => !actual.includes(name)).map((name) => `missing "${name}"`);
  const unexpected = actual.filter((name) => !expected.includes(name)).map((name) => `unexpected "${name}"`);
  const problems = [...missing, ...unexpected];
  return problems.length === 0 ? undefined : problems.join(', ');
}
