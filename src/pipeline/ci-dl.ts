/**
 * CI-DL, Concurrent Inference with Dynamic Loading (reference §E): a BlockProvider that runs a model larger than
 * the memory budget by keeping only the first blocks of the sequence resident and loading the others for their turn,
 * each while the block before it runs. One scheduler per component; T5 layers, STDiT blocks and VAE parts alike.
 *
 * Where the paper's app guesses 170 MB per block and plans once, this plans from measurements, every window:
 * - A window is the time between two releases, i.e. one block's turn. Its peak RSS P is read from the kernel's
 *   high-water mark, which is reset at every release.
 * - A loaded block costs c = its manifest weight bytes + σ, σ being the largest RSS growth beyond the weights that
 *   a load with nothing else running has shown so far (ORT session, prepacking).
 * - What is not blocks is F = P − Σ c over the blocks loaded during the window: the process before this component
 *   (base) plus the working set of a run, measured on the first block and kept at the highest value seen since.
 * - With R the resident blocks and ĉ the largest cost among the blocks that are streamed, the peak of a later step
 *   is predicted as F + Σ_R c + lanes·ĉ, lanes = 2 with CI (the running block and the one loading) and 1 without.
 *   At each release the block just run stays resident if every block before it in this step is resident and the
 *   prediction with it still fits the budget minus twice the reserve. So the first K blocks stay, K being the
 *   largest with base + W + Σ_{i<K} c_i + lanes·max_{i≥K} c_i ≤ budget − 2·reserve (the app's rule,
 *   `remain − load > need + 2·load`, with measured numbers). When a window's peak goes past budget − reserve, or
 *   the prediction past the budget itself, resident blocks are unloaded from the end of the sequence, then overlap
 *   is given up; a budget that cannot hold F + ĉ is refused.
 * - A step (cycle) ends where a block already used in it is acquired again; resident blocks that a whole step did
 *   not use (TDTM blocks after the merge steps, temporal VAE parts during spatial decoding) are unloaded then.
 *
 * Streamed blocks are unloaded after their turn, then malloc_trim returns the freed heap to the OS and their files
 * are dropped from the page cache, so the next load reads the disk as it would on a device short of memory.
 * Block i+1 is loaded while block i runs, from the second block of step 0 on (the first block's run is the
 * measurement); loads run in the backend's worker threads. The files of the block after that are read into the page
 * cache meanwhile, on the native addon's thread, once a step has shown which block that is.
 */
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { Component } from '../model/contract.js';
import { blockSource, type Model } from '../model/manifest.js';
import type { Backend, BlockHandle, BlockSource } from '../runtime/backend.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import type { BlockProvider } from './block-provider.js';
import { formatBytes, localMemoryMeter, type MemoryBudget } from './memory-budget.js';
import type { Timeline } from './timeline.js';

/**
 * Kept free by the plan: JS heap growth and tensors the pipeline allocates between two measurements, and the
 * allocator's slack. The tests check the peak against the budget plus the same amount.
 */
const RESERVE_BYTES = 16 * 2 ** 20;
const RESERVE_FRACTION = 0.02;

export function budgetReserve(budget: number): number {
  return RESERVE_BYTES + RESERVE_FRACTION * budget;
}

export interface CidlSettings {
  readonly budget: MemoryBudget;
  /** CI: load the next block while the current one runs. */
  readonly concurrent: boolean;
  /** DL: keep the first blocks of a step resident across steps (off: every block is unloaded after its turn). */
  readonly dynamicLoading: boolean;
}

export interface ScheduledBlock {
  readonly source: BlockSource;
  /** The block's files (graph and weights), for page-cache prefetch and eviction. */
  readonly files: readonly { readonly path: string; readonly bytes: number }[];
}

export function scheduledBlocks(model: Model, component: Component): ScheduledBlock[] {
  return model.blocks
    .filter((block) => block.component === component)
    .map((block) => ({ source: blockSource(block), files: block.files.map(({ path, bytes }) => ({ path, bytes })) }));
}

export interface CidlOptions extends CidlSettings {
  /** The component, for messages and logs. */
  readonly label: string;
  readonly timeline?: Timeline;
  readonly logger?: Logger;
}

