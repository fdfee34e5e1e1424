/** The configurations `eval` compares, by name (eval-configs.ts says what each one runs). */
export const EVAL_CONFIGS = ['baseline', 'lpl15', 'lpl-auto', 'tdtm15', 'tdtm-all', 'paper'] as const;
export type EvalConfig = (typeof EVAL_CONFIGS)[number];
