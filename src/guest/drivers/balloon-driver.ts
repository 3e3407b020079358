/**
 * A Linux-like virtio-balloon driver (drivers/virtio/virtio_balloon.c, v5.10 to v6.x) over a
 * VirtioPort, the guest's buddy allocator and guest memory.
 *
 * Probe (virtballoon_probe): features wanted are Linux's table (MUST_TELL_HOST, STATS_VQ,
 * DEFLATE_ON_OOM, FREE_PAGE_HINT, PAGE_POISON, REPORTING) plus the ring features
 * (INDIRECT_DESC, EVENT_IDX); validate() drops PAGE_POISON unless the guest poisons or
 * zeroes freed pages, and REPORTING when it does but the device lacks PAGE_POISON. Queues
 * are numbered densely (inflate, deflate, [stats], [free page], [reporting]) at the device's
 * sizes; a free page queue under 2 entries fails the probe (-ENOSPC). The stats queue is
 * primed with one buffer, poison_val is written before DRIVER_OK, and a non-zero balloon
 * target at probe time is acted on as a config change.
 *
 * Work (Linux work items, here run by `step(nowNs, hintBudget)`): a config interrupt queues
 * the balloon-size work (balloon-size-worker.ts) and, with FREE_PAGE_HINT, the hint work
 * (free-page-hint-worker.ts); a used stats buffer queues the stats work, which refills the
 * buffer with fresh numbers and gives it back. Interrupt handlers only record.
 *
 * Not modelled: free page reporting (REPORTING can be negotiated and its queue is set up,
 * but nothing is reported), the DEFLATE_ON_OOM notifier, balloon page migration, and
 * freeze/restore. Linux never recovers from DEVICE_NEEDS_RESET on the balloon; neither does
 * this driver.
 */
import * as B from '../../devices/balloon/constants.ts';
import { VIRTIO_CONFIG_S_FAILED, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, featureSet, hasFeature } from '../../devices/virtio/constants.ts';
import type { RangeTable } from '../../lib/range-table.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import type { GpaAllocator } from '../virtio/bump-allocator.ts';
import { negotiateFeatures, setDriverOk, setUpQueue } from '../virtio/driver-features.ts';
import { SplitQueueDriver } from '../virtio/split-queue-driver.ts';
import { BALLOON_PFN_ARRAY_BYTES, BalloonSizeWorker, type SizeToken } from './balloon-size-worker.ts';
import { CMD_ID_BYTES, FreePageHintWorker, HINT_BLOCK_PAGES, type HintPacing, type HintPageWriter, type HintToken } from './free-page-hint-worker.ts';
import { DriverError, type DriverInterrupts, type VirtioPort } from './virtio-port.ts';

/** How the guest treats freed pages (Linux page_poisoning / init_on_free). */
export type PagePoisoning = 'off' | 'poison' | 'init-on-free';

export interface BalloonDriverOptions {
  /** Guest page poisoning; default 'off' (PAGE_POISON is then not accepted). */
  readonly pagePoisoning?: PagePoisoning;
  /** Accept DEFLATE_ON_OOM when offered; default true (it is in Linux's table). */
  readonly deflateOnOom?: boolean;
  /** Accept REPORTING when offered; default false (no reporting worker here). */
  readonly freePageReporting?: boolean;
  /** Most hint blocks allocated per step (the round's increment); default 32. */
  readonly hintBlocksPerStep?: number;
  /** Most pages inflated or deflated per step; default 1024. */
  readonly balloonPagesPerStep?: number;
  /**
   * init_on_alloc=1: the page allocator zeroes each hint block as the driver allocates it
   * (needs `pages` in the deps); default false.
   */
  readonly initOnAlloc?: boolean;
  /** Run hint rounds on the guest's clock instead of `hintBlocksPerStep`; default null. */
  readonly hintPacing?: HintPacing | null;
  /** Paced rounds: the vCPU's share of a host CPU now (see FreePageHintWorkerDeps); default null (1). */
  readonly cpuShare?: (() => number) | null;
}

/** What the driver needs from the guest. */
export interface BalloonDriverDeps {
  readonly port: VirtioPort;
  readonly memory: GuestMemory;
  readonly allocator: BuddyAllocator;
  /** Kernel memory for rings and the driver's buffers. */
  readonly kernelMemory: GpaAllocator;
  /** Page-level access for init_on_alloc's zeroing (guest memory with dirty logging). */
  readonly pages?: HintPageWriter;
}

/** PAGE_POISON's byte 0xaa, replicated (Linux PAGE_POISON). */
export const BALLOON_POISON_VAL = 0xaaaaaaaa;
/** Statistics entries Linux sends (with CONFIG_VM_EVENT_COUNTERS and CONFIG_HUGETLB_PAGE). */
export const BALLOON_STATS_TAGS: readonly number[] = [0, 1, 2, 3, 8, 9, 4, 5, 6, 7];

