/**
 * Promise.all for checks whose first failure in order is the one to report: every task runs at once (file-system
 * round trips overlap instead of queueing), then the results are read in order, so the error is the one a
 * sequential loop would have thrown, whatever finished first.
 */
export async function allInOrder<T>(tasks: readonly (() => Promise<T>)[]): Promise<T[]> {
  const settled = await Promise.allSettled(tasks.map((task) => task()));
  return settled.map((result) => {
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  });
}
