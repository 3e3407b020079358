/**
 * The free page hint half of Linux's virtio-balloon driver (drivers/virtio/virtio_balloon.c,
 * report_free_page_func and friends), as a step function.
 *
 * Config interrupt: set the "re-read the command id" bit; if it was clear, queue the work.
 * The work reads the id (from config only when the bit is set, clearing it; else the cached
 * value), then:
 *   DONE (1)                     → every held block goes back to the page allocator;
 *   STOP (0) or the active id    → nothing;
 *   a new id                     → one round:
 *     1. reap used buffers; active := received; add a 4-byte device-readable buffer holding
 *        the id; kick;
 *     2. loop: stop when the received id (re-read only after another config interrupt)
 *        differs from the active one; reap; allocate one order-10 block (4 MiB); failure
 *        ends the round; with more than one free descriptor add it as a device-writable
 *        buffer, kick and keep it on `freePageList`, otherwise free it at once;
 *     3. add a 4-byte buffer holding STOP (0); kick.
 * Held blocks survive new rounds and STOPs. They return only on DONE, through the shrinker
 * (`shrink`: ceil(nr / 1024) blocks), or when the driver goes away (`releaseAll`).
 *
 * Increments (a modelling choice, not Linux's): Linux runs a round to its end on a kernel
 * thread while the device polls the queue concurrently. Here `step(budget)` does at most
 * `budget` block allocations of the current round and returns, so a host can interleave the
 * device, migration and the guest's workload at any point of a round and explore the races.
 * A config interrupt arriving while a round is running re-queues the work, exactly as
 * queue_work on a running work item does: it runs again once the round has ended.
 *
 * The two command id buffers live at fixed guest addresses, as Linux's `cmd_id_active` and
 * `cmd_id_stop` fields do; the device reads them when it pops the buffer, not when it was
 * added (a device that pops late sees the newer active id, as with Linux).
 *
 * Paced mode (optional, `pacing`): instead of a block budget per step, the round runs on the
 * guest's clock, as Linux's work item does on its vCPU: each block takes `blockNs` plus, with
 * init_on_alloc (`initOnAlloc`), the time to zero its pages (a page that held data costs
 * `zeroTouchedPageNs`, a page still zero `zeroFreshPageNs`: the host has never backed it and
 * faults it in). The block is allocated when its time starts, its pages are zeroed one by one
 * as the driver's clock passes each page's time (clear_page in order: a dirty sync in between
 * finds the block partly written), and it is added to the queue when its time ends, as
 * alloc_pages (which zeroes under init_on_alloc) runs before virtqueue_add_inbuf.
 * src/sim/calibration.ts holds the figures measured on a Debian 6.1 guest under QEMU 7.2 TCG.
 */
import type { Segment } from '../../devices/virtio/descriptor-chain.ts';
import { RangeTable } from '../../lib/range-table.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import { MAX_ORDER_PAGES, MAX_PAGE_ORDER, type BuddyAllocator } from '../allocator/buddy.ts';
import type { SplitQueueDriver } from '../virtio/split-queue-driver.ts';

/** STOP and DONE as the driver reads them in free_page_hint_cmd_id. */
export const CMD_ID_STOP = 0;
export const CMD_ID_DONE = 1;
/** VIRTIO_BALLOON_HINT_BLOCK_ORDER on x86-64 (MAX_PAGE_ORDER): 4 MiB blocks. */
export const HINT_BLOCK_ORDER = MAX_PAGE_ORDER;
export const HINT_BLOCK_PAGES = MAX_ORDER_PAGES;
export const HINT_BLOCK_BYTES = HINT_BLOCK_PAGES * 4096;
/** Bytes of a command id buffer (le32). */
export const CMD_ID_BYTES = 4;

/** What each free page queue buffer is, for the reaper. */
export type HintToken = { readonly kind: 'cmd-id' } | { readonly kind: 'stop' } | { readonly kind: 'block'; readonly pfn: number };

