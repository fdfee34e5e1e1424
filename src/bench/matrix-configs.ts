/** The configurations `bench --matrix` can run beside the baseline (the rows of the paper's Table 5). */
export const MATRIX_CONFIGS = ['baseline', 'lpl', 'tdtm', 'cidl', 'all', 'fast'] as const;
export type MatrixConfig = (typeof MATRIX_CONFIGS)[number];
