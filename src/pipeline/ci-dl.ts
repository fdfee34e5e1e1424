/**
 * CI-DL, Concurrent Inference with Dynamic Loading (reference §E): a BlockProvider that runs a model larger than
 * the memory budget by keeping only the first blocks of the sequence resident and loading the others for their turn,
 * each while the block before it runs. One scheduler per component; T5 layers, STDiT blocks and VAE parts alike.
 *
 * The budget is a promise about the process's RSS as anyone watching it sees it, so every step that makes the process
 * grow is admitted first, the way a database admits a query into its memory grant:
 * - A load of block b grows RSS by at most L_b (its weights, plus ORT's staging of the external data file and the
 *   prepacked copy of the tensor being packed); a run by at most W_b, its working set (activations, kernel scratch).
 * - Before a load or a run starts, RSS now + what loads and runs under way were admitted for + its own L or W must
 *   fit the budget less a reserve (JS heap growth and allocations between two admissions). What does not fit first
 *   has the dead JS tensors of every thread collected, then unloads resident blocks from the end of the step (then a
 *   block loaded ahead), waiting until their memory is back; when nothing is left to free, the run stops there with
 *   a MEMORY error: refused before the budget is crossed, never after. A load ahead (CI) only starts if it fits
 *   beside the run it overlaps.
 * - L_b and W_b are measured: the first load and the first run of a block, or of a twin (same kind and weight
 *   bytes: ST_0, ST_1, …), happen with nothing else loading or running, from a trimmed heap, between two readings
 *   of the kernel's high-water mark. Until then they are estimated (memory-estimates.ts: L from the weight bytes, W
 *   from the run's inputs and the component's tensors at the job's size). A run on bigger inputs than any measured
 *   one is scaled up and measured again. So step 0 runs one block at a time until a block's kind has been measured.
 * - Under a budget that binds, the allocator gives every allocation of 1 MiB or more its own mapping: glibc's default
 *   raises that threshold after the first large free() and then keeps freed activations in the heap, which made a
 *   run's growth depend on what ran before (88–102 MiB vs 42 MiB for the same paper-width STDiT block at 128×128).
 *   Under a budget that holds the model amply the default stays: a mapping per allocation faults in every large
 *   buffer afresh at every run, which cost `models/shapes` 5–7 % of its STDiT time. ORT's first session in
 *   each worker (~26 MiB) is made before the first admission (the backend's ready()), not during a measured load.
 *
 * Which blocks stay resident (DL) is a plan on top of that: at each release the block just run stays if every block
 * before it in this step stayed and the step's predicted peak, F + Σ_resident held + max over the step's blocks of
 * (W + held if streamed + L of the block loaded meanwhile), still fits the budget less twice the reserve; F is RSS not
 * held by blocks. A plan that turns out wrong costs time (the admission unloads), never the budget.
 * A step (cycle) ends where a block already used in it is acquired again; resident blocks that a whole step did not
 * use (TDTM blocks after the merge steps, temporal VAE parts during spatial decoding) are the first unloaded when
 * the plan no longer fits, and stay while it does (the next generation uses them again).
 *
 * Streamed blocks are unloaded after their turn, then malloc_trim returns the freed heap to the OS and their files
 * are dropped from the page cache, so the next load reads the disk as it would on a device short of memory. While
 * block i+1 loads, the files of the block after it are read into the page cache on the native addon's thread (page
 * cache is not process memory).
 */
import { errorMessage, SoraError } from '../errors.js';
import type { Logger } from '../logging.js';
import type { BlockKind, Component } from '../model/contract.js';
import { blockSource, type Model } from '../model/manifest.js';
import { peakRss, setMmapThreshold } from '../native/memory.js';
import { tensorByteLength, wrapBackend, type Backend, type BlockHandle, type BlockSource, type RunInputs, type RunOptions, type RunOutputs } from '../runtime/backend.js';
import type { MemoryMeter } from '../runtime/memory-meter.js';
import type { BlockProvider } from './block-provider.js';
import { collectGarbage } from '../runtime/garbage-collection.js';
import { budgetReserve, formatBytes, localMemoryMeter, type MemoryBudget } from './memory-budget.js';
import { budgetHoldsAmply, loadEstimate, refuseBudgetBeforeWork, runEstimate, type RunGeometry } from './memory-estimates.js';
import type { Timeline } from './timeline.js';