export interface FreePageHintWorkerDeps {
  /** The free page queue (callbacks off: Linux gives it no callback). */
  readonly queue: SplitQueueDriver<HintToken>;
  /** Guest memory holding the command id buffers. */
  readonly memory: GuestMemory;
  /** The page allocator blocks come from and go back to. */
  readonly allocator: BuddyAllocator;
  /** Reads free_page_hint_cmd_id from config space. */
  readonly readCmdId: () => number;
  /** Notifies the device of new buffers on the free page queue. */
  readonly notify: () => void;
  /** Where cmd_id_active lives (4 bytes). */
  readonly cmdIdActiveGpa: number;
  /** Where cmd_id_stop lives (4 bytes, always 0). */
  readonly cmdIdStopGpa: number;
  /**
   * init_on_alloc=1 (Debian's default, CONFIG_INIT_ON_ALLOC_DEFAULT_ON): the page allocator
   * zeroes every block it hands out, so each hint block is written, and logged dirty, as it is
   * allocated. Absent: blocks are taken as they are (init_on_alloc=0).
   */
  readonly initOnAlloc?: HintPageWriter;
  /** Run rounds on the guest's clock (see the module comment); absent: a block budget per step. */
  readonly pacing?: HintPacing;
  /**
   * Paced mode: the share of a host CPU the vCPU gets now, in (0, 1] (the host may be busy with
   * the migration too); absent: 1. The driver's clock advances by elapsed time × share.
   */
  readonly cpuShare?: () => number;
}

/** Page access the init_on_alloc zeroing needs (guest memory with dirty logging). */
export interface HintPageWriter {
  /** Zeroes page `pfn` (a guest write: the dirty log marks it). */
  zeroPage(pfn: number): void;
  /** Whether page `pfn` is all zero (never written since boot, for the pacing). */
  isZeroPage(pfn: number): boolean;
}

/** Guest time the driver spends per hint block (paced mode), ns. */
export interface HintPacing {
  /** Per block: allocate, add the buffer, kick (no zeroing). */
  readonly blockNs: number;
  /** Per page zeroed by init_on_alloc that held data. */
  readonly zeroTouchedPageNs: number;
  /** Per page zeroed by init_on_alloc that was still zero (first touch). */
  readonly zeroFreshPageNs: number;
}

/** Counters for tests and reports. */
export interface HintWorkerStats {
  /** Rounds started (new command ids acted on). */
  readonly rounds: number;
  /** Blocks added to the queue as hints. */
  readonly blocksHinted: number;
  /** Blocks allocated and freed at once because the queue had no room. */
  readonly blocksFreedNoRoom: number;
  /** Blocks given back by DONE, the shrinker or removal. */
  readonly blocksReturned: number;
  /** DONEs acted on. */
  readonly dones: number;
  /** Buffers that could not be added (queue full or broken), as Linux's dev_err. */
  readonly addFailures: number;
}

export class FreePageHintWorker {
  /** Dependencies. */
  private readonly deps: FreePageHintWorkerDeps;
  /** VIRTIO_BALLOON_CONFIG_READ_CMD_ID: the id must be re-read from config. */
  private readCmdIdPending = false;
  /** The work item is queued (runs when no round is in progress). */
  private workQueued = false;
  /** cmd_id_received_cache: the id last read from config. */
  private cmdIdReceivedCache = CMD_ID_STOP;
  /** cmd_id_active: the id of the current or last round. */
  private cmdIdActive = CMD_ID_STOP;
  /** Whether a round is between its start buffer and its STOP buffer. */
  private roundRunning = false;
  /** free_page_list: first page of each held block, most recent last. */
  private readonly freePageList: number[] = [];
  /** Block numbers (pfn >> HINT_BLOCK_ORDER) of held blocks, for membership tests. */
  private readonly heldBlocks = new Set<number>();
  /** Counters. */
  private counters = { rounds: 0, blocksHinted: 0, blocksFreedNoRoom: 0, blocksReturned: 0, dones: 0, addFailures: 0 };
  /** Paced mode: the block being allocated and zeroed, not yet added (-1: none). */
  private pendingPfn = -1;
  /** Paced mode: the pending block's next page to zero (its end when all are). */
  private zeroNextPfn = -1;
  /** Paced mode: the driver's time at which zeroing `zeroNextPfn` starts, ns. */
  private zeroClockNs = 0;
  /** Paced mode: when the driver's current work ends (the pending block can be added), ns. */
  private busyUntilNs = 0;
  /** Paced mode: the driver's clock (guest time scaled by its CPU share), ns. */
  private nowNs = 0;
  /** Paced mode: the guest's time at the last step, ns. */
  private lastStepNs = -1;

