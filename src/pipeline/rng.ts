/**
 * Seeded Gaussian noise for the initial latent, bit-identical on every platform, CPU and JavaScript engine, so the
 * same seed gives the same video everywhere.
 *
 * - Integers: xoshiro128** (Blackman & Vigna, 2018) on four 32-bit words, stepped with Math.imul, shifts and xor:
 *   exact integer arithmetic in every engine. Its state is seeded from SplitMix64 of the seed (BigInt, exact), the
 *   seeding its authors recommend.
 * - Uniforms: two 32-bit outputs make one 53-bit double in [0, 1) (exact).
 * - Normals: Marsaglia's polar method, which needs only +, −, ×, ÷, sqrt and log, in float64, then one rounding to
 *   float32. JavaScript's basic arithmetic and sqrt are IEEE-754 correctly rounded and never fused (no FMA), so they
 *   agree everywhere. Math.log is only "implementation-approximated": V8 happens to ship a software (fdlibm) log, but
 *   other engines call the system libm, and V8 has swapped such functions before (sin/cos moved from fdlibm to a
 *   glibc port, which is also why Box–Muller's trigonometry is avoided). So the logarithm is computed here from
 *   basic arithmetic only (`portableLog`), which fixes every bit of the result.
 *
 * Values fill the latent [1, C, T, H, W] in row-major order.
 */
export function gaussianNoise(seed: number, length: number): Float32Array {
  const random = new Xoshiro128StarStar(seed);
  const out = new Float32Array(length);
  let i = 0;
  while (i < length) {
    const u = 2 * random.nextDouble() - 1;
    const v = 2 * random.nextDouble() - 1;
    const s = u * u + v * v;
    if (s >= 1 || s === 0) continue;
    const factor = Math.sqrt((-2 * portableLog(s)) / s);
    out[i++] = u * factor;
    if (i < length) out[i++] = v * factor;
  }
  return out;
}

const MASK64 = (1n << 64n) - 1n;

function splitMix64(state: bigint): { state: bigint; value: bigint } {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return { state: next, value: z ^ (z >> 31n) };
}

export class Xoshiro128StarStar {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed`: a non-negative safe integer (callers validate it). */
  constructor(seed: number) {
    const first = splitMix64(BigInt(seed));
    const second = splitMix64(first.state);
    this.s0 = Number(first.value & 0xffffffffn);
    this.s1 = Number(first.value >> 32n);
    this.s2 = Number(second.value & 0xffffffffn);
    this.s3 = Number(second.value >> 32n);
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

const LN2_HIGH = 6.93147180369123816490e-1; // ln 2 split in two (as in fdlibm) so k·ln2 loses no bits
const LN2_LOW = 1.90821492927058770002e-10;
const bits = new DataView(new ArrayBuffer(8));

/**
 * ln(x) for positive normal x from basic arithmetic only (see the module comment): x = 2^k·m with m in
 * [√2/2, √2), ln m = 2·atanh(f) with f = (m−1)/(m+1), |f| < 0.172, summed by its odd power series far enough that
 * the remaining terms are below 1e-18. Within a few ulp of the true value; what matters is that it is the same value
 * everywhere.
 */
export function portableLog(x: number): number {
  bits.setFloat64(0, x);
  const high = bits.getUint32(0);
  let k = ((high >>> 20) & 0x7ff) - 1023;
  bits.setUint32(0, (high & 0x800fffff) | 0x3ff00000);
  let m = bits.getFloat64(0);
  if (m > Math.SQRT2) {
    m /= 2;
    k += 1;
  }
  const f = (m - 1) / (m + 1);
  const f2 = f * f;
  let series = 0;
  for (let n = 12; n >= 0; n--) series = series * f2 + 1 / (2 * n + 1);
  return k * LN2_HIGH + (2 * f * series + k * LN2_LOW);
}