const MiB = 2 ** 20;

/** Allocations from this size on get a mapping of their own, unmapped by free() (see the header). */
export const MMAP_THRESHOLD = MiB;

export interface CidlSettings {
  readonly budget: MemoryBudget;
  /** CI: load the next block while the current one runs. */
  readonly concurrent: boolean;
  /** DL: keep the first blocks of a step resident across steps (off: every block is unloaded after its turn). */
  readonly dynamicLoading: boolean;
}

export interface ScheduledBlock {
  readonly source: BlockSource;
  /** Blocks of one kind with the same weight bytes are twins (ST_0, ST_1, …): one's measurements stand for all. */
  readonly kind: BlockKind;
  /** The block's files (graph and weights), for page-cache prefetch and eviction. */
  readonly files: readonly { readonly path: string; readonly bytes: number }[];
}

export function scheduledBlocks(model: Model, component: Component): ScheduledBlock[] {
  return model.blocks
    .filter((block) => block.component === component)
    .map((block) => ({
      source: blockSource(block),
      kind: block.kind,
      files: block.files.map(({ path, bytes }) => ({ path, bytes })),
    }));
}

export interface CidlOptions extends CidlSettings {
  /** The component, for messages and logs. */
  readonly label: string;
  /** What the pipeline knows of this component's tensors at the job's size (src/pipeline/memory-estimates.ts). */
  readonly geometry?: RunGeometry;
  /** The whole model's weight bytes: preload() acts only when the budget holds them amply. */
  readonly modelWeightBytes?: number;
  /**
   * Load the blocks with their weights mapped (BlockSource.mapWeights), where the backend can: for a component whose
   * blocks stream (memory-estimates.ts, budgetHoldsComponent; generate.ts decides).
   */
  readonly mapWeights?: boolean;
  readonly timeline?: Timeline;
  readonly logger?: Logger;
}

/** What the scheduler measured and decided, for the sidecar, the tests and the benchmark. */
export interface CidlReport {
  readonly label: string;
  readonly budget: number;
  /** False when CI was asked for but no block was ever loaded while another ran (the budget left no room). */
  readonly concurrent: boolean;
  readonly dynamicLoading: boolean;
  /** RSS when the component started. */
  readonly baseRss: number;
  /** Blocks were loaded with their weight files mapped instead of copied (see CidlOptions.mapWeights). */
  readonly weightsMapped: boolean;
  /** Largest RSS growth of a run (W), measured. */
  readonly workingSet: number;
  /** Largest RSS growth of a load beyond the block's weight bytes (L − weights), measured. */
  readonly loadOverhead: number;
  /** Highest RSS of the process while this component ran. */
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
  /** Acquired and not yet released: a caller is about to run it or runs it. */
  using: number;
  /** L: peak RSS growth of a load, measured on a load with nothing else under way. */
  loadPeak: number | undefined;
  /**
   * RSS the loaded block holds once it has run: measured with L, plus lazyWeights; until measured, its weight bytes.
   */
  held: number | undefined;
  /** Of its weights, what a measured load left unread where the backend maps them: its runs fault that in. */
  lazyWeights: number | undefined;
  /** Of `held`, what the block's next run will fault in: lazyWeights from each load to the end of its first run. */
  unfaulted: number;
  /** W: peak RSS growth of a run, and the input bytes of the run it was measured on. */
  run: { readonly bytes: number; readonly inputBytes: number } | undefined;
}

const name = (slot: Slot): string => slot.block.source.name;

