/**
 * The memory of the process that runs the blocks, as a memory budget (CI-DL) reads it. For the local backends that
 * is this process (pipeline/memory-budget.ts: localMemoryMeter); for a remote runner it is the runner's process, an
 * iPhone app for instance, whose numbers come with its replies (remote-backend.ts).
 */
export interface MemoryMeter {
  /** Where the memory is measured, for messages: "this process", "runner at 127.0.0.1:7315". */
  readonly where: string;
  /** Bytes in use now (RSS; on iOS the app's physical footprint). */
  inUse(): number;
  /** The highest use since the previous call, then starts a new window. */
  takeWindowPeak(): number;
  /** Memory the process can still get (the machine's available memory, cgroup or iOS limits included). */
  available(): number;
  /** Hands the allocator's freed memory back to the OS, where the process can do that from here. */
  trim(): void;
  /** The page cache of block files: only for a process that reads the block files on this machine. */
  readonly pageCache?: {
    prefetch(path: string): Promise<number>;
    evict(path: string): Promise<boolean>;
  };
}