  constructor(deps: FreePageHintWorkerDeps) {
    this.deps = deps;
    deps.memory.writeLe32(deps.cmdIdStopGpa, CMD_ID_STOP);
    deps.memory.writeLe32(deps.cmdIdActiveGpa, CMD_ID_STOP);
  }

  /** The config-change interrupt's part for hinting (virtio_balloon_queue_free_page_work). */
  onConfigChange(): void {
    if (this.readCmdIdPending) return;
    this.readCmdIdPending = true;
    this.workQueued = true;
  }

  /** Whether the worker has something to do (a queued work item or a running round). */
  get busy(): boolean {
    return this.workQueued || this.roundRunning;
  }

  /** Whether a round is in progress. */
  get inRound(): boolean {
    return this.roundRunning;
  }

  /** The active command id (STOP before the first round). */
  get activeCmdId(): number {
    return this.cmdIdActive;
  }

  /**
   * Runs queued work: finishes or continues a round, then starts queued work items, doing at
   * most `budget` block allocations in all. Returns the allocations done. In paced mode the
   * budget is ignored: the round goes as far as the guest's time `nowNs` allows.
   */
  step(budget: number, nowNs = 0): number {
    if (this.deps.pacing !== undefined) {
      const elapsed = this.lastStepNs < 0 ? 0 : Math.max(0, nowNs - this.lastStepNs);
      this.lastStepNs = Math.max(this.lastStepNs, nowNs);
      this.nowNs += elapsed * (this.deps.cpuShare?.() ?? 1);
      budget = Number.POSITIVE_INFINITY;
    }
    let allocations = 0;
    for (;;) {
      if (this.roundRunning) {
        allocations += this.continueRound(budget - allocations);
        if (this.roundRunning) return allocations; // Out of budget mid-round.
      }
      if (!this.workQueued) return allocations;
      this.workQueued = false;
      this.runWork();
    }
  }

  /** Number of held blocks. */
  get heldBlockCount(): number {
    return this.freePageList.length;
  }

  /** Whether page `pfn` lies in a held hint block. */
  holds(pfn: number): boolean {
    return this.heldBlocks.has(Math.floor(pfn / HINT_BLOCK_PAGES));
  }

  /** The held blocks as guest-physical byte ranges. */
  heldRanges(): RangeTable {
    const table = new RangeTable();
    for (const pfn of this.freePageList) table.add(pfn * 4096, pfn * 4096 + HINT_BLOCK_BYTES);
    return table;
  }

  /** The shrinker's count: held pages. */
  shrinkCount(): number {
    return this.freePageList.length * HINT_BLOCK_PAGES;
  }

  /** The shrinker's scan: frees ceil(nrPages / 1024) blocks; returns the pages freed. */
  shrink(nrPages: number): number {
    const blocks = Math.ceil(Math.max(0, nrPages) / HINT_BLOCK_PAGES);
    return this.returnBlocks(blocks) * HINT_BLOCK_PAGES;
  }

  /**
   * Driver removal: any round is abandoned (the device is about to be reset) and every held
   * block goes back. Returns the blocks freed.
   */
  releaseAll(): number {
    this.roundRunning = false;
    this.workQueued = false;
    if (this.pendingPfn >= 0) {
      this.zeroDue(Number.POSITIVE_INFINITY); // alloc_pages returns a block zeroed whole.
      this.deps.allocator.free(this.pendingPfn, HINT_BLOCK_ORDER);
      this.pendingPfn = -1;
    }
    return this.returnBlocks(Number.POSITIVE_INFINITY);
  }

