/**
 * A simulated guest: memory, a page allocator, Linux-like balloon and virtio-mem drivers and
 * a workload, stepped by the host with the time as data.
 *
 * Layout of guest physical memory (4 KiB pages):
 *
 *   [0, kernel)              reserved: the kernel image and kernel data; the last
 *                            `vringWindowBytes` of it hold the drivers' rings and buffers,
 *                            handed out front to back by a bump allocator
 *   [kernel, bootRam)        managed by the buddy allocator: free or allocated
 *   [bootRam, memory end)    not present at boot (reserved): a virtio-mem region; plugged
 *                            blocks are given to the allocator by the virtio-mem driver
 *
 * Memory is the given backing behind a DirtyTrackingMemory, so every guest write (workload,
 * drivers) and every device write through the same object lands in the dirty log. Devices
 * must be built on `guest.memory`; pass `devices` as a function of it to build them there.
 * With a compact backing, ring pages are made exact as they are handed out (devices read
 * back what the driver wrote).
 *
 * `step(nowNs)` runs the drivers' queued work (balloon size, statistics, an increment of a
 * free page hint round, virtio-mem requests) and then the workload's writes due by nowNs.
 * Devices run when the drivers kick them (or at the host's poll, in deferred mode).
 *
 * Memory pressure: a workload whose allocation fails reclaims directly (the allocator's
 * `reclaimer`): the balloon driver's hint shrinker gives held hint blocks back.
 *
 * A probe failure leaves the driver unbound, as Linux does, and is listed in `probeErrors`.
 */
import { assert } from '../lib/assert.ts';
import { Prng } from '../lib/prng.ts';
import type { RangeTable } from '../lib/range-table.ts';
import { MiB, TARGET_PAGE_SIZE } from '../lib/units.ts';
import { CompactBacking } from '../memory/compact-backing.ts';
import { DirtyLog } from '../memory/dirty-log.ts';
import { DirtyTrackingMemory, type TrackableBacking } from '../memory/dirty-tracking-memory.ts';
import { BuddyAllocator } from './allocator/buddy.ts';
import { BalloonDriver, type BalloonDriverOptions } from './drivers/balloon-driver.ts';
import { HINT_BLOCK_BYTES } from './drivers/free-page-hint-worker.ts';
import { VirtioMemDriver, type VirtioMemDriverOptions } from './drivers/virtio-mem-driver.ts';
import type { DriverError, VirtioPort } from './drivers/virtio-port.ts';
import { BumpAllocator, type GpaAllocator } from './virtio/bump-allocator.ts';
import { GuestMemoryTarget } from './workloads/memory-target.ts';
import { createWorkload, type Workload, type WorkloadSpec } from './workloads/index.ts';

/** The devices the host gives the guest, one port each. */
export interface GuestDevices {
  readonly balloon?: VirtioPort;
  readonly virtioMem?: VirtioPort;
}

export interface GuestOptions {
  /** Guest RAM; its size is the guest's physical address space. */
  readonly backing: TrackableBacking;
  /** The dirty log writes mark; default a fresh one. */
  readonly dirtyLog?: DirtyLog;
  /** Memory present at boot, from 0; default all of it. The rest is for virtio-mem. */
  readonly bootRamBytes?: number;
  /** Reserved kernel memory at the bottom; default bootRam / 16 clamped to [2, 16] MiB. */
  readonly kernelReservedBytes?: number;
  /** The part of the kernel memory rings and driver buffers come from; default 1 MiB. */
  readonly vringWindowBytes?: number;
  /** The devices, or a function building them on the guest's memory. */
  readonly devices?: GuestDevices | ((memory: DirtyTrackingMemory) => GuestDevices);
  readonly balloon?: BalloonDriverOptions;
  readonly virtioMem?: VirtioMemDriverOptions;
  /** What runs in the guest; default idle. */
  readonly workload?: WorkloadSpec;
  /** Seed of the workload's random choices; default 1. */
  readonly seed?: number;
}

export const GUEST_VRING_WINDOW_BYTES_DEFAULT = 1 * MiB;
/** Objects one shrinker scan is asked to free (Linux's SHRINK_BATCH). */
export const SHRINK_BATCH_PAGES = 128;

export class Guest {
  /** Guest memory with dirty logging. */
  readonly memory: DirtyTrackingMemory;
  /** The page allocator over all of guest memory. */
  readonly allocator: BuddyAllocator;
  /** Pages of guest memory. */
  readonly pageCount: number;
  /** Pages [0, kernelPages) are the reserved kernel. */
  readonly kernelPages: number;
  /** Pages [0, bootRamPages) are present at boot. */
  readonly bootRamPages: number;
  /** Where rings and driver buffers come from. */
  readonly kernelMemory: BumpAllocator;
  /** The balloon driver, when a balloon was given and probed. */
  readonly balloon: BalloonDriver | null;
  /** The virtio-mem driver, when a device was given and probed. */
  readonly virtioMem: VirtioMemDriver | null;
  /** The workload. */
  readonly workload: Workload;
  /** Drivers that failed to probe. */
  readonly probeErrors: DriverError[] = [];
  /** The workload's view of memory. */
  private readonly target: GuestMemoryTarget;