const PAGE_BYTES = 4096;

export class BalloonDriver implements DriverInterrupts {
  /** Options with defaults applied. */
  readonly options: Required<BalloonDriverOptions>;
  /** Dependencies. */
  private readonly deps: BalloonDriverDeps;
  /** Negotiated features (0 before probe). */
  features = 0n;
  /** Queue indices as numbered for the negotiated features; -1 when absent. */
  readonly queueIndex = { inflate: -1, deflate: -1, stats: -1, freePage: -1, reporting: -1 };
  /** Inflate and deflate. */
  private size: BalloonSizeWorker | null = null;
  /** Free page hinting, when negotiated. */
  private hint: FreePageHintWorker | null = null;
  /** The stats queue, when negotiated. */
  private statsQueue: SplitQueueDriver<number> | null = null;
  /** Where the stats buffer lives. */
  private statsGpa = 0;
  /** The stats work is queued. */
  private statsWorkQueued = false;
  /** stop_update: set by remove(); interrupts queue nothing afterwards. */
  private stopUpdate = false;
  /** Whether probe succeeded and remove() has not run. */
  private bound = false;
  /** The latest guest time seen (kicks carry it). */
  private nowNs = 0;
  /** Config interrupts received. */
  configInterrupts = 0;
  /** Statistics buffers sent. */
  statsSent = 0;

  constructor(deps: BalloonDriverDeps, options: BalloonDriverOptions = {}) {
    this.deps = deps;
    this.options = {
      pagePoisoning: options.pagePoisoning ?? 'off',
      deflateOnOom: options.deflateOnOom ?? true,
      freePageReporting: options.freePageReporting ?? false,
      hintBlocksPerStep: options.hintBlocksPerStep ?? 32,
      balloonPagesPerStep: options.balloonPagesPerStep ?? 1024,
      initOnAlloc: options.initOnAlloc ?? false,
      hintPacing: options.hintPacing ?? null,
      cpuShare: options.cpuShare ?? null,
    };
  }

  /** Binds to the device; on failure the device is left FAILED and the error returned. */
  probe(): DriverError | null {
    const { port, memory, kernelMemory } = this.deps;
    port.connectDriver(this);
    const negotiated = negotiateFeatures(port, this.wantedFeatures(port.readDeviceFeatures()));
    if (!negotiated.ok) return this.fail(new DriverError('DRIVER_ERR_NEGOTIATION', `virtio-balloon: ${negotiated.error.message}`));
    this.features = negotiated.features;

    // init_vqs: dense indices, absent queues take none.
    let next = 0;
    const setUp = <T>(name: string): SplitQueueDriver<T> | DriverError => {
      const q = setUpQueue<T>(port, memory, kernelMemory, next++, this.features);
      return q instanceof SplitQueueDriver ? q : new DriverError('DRIVER_ERR_QUEUE', `virtio-balloon: ${name} queue: ${q.message}`);
    };
    this.queueIndex.inflate = next;
    const inflate = setUp<SizeToken>('inflate');
    if (inflate instanceof DriverError) return this.fail(inflate);
    this.queueIndex.deflate = next;
    const deflate = setUp<SizeToken>('deflate');
    if (deflate instanceof DriverError) return this.fail(deflate);
    if (this.has(B.VIRTIO_BALLOON_F_STATS_VQ)) {
      this.queueIndex.stats = next;
      const stats = setUp<number>('stats');
      if (stats instanceof DriverError) return this.fail(stats);
      this.statsQueue = stats;
    }
    let freePage: SplitQueueDriver<HintToken> | null = null;
    if (this.has(B.VIRTIO_BALLOON_F_FREE_PAGE_HINT)) {
      this.queueIndex.freePage = next;
      const q = setUp<HintToken>('free page');
      if (q instanceof DriverError) return this.fail(q);
      if (q.queueSize < 2) return this.fail(new DriverError('DRIVER_ERR_QUEUE', `virtio-balloon: free page queue of ${q.queueSize} entries, at least 2 needed`));
      q.disableCallbacks(); // Linux gives the free page queue no callback.
      freePage = q;
    }
    if (this.has(B.VIRTIO_BALLOON_F_REPORTING)) {
      this.queueIndex.reporting = next;
      const q = setUp<number>('reporting');
      if (q instanceof DriverError) return this.fail(q);
      if (q.queueSize < 32) return this.fail(new DriverError('DRIVER_ERR_QUEUE', `virtio-balloon: reporting queue of ${q.queueSize} entries, at least 32 needed`));
    }

    const pfnsGpa = kernelMemory.allocate(BALLOON_PFN_ARRAY_BYTES, 8);
    this.size = new BalloonSizeWorker({
      inflateQueue: inflate,
      deflateQueue: deflate,
      memory,
      allocator: this.deps.allocator,
      readNumPages: () => port.readConfig(B.BALLOON_CONFIG_NUM_PAGES_OFFSET, 4) >>> 0,
      writeActual: (pages) => port.writeConfig(B.BALLOON_CONFIG_ACTUAL_OFFSET, 4, pages),
      notify: (isInflate) => port.notify(isInflate ? this.queueIndex.inflate : this.queueIndex.deflate, this.nowNs),
      pfnsGpa,
      deflateOnOom: this.has(B.VIRTIO_BALLOON_F_DEFLATE_ON_OOM),
    });
    if (this.statsQueue !== null) {
      // Prime the stats queue with one buffer so the device can ask for statistics.
      this.statsGpa = kernelMemory.allocate(BALLOON_STATS_TAGS.length * B.BALLOON_STAT_ENTRY_BYTES, 8);
      this.sendStats(this.statsQueue);
    }
    if (freePage !== null) {
      this.hint = new FreePageHintWorker({
        queue: freePage,
        memory,
        allocator: this.deps.allocator,
        readCmdId: () => port.readConfig(B.BALLOON_CONFIG_FREE_PAGE_HINT_CMD_ID_OFFSET, 4),
        notify: () => port.notify(this.queueIndex.freePage, this.nowNs),
        cmdIdActiveGpa: kernelMemory.allocate(CMD_ID_BYTES, 4),
        cmdIdStopGpa: kernelMemory.allocate(CMD_ID_BYTES, 4),
        initOnAlloc: this.options.initOnAlloc ? this.deps.pages : undefined,
        pacing: this.options.hintPacing ?? undefined,
        cpuShare: this.options.cpuShare ?? undefined,
      });
    }
    if (this.has(B.VIRTIO_BALLOON_F_PAGE_POISON)) {
      const poison = this.options.pagePoisoning === 'init-on-free' ? 0 : BALLOON_POISON_VAL;
      port.writeConfig(B.BALLOON_CONFIG_POISON_VAL_OFFSET, 4, poison);
    }
    const refusal = setDriverOk(port);
    if (refusal !== null) return this.fail(new DriverError('DRIVER_ERR_NEGOTIATION', `virtio-balloon: ${refusal.message}`));
    this.bound = true;
    if (this.towardsTarget() !== 0) this.onConfigChange();
    return null;
  }