  stats(): HintWorkerStats {
    return { ...this.counters };
  }

  // ---- internals -----------------------------------------------------------------------

  /** virtio_balloon_cmd_id_received: re-read config only when the bit says so. */
  private cmdIdReceived(): number {
    if (this.readCmdIdPending) {
      this.readCmdIdPending = false;
      this.cmdIdReceivedCache = this.deps.readCmdId() >>> 0;
    }
    return this.cmdIdReceivedCache;
  }

  /** report_free_page_func. */
  private runWork(): void {
    const received = this.cmdIdReceived();
    if (received === CMD_ID_DONE) {
      this.counters.dones++;
      this.returnBlocks(Number.POSITIVE_INFINITY);
    } else if (received !== CMD_ID_STOP && received !== this.cmdIdActive) {
      this.startRound();
    }
  }

  /** send_cmd_id_start. */
  private startRound(): void {
    this.reap();
    this.counters.rounds++;
    this.cmdIdActive = this.cmdIdReceived();
    this.deps.memory.writeLe32(this.deps.cmdIdActiveGpa, this.cmdIdActive);
    this.addAndKick([{ gpa: this.deps.cmdIdActiveGpa, lengthBytes: CMD_ID_BYTES }], [], { kind: 'cmd-id' });
    this.roundRunning = true;
    this.busyUntilNs = Math.max(this.busyUntilNs, this.nowNs);
  }

  /** send_free_pages for at most `budget` allocations; ends the round when it is over. */
  private continueRound(budget: number): number {
    if (this.deps.pacing !== undefined) return this.continuePacedRound(this.deps.pacing);
    let allocations = 0;
    for (;;) {
      if (this.cmdIdActive !== this.cmdIdReceived()) break;
      if (allocations >= budget) return allocations;
      // get_free_page_and_send
      this.reap();
      const pfn = this.deps.allocator.alloc(HINT_BLOCK_ORDER);
      if (pfn < 0) break; // No free 4 MiB block left: the round is complete.
      allocations++;
      this.zeroOnAlloc(pfn);
      if (!this.sendBlock(pfn)) break;
    }
    this.sendStop();
    return allocations;
  }

  /**
   * send_free_pages on the guest's clock: the pending block is added once its time is over;
   * the next block is allocated (and zeroed) when the driver is free. Returns allocations.
   */
  private continuePacedRound(pacing: HintPacing): number {
    let allocations = 0;
    for (;;) {
      if (this.pendingPfn >= 0) {
        this.zeroDue(this.nowNs);
        if (this.busyUntilNs > this.nowNs) return allocations; // Still zeroing it.
        this.zeroDue(Number.POSITIVE_INFINITY); // Its time is over: every page is zeroed.
        const pfn = this.pendingPfn;
        this.pendingPfn = -1;
        if (!this.sendBlock(pfn)) break;
      }
      if (this.cmdIdActive !== this.cmdIdReceived()) break;
      if (this.busyUntilNs > this.nowNs) return allocations;
      this.reap();
      const pfn = this.deps.allocator.alloc(HINT_BLOCK_ORDER);
      if (pfn < 0) break;
      allocations++;
      // Work is continuous within a round (startRound set the start): the block's pages are
      // zeroed first, in order, then it is added.
      this.zeroClockNs = this.busyUntilNs;
      this.zeroNextPfn = this.deps.initOnAlloc === undefined ? pfn + HINT_BLOCK_PAGES : pfn;
      this.busyUntilNs += pacing.blockNs + this.zeroCostNs(pfn, pacing);
      this.pendingPfn = pfn;
      this.zeroDue(this.nowNs);
    }
    this.sendStop();
    return allocations;
  }