  constructor(options: GuestOptions) {
    const { backing } = options;
    this.pageCount = backing.pageCount;
    this.memory = new DirtyTrackingMemory(backing, options.dirtyLog ?? new DirtyLog(this.pageCount));
    const bootBytes = options.bootRamBytes ?? backing.sizeBytes;
    const vringBytes = options.vringWindowBytes ?? GUEST_VRING_WINDOW_BYTES_DEFAULT;
    const kernelBytes = options.kernelReservedBytes ?? Math.min(16 * MiB, Math.max(2 * MiB, Math.floor(bootBytes / 16)));
    this.bootRamPages = Math.floor(bootBytes / TARGET_PAGE_SIZE);
    this.kernelPages = Math.ceil(kernelBytes / TARGET_PAGE_SIZE);
    assert(this.bootRamPages <= this.pageCount, `boot RAM of ${bootBytes} bytes exceeds guest memory`);
    assert(vringBytes <= this.kernelPages * TARGET_PAGE_SIZE && this.kernelPages <= this.bootRamPages, 'the vring window must fit in the kernel, the kernel in boot RAM');
    this.allocator = new BuddyAllocator({
      pageCount: this.pageCount,
      reserved: [{ start: 0, end: this.kernelPages }, { start: this.bootRamPages, end: this.pageCount }],
    });
    const kernelEnd = this.kernelPages * TARGET_PAGE_SIZE;
    this.kernelMemory = new BumpAllocator(kernelEnd - vringBytes, kernelEnd);
    const kernelMemory: GpaAllocator = backing instanceof CompactBacking ? exactPages(this.kernelMemory, backing) : this.kernelMemory;

    const devices = typeof options.devices === 'function' ? options.devices(this.memory) : options.devices ?? {};
    const deps = { memory: this.memory, allocator: this.allocator, kernelMemory };
    // init_on_alloc's zeroing of hint blocks writes through the dirty-logged memory.
    const memory = this.memory;
    const pages = { zeroPage: (pfn: number) => memory.zeroPage(pfn), isZeroPage: (pfn: number) => memory.backing.isZeroPage(pfn) };
    this.balloon = this.bind(devices.balloon, (port) => new BalloonDriver({ ...deps, port, pages }, options.balloon));
    this.virtioMem = this.bind(devices.virtioMem, (port) => new VirtioMemDriver({ ...deps, port }, options.virtioMem));
    // Direct reclaim (a workload short of memory): the hint shrinker gives held blocks back,
    // as much as Linux's shrink_slab batch (SHRINK_BATCH, 128 pages) asks: one 4 MiB block.
    const balloon = this.balloon;
    if (balloon !== null) this.allocator.reclaimer = (order) => balloon.shrink(Math.max(SHRINK_BATCH_PAGES, 2 ** order));

    this.target = new GuestMemoryTarget(this.memory);
    this.workload = createWorkload(options.workload ?? { kind: 'idle' }, {
      pageCount: this.pageCount,
      prng: new Prng(options.seed ?? 1),
      allocator: this.allocator,
    });
  }

  /**
   * Runs the guest up to `nowNs`: the drivers' queued work, then the workload's due writes.
   * Returns the workload's stall page, or NOT_STALLED (-1).
   */
  step(nowNs: number): number {
    this.balloon?.step(nowNs);
    this.virtioMem?.step(nowNs);
    return this.workload.step(nowNs, this.target);
  }

  /** The guest was stopped until `nowNs`: the workload owes nothing for the gap. */
  skipTo(nowNs: number): void {
    this.workload.skipTo(nowNs);
  }

  /** Whether a driver has queued or waiting work. */
  get driversBusy(): boolean {
    return (this.balloon?.busy ?? false) || (this.virtioMem?.busy ?? false);
  }

  /** Bytes the balloon driver holds as free page hints. */
  heldHintBytes(): number {
    return (this.balloon?.heldHintBlocks ?? 0) * HINT_BLOCK_BYTES;
  }

  /** Bytes free in the page allocator. */
  freeBytes(): number {
    return this.allocator.freePages * TARGET_PAGE_SIZE;
  }

  /** Whether the guest considers page `pfn` free: free in the allocator or held as a hint. */
  pageIsFreeInGuest(pfn: number): boolean {
    return this.allocator.isFree(pfn) || (this.balloon?.holdsHint(pfn) ?? false);
  }

  /** Whether page `pfn` was given to the host by inflating the balloon. */
  pageIsInBalloon(pfn: number): boolean {
    return this.balloon?.inBalloon(pfn) ?? false;
  }

  /** The held hint blocks as guest-physical byte ranges (empty without hinting). */
  heldHintRanges(): RangeTable | null {
    return this.balloon?.heldHintRanges() ?? null;
  }

  /** Memory pressure: the balloon's shrinker releases hint blocks; returns pages freed. */
  shrink(nrPages: number): number {
    return this.balloon?.shrink(nrPages) ?? 0;
  }

  private bind<D extends { probe(): DriverError | null }>(port: VirtioPort | undefined, make: (port: VirtioPort) => D): D | null {
    if (port === undefined) return null;
    const driver = make(port);
    const error = driver.probe();
    if (error === null) return driver;
    this.probeErrors.push(error);
    return null;
  }
}

/** Wraps a GpaAllocator so every page it hands out is exact in a compact backing. */
function exactPages(inner: GpaAllocator, backing: CompactBacking): GpaAllocator {
  return {
    allocate(sizeBytes: number, alignBytes: number): number {
      const gpa = inner.allocate(sizeBytes, alignBytes);
      const last = Math.floor((gpa + Math.max(sizeBytes, 1) - 1) / TARGET_PAGE_SIZE);
      for (let page = Math.floor(gpa / TARGET_PAGE_SIZE); page <= last; page++) backing.makeExact(page);
      return gpa;
    },
  };
}