  /** Whether feature `bit` was negotiated. */
  has(bit: number): boolean {
    return hasFeature(this.features, bit);
  }

  // ---- interrupts (DriverInterrupts) ---------------------------------------------------

  /** virtballoon_changed: queue the size work and, with hinting, the hint work. */
  onConfigChange(): void {
    this.configInterrupts++;
    if (this.stopUpdate || !this.bound) return;
    this.size?.queue();
    this.hint?.onConfigChange();
  }

  /** stats_request for the stats queue; inflate/deflate acks are reaped by the waiters. */
  onQueueInterrupt(queueIndex: number): void {
    if (queueIndex === this.queueIndex.stats && !this.stopUpdate) this.statsWorkQueued = true;
  }

  // ---- work ----------------------------------------------------------------------------

  /**
   * Runs the driver's queued work at `nowNs`: balloon size, statistics, and at most
   * `hintBlockBudget` hint block allocations of the free page hint round.
   */
  step(nowNs: number, hintBlockBudget: number = this.options.hintBlocksPerStep): void {
    if (!this.bound) return;
    this.nowNs = Math.max(this.nowNs, nowNs);
    this.size?.step(this.nowNs, this.options.balloonPagesPerStep);
    if (this.statsWorkQueued && this.statsQueue !== null) {
      this.statsWorkQueued = false;
      if (this.statsQueue.getUsed() !== null) this.sendStats(this.statsQueue);
    }
    this.hint?.step(hintBlockBudget, this.nowNs);
  }

  /** Whether work is queued or waiting (the guest has something to do). */
  get busy(): boolean {
    return this.bound && ((this.size?.busy ?? false) || (this.hint?.busy ?? false) || this.statsWorkQueued);
  }

  /** Inflate/deflate counters: failed page allocations, buffers the queue refused. */
  sizeStats(): { readonly allocationFailures: number; readonly addFailures: number } {
    return { allocationFailures: this.size?.allocationFailures ?? 0, addFailures: this.size?.addFailures ?? 0 };
  }

  /** Pages in the balloon (vb->num_pages). */
  get numPages(): number {
    return this.size?.numPages ?? 0;
  }

  /** The hint worker, when FREE_PAGE_HINT was negotiated. */
  get hinting(): FreePageHintWorker | null {
    return this.hint;
  }