  /** init_on_alloc: zeroes the block's pages at once (guest writes; the unpaced mode). */
  private zeroOnAlloc(pfn: number): void {
    const writer = this.deps.initOnAlloc;
    if (writer === undefined) return;
    for (let p = pfn; p < pfn + HINT_BLOCK_PAGES; p++) writer.zeroPage(p);
  }

  /** The time init_on_alloc's zeroing of block `pfn` takes under `pacing` (0 without init_on_alloc). */
  private zeroCostNs(pfn: number, pacing: HintPacing): number {
    const writer = this.deps.initOnAlloc;
    if (writer === undefined) return 0;
    let costNs = 0;
    for (let p = pfn; p < pfn + HINT_BLOCK_PAGES; p++) costNs += pageZeroNs(writer, p, pacing);
    return costNs;
  }

  /** Paced mode: zeroes the pending block's pages whose time has ended by the driver's `untilNs`. */
  private zeroDue(untilNs: number): void {
    const writer = this.deps.initOnAlloc;
    const pacing = this.deps.pacing;
    if (writer === undefined || pacing === undefined || this.pendingPfn < 0) return;
    const end = this.pendingPfn + HINT_BLOCK_PAGES;
    while (this.zeroNextPfn < end) {
      const endNs = this.zeroClockNs + pageZeroNs(writer, this.zeroNextPfn, pacing);
      if (endNs > untilNs) return;
      writer.zeroPage(this.zeroNextPfn++);
      this.zeroClockNs = endNs;
    }
  }

  /** Adds block `pfn` as a hint, or frees it; false when the round must end (an add failed). */
  private sendBlock(pfn: number): boolean {
    if (this.deps.queue.numFreeDescriptors > 1) {
      const block: Segment = { gpa: pfn * 4096, lengthBytes: HINT_BLOCK_BYTES };
      if (!this.addAndKick([], [block], { kind: 'block', pfn })) {
        this.deps.allocator.free(pfn, HINT_BLOCK_ORDER);
        return false; // Linux returns the error, which ends the loop; STOP is still sent.
      }
      this.freePageList.push(pfn);
      this.heldBlocks.add(pfn / HINT_BLOCK_PAGES);
      this.counters.blocksHinted++;
    } else {
      // One slot stays reserved for the STOP buffer: the block goes straight back.
      this.deps.allocator.free(pfn, HINT_BLOCK_ORDER);
      this.counters.blocksFreedNoRoom++;
    }
    return true;
  }

  /** send_cmd_id_stop: ends the round. */
  private sendStop(): void {
    this.reap();
    this.addAndKick([{ gpa: this.deps.cmdIdStopGpa, lengthBytes: CMD_ID_BYTES }], [], { kind: 'stop' });
    this.roundRunning = false;
  }

  /** Detaches every used buffer; hinted blocks stay held. */
  private reap(): void {
    while (this.deps.queue.getUsed() !== null) { /* detach only */ }
  }

  private addAndKick(out: readonly Segment[], inBufs: readonly Segment[], token: HintToken): boolean {
    if (!this.deps.queue.add(out, inBufs, token)) {
      this.counters.addFailures++;
      return false;
    }
    if (this.deps.queue.kick()) this.deps.notify();
    return true;
  }

  /** return_free_pages_to_mm: frees up to `count` held blocks, most recent first. */
  private returnBlocks(count: number): number {
    let freed = 0;
    while (freed < count && this.freePageList.length > 0) {
      const pfn = this.freePageList.pop() as number;
      this.heldBlocks.delete(pfn / HINT_BLOCK_PAGES);
      this.deps.allocator.free(pfn, HINT_BLOCK_ORDER);
      freed++;
    }
    this.counters.blocksReturned += freed;
    return freed;
  }
}

/** The time to zero page `pfn`: more when it was never written (the host backs it first). */
function pageZeroNs(writer: HintPageWriter, pfn: number, pacing: HintPacing): number {
  return writer.isZeroPage(pfn) ? pacing.zeroFreshPageNs : pacing.zeroTouchedPageNs;
}