export class CidlScheduler implements BlockProvider {
  /** The backend as pipeline code sees it: each run is admitted first (see the header). */
  readonly backend: Backend;
  readonly #inner: Backend;
  readonly #options: CidlOptions;
  /** The memory of the process that runs the blocks: this one, or a remote runner's. */
  readonly #meter: MemoryMeter;
  readonly #slots: ReadonlyMap<string, Slot>;
  readonly #base: number;
  #peak = 0;
  /** F: RSS not held by loaded blocks, read whenever nothing was under way; the base until then. */
  #unheld: number;
  /** RSS that loads and runs under way were admitted for. */
  #admitted = 0;
  /** Loads under way (a prefetch, or the load of an acquire), and their count from the moment each is admitted. */
  readonly #loading = new Set<Promise<unknown>>();
  #loadsUnderWay = 0;
  #running = 0;
  /** Loads and runs started so far: a measurement is clean when no other started meanwhile. */
  #started = 0;
  /** Unloads under way; a failed one stays, so that the next load reports it. */
  readonly #unloads = new Set<Promise<void>>();
  #evicting: Promise<void> = Promise.resolve();
  #overlapped = false;
  #overlapRefused = false;
  #backendReady: Promise<void> | undefined;
  #preloading: Promise<void> = Promise.resolve();
  #closed = false;
  /** preload() has acted: the budget holds the model amply. */
  #preloads = false;
  #cycle: Slot[] = [];
  #previousCycle: Slot[] = [];
  #cycles = 0;
  #prefixIntact = true;
  readonly #blocksPerCycle: number[] = [0];
  readonly #loadsPerCycle: number[] = [0];
  readonly #residentPerCycle: number[] = [];
  readonly #successor = new Map<string, string>();

