/**
 * The bounds every number from outside is held to: flags, prompt-file fields and manifest.json (whose schema, and
 * through it the Python exporter, gets them too). Without them a typo (`--steps 99999999999`) or a broken manifest
 * (`maxLength: 1e9`) reaches an allocation and fails deep inside as an "internal error", or grows until memory runs
 * out. Each bound is far above anything a real model or run uses, and says why.
 */
export const LIMITS = {
  /** Denoising steps. Rectified flow is trained on 1000 timesteps; more steps only re-sample the same ones. */
  steps: 1000,
  /** Frames of one video: Open-Sora 1.2's longest, 16 s at 24 fps (24 × 17). */
  numFrames: 408,
  /** Pixels per side: Open-Sora 1.2 goes up to 720p (1280 × 720); 2048 leaves room, not a 1e8-pixel frame. */
  side: 2048,
  /** Frame rate the model is conditioned on and the file plays at. */
  fps: 240,
  /** Classifier-free guidance scale: Open-Sora uses 7; beyond 100 the video is saturated noise. */
  cfgScale: 100,
  /** Aesthetic score appended to the prompt: Open-Sora's scale is 0–10. */
  aestheticScore: 10,
  /**
   * Tokens per prompt (the T5 sequence). Open-Sora uses 300; at 1024 one T5-XXL layer's attention scores are already
   * 64 heads × 1024² floats (256 MiB).
   */
  tokens: 1024,
  /** Token ids: T5's vocabulary has 32128; no tokenizer this tool can use has a million. */
  tokenId: 1_048_575,
  /** Layers, blocks and heads of one component (T5-XXL: 24 layers, 64 heads; STDiT3-XL: 28 blocks, 16 heads). */
  layers: 256,
  heads: 1024,
  /** Channel width of a layer (T5-XXL d_model 4096, d_ff 10240; STDiT3-XL hidden 1152). */
  width: 65_536,
  /** One dimension of a declared tensor shape. */
  dimension: 1 << 24,
  /** Rank of a declared tensor shape (the contract's largest is 5). */
  rank: 8,
  /**
   * Elements of one declared tensor: a typed array holds at most 2³² − 1; a block whose tensors come near is not one
   * this tool can run.
   */
  elements: 2 ** 31,
  /** Bytes of one file or of one block's weights: 1 TiB (a whole Open-Sora 1.2 is about 20 GB). */
  bytes: 2 ** 40,
  /** Any other number of an exporter's configuration (epsilons, scales, sizes), in magnitude. */
  configMagnitude: 1e9,
} as const;

/**
 * A regular expression (source, no anchors) matching the integers 1..max written without leading zeros, so that a
 * bound inside a string field (`"256x256"`) reaches the JSON Schema and the Python exporter as well.
 */
export function positiveIntegerUpTo(max: number): string {
  const digits = String(max);
  const alternatives = digits.length > 1 ? [`[1-9][0-9]{0,${digits.length - 2}}`] : [];
  for (let i = 0; i < digits.length; i++) {
    const digit = Number(digits[i]);
    const lowest = i === 0 ? 1 : 0;
    if (digit > lowest) alternatives.push(`${digits.slice(0, i)}[${lowest}-${digit - 1}][0-9]{${digits.length - i - 1}}`);
  }
  alternatives.push(digits);
  return `(?:${alternatives.join('|')})`;
}
