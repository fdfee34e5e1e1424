/** The configurations `eval` compares, by name (eval-configs.ts says what each one runs). */
export const EVAL_CONFIGS = [
  'baseline',
  'lpl15',
  'lpl-auto',
  'tdtm15',
  'tdtm-all',
  'paper',
  'cache0.1',
  'cache0.2',
  'cache0.3',
  'reuse2',
  'reuse3',
  'lpl15-cache0.1',
  'lpl15-cache0.15',
  'lpl15-cache0.2',
  'lpl15-cache0.3',
  'lpl15-reuse2',
  'lpl15-reuse3',
  'lpl-auto-cache0.2',
  'lpl15-tdtm15-cache0.2',
  'fast',
] as const;
export type EvalConfig = (typeof EVAL_CONFIGS)[number];

/** What `eval` runs when not told: the paper's configurations and the `fast` preset (the caches' sweep is opt-in). */
export const DEFAULT_EVAL_CONFIGS: readonly EvalConfig[] = ['baseline', 'lpl15', 'lpl-auto', 'tdtm15', 'tdtm-all', 'paper', 'fast'];