  constructor(backend: Backend, blocks: readonly ScheduledBlock[], options: CidlOptions) {
    this.#inner = backend;
    this.#options = options;
    this.#slots = new Map(
      blocks.map((block) => [
        block.source.name,
        { block, handle: undefined, resident: false, fresh: false, loads: 0, acquired: 0, using: 0, loadPeak: undefined, held: undefined, lazyWeights: undefined, unfaulted: 0, run: undefined },
      ]),
    );
    this.backend = wrapBackend(backend, { run: (handle, inputs, runOptions) => this.#run(handle, inputs, runOptions) });
    this.#meter = backend.memory ?? localMemoryMeter;
    // This process's allocator: where blocks run here (a runner sets its own).
    if (this.#meter === localMemoryMeter && !this.#holdsModelAmply()) setMmapThreshold(MMAP_THRESHOLD);
    this.#meter.trim();
    this.#base = this.#meter.inUse();
    this.#unheld = this.#base;
    const sources = blocks.map((b) => b.source);
    refuseBudgetBeforeWork(options.budget, this.#base, [{ label: options.label, blocks: sources, geometry: options.geometry }]);
    this.#foldPeak(this.#meter.takeWindowPeak()); // the component's peak starts here, without the previous component's
  }

  async acquire(blockName: string, next?: string): Promise<BlockHandle> {
    const slot = this.#slot(blockName);
    // From here to its release no admission may unload it (a preload admitting a later block would shed it).
    slot.using++;
    try {
      return await this.#acquire(slot, blockName, next);
    } catch (error) {
      slot.using--;
      throw error;
    }
  }

  async #acquire(slot: Slot, blockName: string, next: string | undefined): Promise<BlockHandle> {
    this.#enterCycle(slot);
    if (next !== undefined) this.#successor.set(blockName, next);
    if (slot.handle === undefined) {
      // The backend's threads load their runtime as they start: that memory is in use before the first admission.
      await (this.#backendReady ??= this.#inner.ready?.() ?? Promise.resolve());
      await this.#admit(slot, 'load', this.#loadNeed(slot));
      slot.handle = this.#load(slot);
    }
    const handle = await slot.handle;
    slot.acquired++;
    if (slot.fresh) this.#loadsPerCycle[this.#cycles]!++;
    slot.fresh = false;
    if (next !== undefined && this.#options.concurrent) {
      await Promise.all(this.#unloads); // the block before this one is on its way out: its memory is not in the way
      this.#prefetch(slot, next);
    }
    return handle;
  }

  /**
   * Only with CI and DL on, under a budget that holds the whole model amply (budgetHoldsAmply, as for keeping ORT's
   * arenas): then the blocks a pass will use load side by side, each admitted in turn, instead of one at a time for
   * measurement. Their loads go unmeasured (L stays the estimate from the weights, which the ample room covers);
   * runs are still measured and admitted.
   */
  preload(names: readonly string[]): void {
    const { concurrent, dynamicLoading } = this.#options;
    if (!concurrent || !dynamicLoading || !this.#holdsModelAmply()) return;
    const slots = names.flatMap((blockName) => this.#slots.get(blockName) ?? []);
    this.#preloads = true;
    this.#preloading = (async () => {
      await this.#preloading;
      await (this.#backendReady ??= this.#inner.ready?.() ?? Promise.resolve());
      for (const slot of slots) {
        if (this.#closed) return;
        if (slot.handle !== undefined) continue;
        // Admitted one after another: each admission counts the loads admitted before it.
        await this.#admit(slot, 'load', this.#loadNeed(slot));
        if (this.#closed || slot.handle !== undefined) continue;
        slot.handle = this.#load(slot);
        slot.handle.catch(() => {}); // reported by the acquire that awaits it
      }
    })().catch((error: unknown) => this.#options.logger?.debug({ component: this.#options.label, error: errorMessage(error) }, 'preload stopped'));
  }

  async release(blockName: string): Promise<void> {
    const slot = this.#slot(blockName);
    slot.using = Math.max(0, slot.using - 1);
    this.#decide(slot);
    if (!slot.resident) this.#unload(slot, { evict: true });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#preloading;
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
    const slots = [...this.#slots.values()];
    return {
      label: this.#options.label,
      budget: this.#options.budget.bytes,
      concurrent: this.#options.concurrent && this.#overlapped,
      dynamicLoading: this.#options.dynamicLoading,
      baseRss: this.#base,
      weightsMapped: this.#mapsWeights(),
      workingSet: Math.max(0, ...slots.map((slot) => slot.run?.bytes ?? 0)),
      loadOverhead: Math.max(0, ...slots.map((slot) => (slot.loadPeak ?? 0) - slot.block.source.weightBytes)),
      peakRss: Math.max(this.#peak, this.#meter === localMemoryMeter ? peakRss() : 0),
      resident: inOrder.filter((slot) => slot.resident).map(name),
      blocksPerCycle: [...this.#blocksPerCycle],
      loadsPerCycle: [...this.#loadsPerCycle],
      residentPerCycle: [...this.#residentPerCycle, this.#residents().size],
      loads: Object.fromEntries(slots.filter((s) => s.loads > 0).map((s) => [name(s), s.loads])),
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
      this.#blocksPerCycle.push(0);
      this.#loadsPerCycle.push(0);
      // Residents the finished step did not use count in the plan like any other and go first when it does not fit.
      this.#replan();
    }
    this.#cycle.push(slot);
    this.#blocksPerCycle[this.#cycles]!++;
  }

  /** The budget holds the whole model amply (budgetHoldsAmply), beside what is in use now. */
  #holdsModelAmply(): boolean {
    const { modelWeightBytes, budget } = this.#options;
    return modelWeightBytes !== undefined && budgetHoldsAmply(budget.bytes, this.#meter.inUse(), modelWeightBytes);
  }

  #limit(): number {
    const { bytes } = this.#options.budget;
    return bytes - budgetReserve(bytes);
  }

  #foldPeak(peak: number): void {
    this.#peak = Math.max(this.#peak, peak);
  }

  /**
   * The block and its twins (same kind, same weight bytes), whose measurements stand for each other. A block pair's
   * ST and TDTM blocks count as one kind: the same weights, and when they name one graph the second load shares the
   * first's session and measures next to nothing, which must not stand for a load of its own.
   */
  #twins(slot: Slot): Slot[] {
    const { kind, source } = slot.block;
    const family = twinKind(kind);
    return [...this.#slots.values()].filter((s) => twinKind(s.block.kind) === family && s.block.source.weightBytes === source.weightBytes);
  }

  /** L of a block: measured on it or a twin, else estimated from its weights. */
  #loadNeed(slot: Slot): number {
    const measured = this.#twins(slot).flatMap((s) => (s.loadPeak === undefined ? [] : [s.loadPeak]));
    return measured.length > 0 ? Math.max(...measured) : loadEstimate(slot.block.source.weightBytes);
  }

  /** Runs of the block and its twins measured so far. */
  #runs(slot: Slot): { readonly bytes: number; readonly inputBytes: number }[] {
    return this.#twins(slot).flatMap((s) => (s.run === undefined ? [] : [s.run]));
  }

  /** W of a run on `inputBytes` of inputs: measured on the block or a twin (scaled to bigger inputs), else estimated. */
  #runNeed(slot: Slot, inputBytes: number): number {
    const runs = this.#runs(slot);
    if (runs.length === 0) return runEstimate(inputBytes, this.#options.geometry);
    return Math.max(...runs.map((run) => run.bytes * Math.max(1, inputBytes / Math.max(1, run.inputBytes))));
  }

  #held(slot: Slot): number {
    return slot.held ?? slot.block.source.weightBytes;
  }

  /**
   * Waits until RSS now + what is under way + `need` fits the budget less its reserve: first has dead JS tensors
   * freed, then unloads residents (then a block loaded ahead) and lets loads under way finish; throws when nothing
   * is left to free.
   */
  async #admit(slot: Slot, action: 'load' | 'run', need: number): Promise<void> {
    let collected = false;
    for (;;) {
      await Promise.all(this.#unloads); // memory on its way out is not counted as in use
      const inUse = this.#meter.inUse();
      this.#foldPeak(inUse);
      if (inUse + this.#admitted + need <= this.#limit()) {
        // With nothing under way, what blocks do not hold is read as it is now (JS heaps and allocator included).
        if (this.#loadsUnderWay === 0 && this.#running === 0 && this.#unloads.size === 0) this.#unheld = inUse - this.#heldByLoaded();
        return;
      }
      if (!collected) {
        collected = true;
        await this.#collectGarbage();
        continue;
      }
      if (this.#shed(slot)) continue;
      if (this.#loading.size > 0) {
        await Promise.allSettled([...this.#loading]);
        continue;
      }
      throw this.#cannotHold(slot, action, need, inUse);
    }
  }

  /** Each thread's dead tensors (run inputs in the workers, outputs here), then the heap pages they leave. */
  async #collectGarbage(): Promise<void> {
    collectGarbage();
    await this.#inner.collectGarbage?.();
    this.#meter.trim();
  }

  /** Starts unloading one block other than `keep`: the last resident, else one loaded ahead. False when none. */
  #shed(keep: Slot): boolean {
    const victim = this.#lastResident(keep);
    if (victim !== undefined) {
      this.#demote(victim);
      return true;
    }
    const ahead = [...this.#slots.values()].find((s) => s !== keep && s.using === 0 && s.handle !== undefined && !s.resident);
    if (ahead === undefined) return false;
    this.#options.logger?.debug({ component: this.#options.label, block: name(ahead) }, 'block loaded ahead unloaded to make room');
    this.#unload(ahead, { evict: false });
    return true;
  }

  #cannotHold(slot: Slot, action: 'load' | 'run', need: number, inUse: number): SoraError {
    const { budget, label } = this.#options;
    const measured = action === 'load' ? this.#twins(slot).some((s) => s.loadPeak !== undefined) : this.#runs(slot).length > 0;
    const what = action === 'load' ? 'to load it' : 'working set of its run';
    const how = measured ? 'measured' : action === 'load' ? 'estimated from its weights' : 'estimated from its tensors';
    const underWay = this.#admitted > 0 ? ` + ${formatBytes(this.#admitted)} for loads under way` : '';
    return new SoraError(
      'MEMORY',
      `memory budget ${formatBytes(budget.bytes)} (${budget.source}) cannot ${action} ${label} block ${name(slot)} ` +
        `at this size: ${formatBytes(inUse)} in use + ${formatBytes(need)} ${what} (${how})${underWay} ` +
        `> ${formatBytes(this.#limit())} (the budget less ${formatBytes(budgetReserve(budget.bytes))} kept in reserve); ` +
        'stopped before going over it',
    );
  }

  /**
   * Starts the load, admitted for L. A load with nothing else under way measures L (high-water mark) and what the
   * block holds once loaded.
   */
  async #load(slot: Slot): Promise<BlockHandle> {
    const need = this.#loadNeed(slot);
    this.#admitted += need;
    this.#loadsUnderWay++;
    const started = ++this.#started;
    const load = (async () => {
      await Promise.all(this.#unloads);
      const alone = this.#loadsUnderWay === 1 && this.#running === 0;
      const sharing = this.#sharesGraph(slot);
      let before = 0;
      if (alone) {
        this.#meter.trim();
        this.#foldPeak(this.#meter.takeWindowPeak());
        before = this.#meter.inUse();
        this.#unheld = before - this.#heldByLoaded(slot);
      }
      const handle = await this.#inner.load(this.#mapsWeights() ? { ...slot.block.source, mapWeights: true } : slot.block.source);
      if (alone && this.#started === started) {
        const peak = this.#meter.takeWindowPeak();
        this.#foldPeak(peak);
        slot.loadPeak = Math.max(slot.loadPeak ?? 0, peak - before);
        const held = Math.max(0, this.#meter.inUse() - before);
        const lazy = this.#mapsWeights() && !sharing ? Math.max(0, slot.block.source.weightBytes - held) : 0;
        if (!sharing) slot.lazyWeights = lazy;
        slot.held = held + lazy;
      }
      slot.unfaulted = sharing ? 0 : this.#lazyWeights(slot);
      slot.loads++;
      slot.fresh = true;
      return handle;
    })();
    this.#loading.add(load);
    try {
      return await load;
    } finally {
      this.#loading.delete(load);
      this.#loadsUnderWay--;
      this.#admitted -= need;
    }
  }

  /** RSS held by the blocks loaded now, `except` one: weights their runs have yet to fault in are not held yet. */
  #heldByLoaded(except?: Slot): number {
    let sum = 0;
    for (const slot of this.#slots.values()) {
      if (slot !== except && slot.handle !== undefined) sum += Math.max(0, this.#held(slot) - slot.unfaulted);
    }
    return sum;
  }

  /**
   * Another loaded block names the same graph (a block pair's ST and TDTM): the load shares its session and weights,
   * which it neither reads nor leaves for its runs to fault in.
   */
  #sharesGraph(slot: Slot): boolean {
    return [...this.#slots.values()].some((s) => s !== slot && s.handle !== undefined && s.block.source.path === slot.block.source.path);
  }

  #mapsWeights(): boolean {
    return this.#options.mapWeights === true && this.#inner.mapsWeights === true;
  }

  /** What a load of the block leaves for its runs to fault in, measured on it or a twin. */
  #lazyWeights(slot: Slot): number {
    return Math.max(0, ...this.#twins(slot).map((s) => s.lazyWeights ?? 0));
  }

  /**
   * The admitted run: a first run (or one on bigger inputs than the measured one) is measured with nothing else
   * under way, from a trimmed heap, so that W is what the run itself needs.
   */
  async #run(handle: BlockHandle, inputs: RunInputs, options?: RunOptions): Promise<RunOutputs> {
    const slot = this.#slot(handle.name);
    // From dims and dtypes, so before the call or not alike; resident inputs count: they are in the runner's memory.
    const inputBytes = Object.values(inputs).reduce((sum, value) => sum + tensorByteLength(value), 0);
    const measure = !this.#runs(slot).some((run) => run.inputBytes >= inputBytes);
    // W is what the run needs for itself; weights it faults in stay with the block, counted in what it holds.
    const faulting = slot.unfaulted;
    const need = this.#runNeed(slot, inputBytes) + faulting;
    await this.#admit(slot, 'run', need);
    let before = 0;
    if (measure) {
      // Under an ample budget the blocks preload meanwhile: measured beside them, W only comes out larger.
      if (!this.#preloads) await Promise.allSettled([...this.#loading]);
      this.#meter.trim();
      this.#foldPeak(this.#meter.takeWindowPeak());
      before = this.#meter.inUse();
      this.#unheld = before - this.#heldByLoaded();
    }
    this.#admitted += need;
    this.#running++;
    if (this.#loading.size > 0) this.#overlapped = true;
    try {
      const outputs = await this.#inner.run(handle, inputs, options);
      slot.unfaulted = 0;
      if (measure) {
        const peak = this.#meter.takeWindowPeak();
        this.#foldPeak(peak);
        // A load started meanwhile only makes W larger than it is: the safe side.
        const bytes = Math.max(0, peak - before - faulting);
        slot.run = { bytes: Math.max(bytes, slot.run?.bytes ?? 0), inputBytes: Math.max(inputBytes, slot.run?.inputBytes ?? 0) };
      }
      return outputs;
    } finally {
      this.#running--;
      this.#admitted -= need;
    }
  }

  /**
   * CI: loads `nextName` while `current` runs, if both fit. Only once runs like current's have been measured (the
   * first is measured alone), and never by unloading anything: the block is loaded at its turn instead.
   */
  #prefetch(current: Slot, nextName: string): void {
    const next = this.#slots.get(nextName);
    const runs = this.#runs(current);
    if (next === undefined || next.handle !== undefined || runs.length === 0) return;
    const need = this.#loadNeed(next) + Math.max(...runs.map((run) => run.bytes));
    const fits = (): boolean => this.#meter.inUse() + this.#admitted + need <= this.#limit();
    if (!fits()) {
      // This thread's dead tensors only: the workers' collection would wait behind the run it is meant to overlap.
      collectGarbage();
      this.#meter.trim();
    }
    if (!fits()) {
      this.#noRoomToOverlap(current, next, need);
      return;
    }
    next.handle = this.#load(next);
    next.handle.catch(() => {}); // reported by the acquire that awaits it
    const after = this.#successor.get(nextName);
    const pages = after === undefined ? undefined : this.#slots.get(after);
    if (pages !== undefined && pages.handle === undefined && !pages.resident) this.#prefetchPages(pages);
  }

  #noRoomToOverlap(current: Slot, next: Slot, need: number): void {
    if (this.#overlapRefused) return;
    this.#overlapRefused = true;
    const numbers = { inUse: formatBytes(this.#meter.inUse()), admitted: formatBytes(this.#admitted), need: formatBytes(need) };
    this.#options.logger?.warn(
      { component: this.#options.label, budget: formatBytes(this.#options.budget.bytes), running: name(current), next: name(next), ...numbers },
      'the memory budget leaves no room to load a block while another runs; loading it at its turn',
    );
  }

  /** Only where this process reads the block files: a remote runner has them on its own disk. */
  #prefetchPages(slot: Slot): void {
    const pageCache = this.#meter.pageCache;
    if (pageCache === undefined) return;
    for (const file of this.#files(slot)) {
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
      await this.#inner.unload(loaded);
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
    for (const file of this.#files(slot)) {
      const drop = (): Promise<boolean> => pageCache.evict(file.path);
      await (timeline?.record('evict', name(slot), file.bytes, drop) ?? drop()).catch((error: unknown) =>
        logger?.warn({ file: file.path, error: errorMessage(error) }, 'cannot drop a block file from the page cache'),
      );
    }
  }

  /** What a load of the block reads: the backend's cached graph when it has one, else the manifest's files. */
  #files(slot: Slot): readonly { readonly path: string; readonly bytes: number }[] {
    return this.#inner.blockFiles?.(slot.block.source) ?? slot.block.files;
  }

  #residents(): Set<Slot> {
    return new Set([...this.#slots.values()].filter((slot) => slot.resident));
  }

  /**
   * The peak of a step with `resident` kept: F + what the residents hold + the largest moment of the step, a block's
   * run (plus the block itself when streamed, plus the load of the block after it when that one is streamed and CI
   * is on). Blocks not yet run count with the largest W measured so far; the admission covers the rest.
   */
  #plannedPeak(resident: ReadonlySet<Slot>): number {
    const steps = this.#cycles === 0 ? [...this.#slots.values()] : this.#previousCycle;
    const knownWork = Math.max(0, ...[...this.#slots.values()].map((s) => s.run?.bytes ?? 0));
    let moment = 0;
    for (const slot of steps) {
      const after = this.#slots.get(this.#successor.get(name(slot)) ?? '');
      const ahead = this.#options.concurrent && after !== undefined && !resident.has(after) ? this.#loadNeed(after) : 0;
      const own = resident.has(slot) ? 0 : this.#held(slot);
      const runs = this.#runs(slot);
      const work = runs.length > 0 ? Math.max(...runs.map((run) => run.bytes)) : knownWork;
      moment = Math.max(moment, work + own + ahead);
    }
    const residentBytes = [...resident].reduce((sum, slot) => sum + this.#held(slot), 0);
    return this.#unheld + residentBytes + moment;
  }

  /**
   * Stale residents first, then the one furthest along the step (blocks not yet used in this step come after the
   * used ones, in the previous step's order), so the resident set stays a prefix.
   */
  #lastResident(keep?: Slot): Slot | undefined {
    const position = (slot: Slot): number => {
      const index = this.#cycle.indexOf(slot);
      if (index >= 0) return index;
      const previous = this.#previousCycle.indexOf(slot);
      return previous < 0 ? Number.POSITIVE_INFINITY : this.#cycle.length + previous;
    };
    return [...this.#residents()].filter((slot) => slot !== keep && slot.using === 0).sort((a, b) => position(b) - position(a))[0];
  }

  /**
   * At the start of a step: residents the plan no longer fits under the admission's own limit (the process's memory
   * outside the blocks grew) are let go from the end, so that loads ahead still fit. One reserve below where #decide
   * keeps blocks, so that the two do not undo each other from one step to the next.
   */
  #replan(): void {
    for (let victim = this.#lastResident(); victim !== undefined; victim = this.#lastResident()) {
      if (this.#plannedPeak(this.#residents()) <= this.#limit()) return;
      this.#demote(victim);
    }
  }

  #decide(slot: Slot): void {
    if (this.#options.dynamicLoading && !slot.resident && slot.handle !== undefined && this.#prefixIntact) {
      const withSlot = this.#residents().add(slot);
      // Twice the reserve: the process's own memory keeps creeping up for a few steps (JS garbage, allocator
      // fragmentation), and a block kept at the edge would be unloaded again a step later.
      const { bytes } = this.#options.budget;
      if (this.#plannedPeak(withSlot) <= bytes - 2 * budgetReserve(bytes)) {
        slot.resident = true;
        this.#residencyChanged();
        this.#options.logger?.debug({ component: this.#options.label, block: name(slot), resident: withSlot.size }, 'block stays resident');
      }
    }
    if (!slot.resident) this.#prefixIntact = false;
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

function twinKind(kind: BlockKind): BlockKind {
  return kind === 'stdit-tdtm' ? 'stdit-st' : kind;
}