  /** Held hint blocks. */
  get heldHintBlocks(): number {
    return this.hint?.heldBlockCount ?? 0;
  }

  /** Held hint blocks as guest-physical byte ranges. */
  heldHintRanges(): RangeTable | null {
    return this.hint?.heldRanges() ?? null;
  }

  /** Whether page `pfn` is held as a hint. */
  holdsHint(pfn: number): boolean {
    return this.hint?.holds(pfn) ?? false;
  }

  /** Whether page `pfn` is in the balloon. */
  inBalloon(pfn: number): boolean {
    return this.size?.holds(pfn) ?? false;
  }

  /** The shrinker's count (held hint pages). */
  shrinkCount(): number {
    return this.hint?.shrinkCount() ?? 0;
  }

  /** The shrinker's scan: releases ceil(nrPages / 1024) hint blocks; returns pages freed. */
  shrink(nrPages: number): number {
    return this.hint?.shrink(nrPages) ?? 0;
  }

  /**
   * virtballoon_remove: no more updates, the balloon is emptied (actual := 0), held hint
   * blocks are released and the device is reset. Returns the pages given back.
   */
  remove(): number {
    if (!this.bound) return 0;
    this.stopUpdate = true;
    this.statsWorkQueued = false;
    const balloonPages = this.size?.releaseAll() ?? 0;
    const hintPages = (this.hint?.releaseAll() ?? 0) * HINT_BLOCK_PAGES;
    this.deps.port.writeStatus(0);
    this.deps.port.connectDriver(null);
    this.bound = false;
    return balloonPages + hintPages;
  }

  // ---- internals -----------------------------------------------------------------------

  /** Linux's feature table plus ring features, after validate(). */
  private wantedFeatures(offered: bigint): bigint {
    let wanted = featureSet(
      B.VIRTIO_BALLOON_F_MUST_TELL_HOST, B.VIRTIO_BALLOON_F_STATS_VQ, B.VIRTIO_BALLOON_F_FREE_PAGE_HINT,
      B.VIRTIO_BALLOON_F_PAGE_POISON, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX,
    );
    if (this.options.deflateOnOom) wanted |= featureSet(B.VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
    if (this.options.freePageReporting) wanted |= featureSet(B.VIRTIO_BALLOON_F_REPORTING);
    const poisoning = this.options.pagePoisoning !== 'off';
    if (!poisoning) wanted &= ~featureSet(B.VIRTIO_BALLOON_F_PAGE_POISON);
    if (poisoning && !hasFeature(offered, B.VIRTIO_BALLOON_F_PAGE_POISON)) wanted &= ~featureSet(B.VIRTIO_BALLOON_F_REPORTING);
    return wanted;
  }

  /** num_pages − pages in the balloon. */
  private towardsTarget(): number {
    return (this.deps.port.readConfig(B.BALLOON_CONFIG_NUM_PAGES_OFFSET, 4) >>> 0) - this.numPages;
  }

  /** update_balloon_stats + add the buffer + kick. */
  private sendStats(queue: SplitQueueDriver<number>): void {
    const { allocator } = this.deps;
    const freeBytes = allocator.freePages * PAGE_BYTES;
    const managed = allocator.freePages + allocator.allocatedPages - (this.size?.unmanagedPages ?? 0);
    const values: Record<number, number> = {
      [B.BALLOON_STAT_NAMES.indexOf('stat-free-memory')]: freeBytes,
      [B.BALLOON_STAT_NAMES.indexOf('stat-total-memory')]: managed * PAGE_BYTES,
      [B.BALLOON_STAT_NAMES.indexOf('stat-available-memory')]: freeBytes,
    };
    const bytes = new Uint8Array(BALLOON_STATS_TAGS.length * B.BALLOON_STAT_ENTRY_BYTES);
    const view = new DataView(bytes.buffer);
    BALLOON_STATS_TAGS.forEach((tag, i) => {
      view.setUint16(i * B.BALLOON_STAT_ENTRY_BYTES, tag, true);
      view.setBigUint64(i * B.BALLOON_STAT_ENTRY_BYTES + 2, BigInt(values[tag] ?? 0), true);
    });
    this.deps.memory.write(this.statsGpa, bytes);
    if (queue.add([{ gpa: this.statsGpa, lengthBytes: bytes.length }], [], this.statsSent)) {
      this.statsSent++;
      if (queue.kick()) this.deps.port.notify(this.queueIndex.stats, this.nowNs);
    }
  }

  private fail(error: DriverError): DriverError {
    const { port } = this.deps;
    port.writeStatus(port.readStatus() | VIRTIO_CONFIG_S_FAILED);
    port.connectDriver(null);
    return error;
  }
}
