/** The grid of `bench --scaling` by default (issue 17 goal 8: 64² to 256², 17 to 68 frames); no imports, for help. */
export const SCALING_SIZES: readonly number[] = [64, 128, 192, 256];
export const SCALING_FRAMES: readonly number[] = [17, 34, 51, 68];
/**
 * The first evaluation of a fresh session also allocates, so it is reported apart; the median of the three after it
 * holds against the odd slow step (at 256² × 68 single warm steps ranged 11.2–17.4 s in one run on the quiet machine).
 */
export const SCALING_STEPS = 4;
