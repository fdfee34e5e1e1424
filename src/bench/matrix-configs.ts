/**
 * The configurations `bench --matrix` can run beside the baseline: the rows of the paper's Table 5 (All merges in
 * every step), then the presets as `generate` runs them (paper merges in the steps before its leap, so its last
 * evaluation runs the ST blocks).
 */
export const MATRIX_CONFIGS = ['baseline', 'lpl', 'tdtm', 'cidl', 'all', 'paper', 'fast'] as const;
export type MatrixConfig = (typeof MATRIX_CONFIGS)[number];
