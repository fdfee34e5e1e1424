/**
 * Without `--memory-budget`, the budget is the memory in use now plus this share of what is still available: the
 * rest is left to the page cache the block files are read through, and to the other programs of the machine.
 */
export const DEFAULT_BUDGET_FRACTION = 0.8;