/** What the scheduler measured and decided, for the sidecar, the tests and the benchmark. */
export interface CidlReport {
  readonly label: string;
  readonly budget: number;
  /** False when CI was asked for but the budget left no room for a second block. */
  readonly concurrent: boolean;
  readonly dynamicLoading: boolean;
  /** RSS when the component started. */
  readonly baseRss: number;
  /** F − base: memory of a run beyond the loaded blocks, highest seen. */
  readonly workingSet: number;
  /** σ: RSS growth of a load beyond the block's weight bytes, highest seen. */
  readonly loadOverhead: number;
  /** Highest window peak RSS. */
  readonly peakRss: number;
  /** Blocks resident at the end, in step order (K = length). */
  readonly resident: readonly string[];
  /** Blocks used per step (cycle). */
  readonly blocksPerCycle: readonly number[];
  /** Loads per step (cycle), counted in the step that used the loaded block. */
  readonly loadsPerCycle: readonly number[];
  /** Resident blocks at the end of each step (cycle). */
  readonly residentPerCycle: readonly number[];
  /** Loads per block over the whole run. */
  readonly loads: Readonly<Record<string, number>>;
}

interface Slot {
  readonly block: ScheduledBlock;
  /** Loaded or loading; undefined once an unload has started. */
  handle: Promise<BlockHandle> | undefined;
  resident: boolean;
  /** Loaded since it was last acquired (counts as a load of the step that acquires it). */
  fresh: boolean;
  loads: number;
  acquired: number;
}

const name = (slot: Slot): string => slot.block.source.name;

/** Whether any block was loaded in this process yet: the first load also maps ORT's libraries (see #load). */
let processHasLoaded = false;

/** Refuses, before anything is loaded, a budget that cannot hold the memory in use plus the largest block. */
export function refuseBudgetBelowOneBlock(budget: MemoryBudget, blocks: readonly BlockSource[], inUse: number): void {
  const largest = blocks.reduce<BlockSource | undefined>((max, b) => (max && max.weightBytes >= b.weightBytes ? max : b), undefined);
  if (largest === undefined || inUse + largest.weightBytes <= budget.bytes) return;
  throw new SoraError(
    'MEMORY',
    `memory budget ${formatBytes(budget.bytes)} (${budget.source}) is below one block plus the working set: ` +
      `${formatBytes(inUse)} in use + ${formatBytes(largest.weightBytes)} of weights for ${largest.name} ` +
      `= ${formatBytes(inUse + largest.weightBytes)} before any working set`,
  );
}

export class CidlScheduler implements BlockProvider {
  readonly #options: CidlOptions;
  /** The memory of the process that runs the blocks: this one, or a remote runner's. */
  readonly #meter: MemoryMeter;
  readonly #slots: ReadonlyMap<string, Slot>;
  readonly #base: number;
  #concurrent: boolean;
  /** F: the highest window peak not explained by loaded blocks; undefined until the first window ends. */
  #fixed: number | undefined;
  #loadOverhead = 0;
  #peak = 0;
  /** Blocks loaded, or loading, at any time in the current window. */
  #window = new Set<Slot>();
  /** Unloads under way; a failed one stays, so that the next load reports it. */
  readonly #unloads = new Set<Promise<void>>();
  #evicting: Promise<void> = Promise.resolve();
  #cycle: Slot[] = [];
  #previousCycle: Slot[] = [];
  #cycles = 0;
  #prefixIntact = true;
  /** Whether a release of the current step has measured its window (see #steady). */
  #measuredInCycle = false;
  readonly #blocksPerCycle: number[] = [0];
  readonly #loadsPerCycle: number[] = [0];
  readonly #residentPerCycle: number[] = [];
  readonly #successor = new Map<string, string>();

  constructor(
    readonly backend: Backend,
    blocks: readonly ScheduledBlock[],
    options: CidlOptions,
  ) {
    this.#options = options;
    this.#concurrent = options.concurrent;
    this.#slots = new Map(
      blocks.map((block) => [block.source.name, { block, handle: undefined, resident: false, fresh: false, loads: 0, acquired: 0 }]),
    );
    this.#meter = backend.memory ?? localMemoryMeter;
    this.#meter.trim();
    this.#base = this.#meter.inUse();
    refuseBudgetBelowOneBlock(options.budget, blocks.map((b) => b.source), this.#base);
    this.#meter.takeWindowPeak(); // the first window starts clean, without the previous component's peak
  }

