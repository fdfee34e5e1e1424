/** What `models cache prune` takes for every cache it prunes: everything, or entries unused for `unusedDays`. */
export interface CachePruneOptions {
  /** Remove every entry. */
  readonly all?: boolean;
  /** Remove entries not used for this many days (default 30). */
  readonly unusedDays?: number;
  readonly now?: Date;
}

export const DEFAULT_UNUSED_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Whether an entry last used at `lastUsedMs` goes; an unknown time (NaN) counts as unused too long. */
export function unusedTooLong(lastUsedMs: number, options: CachePruneOptions): boolean {
  if (options.all === true) return true;
  const age = (options.now ?? new Date()).getTime() - lastUsedMs;
  return !(age <= (options.unusedDays ?? DEFAULT_UNUSED_DAYS) * DAY_MS);
}
