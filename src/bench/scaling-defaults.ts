/** The grid of `bench --scaling` by default (issue 17 goal 8: 64² to 256², 17 to 68 frames); no imports, for help. */
export const SCALING_SIZES: readonly number[] = [64, 128, 192, 256];
export const SCALING_FRAMES: readonly number[] = [17, 34, 51, 68];