  async acquire(blockName: string, next?: string): Promise<BlockHandle> {
    const slot = this.#slot(blockName);
    this.#enterCycle(slot);
    if (next !== undefined) this.#successor.set(blockName, next);
    slot.handle ??= this.#load(slot, { quiet: true });
    const handle = await slot.handle;
    slot.acquired++;
    if (slot.fresh) this.#loadsPerCycle[this.#cycles]!++;
    slot.fresh = false;
    // The first window measures one block on its own; from then on the plan has room for a block loading.
    if (this.#concurrent && this.#fixed !== undefined && next !== undefined) this.#prefetch(next);
    return handle;
  }

  async release(blockName: string): Promise<void> {
    const slot = this.#slot(blockName);
    if (this.#steady(slot)) return;
    this.#measuredInCycle = true;
    // The run freed its activations into the allocator's per-thread arenas: hand them back to the OS, so the next
    // window starts from what is really in use.
    this.#meter.trim();
    const peak = this.#meter.takeWindowPeak();
    this.#measure(peak);
    this.#fit(peak);
    this.#decide(slot);
    if (!slot.resident) this.#unload(slot, { evict: true });
    // Blocks being unloaded do not count: the next load waits for them, and the run starts as they go. Should the
    // peak still catch one, F comes out too high, which errs on the safe side.
    this.#window = new Set([...this.#slots.values()].filter((s) => s.handle !== undefined));
  }

  async close(): Promise<void> {
    for (const slot of this.#slots.values()) {
      if (slot.handle !== undefined) this.#unload(slot, { evict: false });
    }
    try {
      await Promise.all(this.#unloads);
    } finally {
      this.#meter.trim();
      await this.#evicting;
    }
  }

  report(): CidlReport {
    const inOrder = [...this.#cycle, ...[...this.#slots.values()].filter((slot) => !this.#cycle.includes(slot))];
    return {
      label: this.#options.label,
      budget: this.#options.budget.bytes,
      concurrent: this.#concurrent,
      dynamicLoading: this.#options.dynamicLoading,
      baseRss: this.#base,
      workingSet: Math.max(0, (this.#fixed ?? this.#base) - this.#base),
      loadOverhead: this.#loadOverhead,
      peakRss: this.#peak,
      resident: inOrder.filter((slot) => slot.resident).map(name),
      blocksPerCycle: [...this.#blocksPerCycle],
      loadsPerCycle: [...this.#loadsPerCycle],
      residentPerCycle: [...this.#residentPerCycle, this.#residents().size],
      loads: Object.fromEntries([...this.#slots.values()].filter((s) => s.loads > 0).map((s) => [name(s), s.loads])),
    };
  }

  #slot(blockName: string): Slot {
    const slot = this.#slots.get(blockName);
    if (slot === undefined) throw new SoraError('MODEL', `the model has no ${this.#options.label} block named ${blockName}`);
    return slot;
  }

  /** A block already used in this step starts the next one; residents the finished step did not use are unloaded. */
  #enterCycle(slot: Slot): void {
    if (this.#cycle.includes(slot)) {
      this.#residentPerCycle.push(this.#residents().size);
      this.#previousCycle = this.#cycle;
      this.#cycle = [];
      this.#cycles++;
      this.#prefixIntact = true;
      this.#measuredInCycle = false;
      this.#blocksPerCycle.push(0);
      this.#loadsPerCycle.push(0);
      for (const stale of this.#slots.values()) {
        if (stale.resident && !this.#previousCycle.includes(stale)) this.#demote(stale);
      }
    }
    this.#cycle.push(slot);
    this.#blocksPerCycle[this.#cycles]!++;
  }

  /**
   * `quiet`: nothing runs meanwhile (the load of an acquire, not a prefetch), so the RSS growth is the block's own
   * and measures σ. The first load of the process is not measured: it also maps ORT's libraries (~40 MB).
   */
  async #load(slot: Slot, { quiet }: { quiet: boolean }): Promise<BlockHandle> {
    await Promise.all(this.#unloads); // what earlier turns released is gone before more is loaded
    this.#window.add(slot);
    const measured = quiet && processHasLoaded;
    processHasLoaded = true;
    const before = this.#meter.inUse();
    const handle = await this.backend.load(slot.block.source);
    const overhead = this.#meter.inUse() - before - slot.block.source.weightBytes;
    if (measured) this.#loadOverhead = Math.max(this.#loadOverhead, overhead);
    slot.loads++;
    slot.fresh = true;
    return handle;
  }

  #prefetch(blockName: string): void {
    const slot = this.#slots.get(blockName);
    if (slot === undefined || slot.handle !== undefined) return; // an unknown name fails when it is acquired
    slot.handle = this.#load(slot, { quiet: false });
    slot.handle.catch(() => {}); // reported by the acquire that awaits it
    const after = this.#successor.get(blockName);
    const pages = after === undefined ? undefined : this.#slots.get(after);
    if (pages !== undefined && pages.handle === undefined && !pages.resident) this.#prefetchPages(pages);
  }

  /** Only where this process reads the block files: a remote runner has them on its own disk. */
  #prefetchPages(slot: Slot): void {
    const pageCache = this.#meter.pageCache;
    if (pageCache === undefined) return;
    for (const file of slot.block.files) {
      const read = (): Promise<number> => pageCache.prefetch(file.path);
      const work = this.#options.timeline?.record('prefetch', name(slot), (bytes: number) => bytes, read) ?? read();
      work.catch((error: unknown) => this.#options.logger?.debug({ file: file.path, error: errorMessage(error) }, 'page prefetch failed'));
    }
  }

  #unload(slot: Slot, { evict }: { evict: boolean }): void {
    const handle = slot.handle;
    if (handle === undefined) return;
    slot.handle = undefined;
    // Not one after the other: an unload waits while its worker runs another block, and should hold up no other.
    const unload = (async () => {
      const loaded = await handle.catch(() => undefined); // a failed load has nothing to unload
      if (loaded === undefined) return;
      await this.backend.unload(loaded);
      this.#meter.trim();
      // Page cache is not process memory: the next load need not wait for it to be dropped.
      const pageCache = this.#meter.pageCache;
      if (evict && pageCache !== undefined) this.#evicting = this.#evicting.then(() => this.#evict(slot, pageCache));
    })();
    this.#unloads.add(unload);
    unload.then(
      () => this.#unloads.delete(unload),
      () => {},
    );
  }

  /** A failure only leaves the file cached (the next load is faster than on a device short of memory). */
  async #evict(slot: Slot, pageCache: NonNullable<MemoryMeter['pageCache']>): Promise<void> {
    const { timeline, logger } = this.#options;
    for (const file of slot.block.files) {
      const drop = (): Promise<boolean> => pageCache.evict(file.path);
      await (timeline?.record('evict', name(slot), file.bytes, drop) ?? drop()).catch((error: unknown) =>
        logger?.warn({ file: file.path, error: errorMessage(error) }, 'cannot drop a block file from the page cache'),
      );
    }
  }

  #cost(slot: Slot): number {
    return slot.block.source.weightBytes + this.#loadOverhead;
  }

  #measure(peak: number): void {
    const loaded = [...this.#window].reduce((sum, slot) => sum + this.#cost(slot), 0);
    this.#fixed = Math.max(this.#fixed ?? 0, peak - loaded);
    this.#peak = Math.max(this.#peak, peak);
    this.#options.timeline?.sample('peak RSS', peak);
  }

  /** Blocks that take turns: in step 0 any non-resident block may come; later only those used before. */
  #streamed(resident: ReadonlySet<Slot>): Slot[] {
    return [...this.#slots.values()].filter((slot) => !resident.has(slot) && (this.#cycles === 0 || slot.acquired > 0));
  }

  #predictedPeak(resident: ReadonlySet<Slot>): { peak: number; largest: Slot | undefined } {
    const streamed = this.#streamed(resident);
    const largest = streamed.reduce<Slot | undefined>((max, s) => (max && this.#cost(max) >= this.#cost(s) ? max : s), undefined);
    const lanes = Math.min(streamed.length, this.#concurrent ? 2 : 1);
    const residentCost = [...resident].reduce((sum, slot) => sum + this.#cost(slot), 0);
    const largestCost = largest === undefined ? 0 : this.#cost(largest);
    return { peak: (this.#fixed ?? this.#base) + residentCost + lanes * largestCost, largest };
  }

  #residents(): Set<Slot> {
    return new Set([...this.#slots.values()].filter((slot) => slot.resident));
  }

  /**
   * Sheds resident blocks from the end, then overlap, while the window just measured went past the reserve or the
   * prediction goes past the budget itself. (A prediction only inside the reserve is no reason: F̂ keeps the
   * highest window, garbage the JS heaps had not yet collected included, and would unload blocks step after step.)
   * Refuses a budget that cannot hold one block plus the working set.
   */
  #fit(peak: number): void {
    const { budget, logger, label } = this.#options;
    const limit = budget.bytes - budgetReserve(budget.bytes);
    let shed = 0;
    const over = (): boolean => peak - shed > limit || this.#predictedPeak(this.#residents()).peak > budget.bytes;
    for (let victim = this.#lastResident(); victim !== undefined && over(); victim = this.#lastResident()) {
      this.#demote(victim);
      shed += this.#cost(victim);
    }
    if (this.#concurrent && over()) {
      this.#concurrent = false;
      logger?.warn(
        { component: label, budget: formatBytes(budget.bytes) },
        'the memory budget leaves no room to load a block while another runs; loading one at a time',
      );
    }
    const { peak: predicted, largest } = this.#predictedPeak(this.#residents());
    if (predicted > budget.bytes && largest !== undefined) throw this.#tooSmall(largest);
  }

  #tooSmall(largest: Slot): SoraError {
    const { budget, label } = this.#options;
    const workingSet = (this.#fixed ?? this.#base) - this.#base;
    const total = this.#base + workingSet + this.#cost(largest);
    return new SoraError(
      'MEMORY',
      `memory budget ${formatBytes(budget.bytes)} (${budget.source}) is below one ${label} block plus the working set: ` +
        `${formatBytes(this.#base)} in use + ${formatBytes(workingSet)} working set (measured) + ` +
        `${formatBytes(this.#cost(largest))} for ${name(largest)} (${formatBytes(largest.block.source.weightBytes)} weights) ` +
        `= ${formatBytes(total)}`,
    );
  }

  /**
   * Stale residents first, then the one furthest along the step (blocks not yet used in this step come after the
   * used ones, in the previous step's order), so the resident set stays a prefix.
   */
  #lastResident(): Slot | undefined {
    const position = (slot: Slot): number => {
      const index = this.#cycle.indexOf(slot);
      if (index >= 0) return index;
      const previous = this.#previousCycle.indexOf(slot);
      return previous < 0 ? Number.POSITIVE_INFINITY : this.#cycle.length + previous;
    };
    return [...this.#residents()].sort((a, b) => position(b) - position(a))[0];
  }

  #decide(slot: Slot): void {
    // A block that #fit has just unloaded is not taken back: it would have to be loaded again.
    if (this.#options.dynamicLoading && !slot.resident && slot.handle !== undefined && this.#prefixIntact) {
      const withSlot = this.#residents().add(slot);
      // Twice the reserve, where shedding starts at once: the working set keeps creeping up for a few steps (JS
      // garbage, allocator fragmentation), and a block kept at the edge would be unloaded again a step later.
      const limit = this.#options.budget.bytes - 2 * budgetReserve(this.#options.budget.bytes);
      if (this.#predictedPeak(withSlot).peak <= limit) {
        slot.resident = true;
        this.#residencyChanged();
        this.#options.logger?.debug({ component: this.#options.label, block: name(slot), resident: withSlot.size }, 'block stays resident');
      }
    }
    if (!slot.resident) this.#prefixIntact = false;
  }

  /**
   * A turn with nothing to decide: the block was resident before it ran, nothing but resident blocks was loaded since
   * the last measurement, no unload is under way, and the plan is far from the budget. Such a release skips the
   * malloc_trim and the peak reading (each costs more than a small block's run, and a trim hands the next run's
   * activations back to the OS). The kernel's high-water mark is not reset meanwhile, so the next window measured
   * still sees the peak of the turns skipped, with every block loaded in them; and one release per step measures.
   */
  #steady(slot: Slot): boolean {
    if (!slot.resident || this.#fixed === undefined || !this.#measuredInCycle || this.#unloads.size > 0) return false;
    for (const other of this.#window) if (!other.resident || other.handle === undefined) return false;
    for (const other of this.#slots.values()) if (!other.resident && other.handle !== undefined) return false;
    const { bytes } = this.#options.budget;
    return Math.max(this.#peak, this.#predictedPeak(this.#residents()).peak) <= bytes - 4 * budgetReserve(bytes);
  }

  #residencyChanged(): void {
    this.#options.timeline?.sample(`${this.#options.label} resident blocks`, this.#residents().size);
  }

  #demote(slot: Slot): void {
    slot.resident = false;
    this.#residencyChanged();
    this.#options.logger?.debug({ component: this.#options.label, block: name(slot) }, 'resident block unloaded');
    this.#unload(slot, { evict: true });
  }
}
