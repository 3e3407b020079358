/**
 * Per-vCPU page caches: how a vCPU thread that allocates (the kernel-build workload, allocator
 * churn) gets memory from, and gives it back to, the guest's buddy allocator, which lives on
 * the main thread with the balloon driver. The model is Linux's per-CPU pagesets (struct
 * per_cpu_pages): a CPU allocates from and frees to its own small lists, and the zone's buddy
 * allocator refills and drains them in batches. Here the lists are single-producer,
 * single-consumer rings in one SharedArrayBuffer per vCPU, so neither side ever waits:
 *
 *   refill ring of order k   main thread (producer) → vCPU (consumer): free blocks of order k
 *   free ring                vCPU (producer) → main thread (consumer): (pfn, order) freed blocks
 *   written map              one bit per guest page, set by the vCPU when it writes a page of a
 *                            block it holds, cleared when it frees the block
 *
 * The main thread services every cache on its driver timer (vm-core.ts DRIVER_STEP_MS): it
 * frees what the vCPU returned into the buddy allocator (where free page hinting can find
 * it), then tops each refill ring up to its watermark with `allocReclaiming` (which may take
 * blocks back from the balloon's hint shrinker). A vCPU whose ring of the wanted order is empty
 * sees the allocation fail; the churn workload counts that and retries after its next free.
 *
 * Ordering: indices are published with Atomics.store after the entries are written and read
 * with Atomics.load before the entries are, so each side sees complete entries. The written
 * map is plain memory: the main thread reads it only with the vCPUs paused (the pause
 * handshake in vcpu-control.ts orders it).
 *
 * Pages a refill ring holds are allocated in the buddy allocator and unused by the guest:
 * neither free (never hinted) nor written.
 */
import { MAX_PAGE_ORDER, type BuddyAllocator } from '../guest/allocator/buddy.ts';

/** Orders 0..MAX_PAGE_ORDER. */
const ORDERS = MAX_PAGE_ORDER + 1;
/** Entries per refill ring (a power of two). */
const REFILL_RING_ENTRIES = 64;
/**
 * Blocks each refill ring is kept at, per order, in a guest of WATERMARK_GUEST_PAGES or more
 * (about 27 MiB per vCPU): mostly small blocks, as churn wants. Smaller guests keep
 * proportionally fewer, at least one block of each order (refillWatermarks).
 */
export const REFILL_WATERMARKS: readonly number[] = [64, 32, 32, 16, 16, 8, 8, 4, 4, 2, 2];
/** 2 GiB of 4 KiB pages. */
const WATERMARK_GUEST_PAGES = 524288;

/** The refill watermarks for a guest of `pageCount` pages (see REFILL_WATERMARKS). */
export function refillWatermarks(pageCount: number): number[] {
  const scale = Math.min(1, pageCount / WATERMARK_GUEST_PAGES);
  return REFILL_WATERMARKS.map((n) => Math.max(1, Math.round(n * scale)));
}
/** Longest wait of an allocation on an empty refill ring (the main thread services every 2 ms). */
const REFILL_WAIT_MS = 5;
const IDLE_REFILL_WAIT_MS = 200;
/** (pfn, order) entries in the free ring (a power of two). */
const FREE_RING_ENTRIES = 16384;

// Int32 word layout.
const REFILL_HEAD = 0; // + order: consumed (vCPU)
const REFILL_TAIL = REFILL_HEAD + ORDERS; // + order: produced (main)
const FREE_HEAD = REFILL_TAIL + ORDERS; // consumed (main)
const FREE_TAIL = FREE_HEAD + 1; // produced (vCPU)
const REFILL_BASE = FREE_TAIL + 1;
const FREE_BASE = REFILL_BASE + ORDERS * REFILL_RING_ENTRIES;
const WRITTEN_BASE = FREE_BASE + 2 * FREE_RING_ENTRIES;

/** The shared buffer of one vCPU's cache over a guest of `pageCount` pages. */
export function createPageCacheBuffer(pageCount: number): SharedArrayBuffer {
  return new SharedArrayBuffer((WRITTEN_BASE + Math.ceil(pageCount / 32)) * 4);
}

/** The vCPU's side: an allocator for the churn workload (allocReclaiming and free). */
export class VcpuPageCache {
  private readonly words: Int32Array;
  /** Frees the ring had no room for yet, (pfn, order) pairs, pushed first on the next free. */
  private readonly overflow: number[] = [];
  /** Allocations the cache could not serve (its ring of that order was empty). */
  misses = 0;
  /** Blocks allocated and not freed. */
  private heldBlocks = 0;

  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
  }

  /**
   * A block of `order` from the refill ring. An empty ring is waited on for at most
   * REFILL_WAIT_MS (the main thread's next service, as Linux's rmqueue_bulk takes the zone
   * lock), or IDLE_REFILL_WAIT_MS while the vCPU holds no block (churn stops allocating after
   * a failure until it frees one, so a failure then would stop it for good); then the
   * allocation fails with -1.
   */
  allocReclaiming(order: number): number {
    const w = this.words;
    const head = w[REFILL_HEAD + order];
    let tail = Atomics.load(w, REFILL_TAIL + order);
    if (head === tail) {
      Atomics.wait(w, REFILL_TAIL + order, tail, this.heldBlocks === 0 ? IDLE_REFILL_WAIT_MS : REFILL_WAIT_MS);
      tail = Atomics.load(w, REFILL_TAIL + order);
    }
    if (head === tail) {
      this.misses++;
      return -1;
    }
    const pfn = w[REFILL_BASE + order * REFILL_RING_ENTRIES + (head & (REFILL_RING_ENTRIES - 1))];
    Atomics.store(w, REFILL_HEAD + order, head + 1);
    this.heldBlocks++;
    return pfn;
  }

  /** Gives a block back (its written bits are cleared now, the buddy free happens later). */
  free(pfn: number, order: number): void {
    const end = pfn + 2 ** order;
    for (let p = pfn; p < end; p++) this.words[WRITTEN_BASE + (p >>> 5)] &= ~(1 << (p & 31));
    this.overflow.push(pfn, order);
    this.heldBlocks--;
    this.flush();
  }

  /** Records a write to page `pfn` of a block this vCPU holds. */
  markWritten(pfn: number): void {
    this.words[WRITTEN_BASE + (pfn >>> 5)] |= 1 << (pfn & 31);
  }

  /** Pushes pending frees into the free ring, as far as it has room. */
  flush(): void {
    const w = this.words;
    const pending = this.overflow;
    if (pending.length === 0) return;
    let tail = w[FREE_TAIL];
    const room = FREE_RING_ENTRIES - (tail - Atomics.load(w, FREE_HEAD));
    const n = Math.min(room, pending.length / 2);
    for (let i = 0; i < n; i++) {
      const slot = FREE_BASE + 2 * (tail & (FREE_RING_ENTRIES - 1));
      w[slot] = pending[2 * i];
      w[slot + 1] = pending[2 * i + 1];
      tail++;
    }
    Atomics.store(w, FREE_TAIL, tail);
    pending.splice(0, 2 * n);
  }
}

/** The main thread's side: services every vCPU's cache from the guest's buddy allocator. */
export class PageCacheHost {
  private readonly caches: Int32Array[];
  private readonly allocator: BuddyAllocator;
  private readonly watermarks: readonly number[];
  /** Blocks freed into the allocator, and blocks handed to the vCPUs. */
  blocksFreed = 0;
  blocksRefilled = 0;

  constructor(allocator: BuddyAllocator, buffers: readonly SharedArrayBuffer[]) {
    this.allocator = allocator;
    this.caches = buffers.map((b) => new Int32Array(b));
    this.watermarks = refillWatermarks(allocator.pageCount);
  }

  /** Drains every free ring into the allocator, then refills every refill ring. */
  service(): void {
    for (const w of this.caches) this.drain(w);
    for (const w of this.caches) this.refill(w);
  }

  private drain(w: Int32Array): void {
    let head = w[FREE_HEAD];
    const tail = Atomics.load(w, FREE_TAIL);
    for (; head !== tail; head++) {
      const slot = FREE_BASE + 2 * (head & (FREE_RING_ENTRIES - 1));
      this.allocator.free(w[slot], w[slot + 1]);
      this.blocksFreed++;
    }
    Atomics.store(w, FREE_HEAD, head);
  }

  private refill(w: Int32Array): void {
    for (let order = 0; order < ORDERS; order++) {
      const before = w[REFILL_TAIL + order];
      let tail = before;
      const have = tail - Atomics.load(w, REFILL_HEAD + order);
      for (let n = have; n < this.watermarks[order]; n++) {
        const pfn = this.allocator.allocReclaiming(order);
        if (pfn < 0) break;
        w[REFILL_BASE + order * REFILL_RING_ENTRIES + (tail & (REFILL_RING_ENTRIES - 1))] = pfn;
        tail++;
        this.blocksRefilled++;
      }
      if (tail === before) continue;
      Atomics.store(w, REFILL_TAIL + order, tail);
      Atomics.notify(w, REFILL_TAIL + order);
    }
  }

  /** Number of caches (one per vCPU running kernel-build). */
  get cacheCount(): number {
    return this.caches.length;
  }

  /** Whether cache `index`'s vCPU holds page `pfn` and has written it (vCPUs paused). */
  writtenBy(index: number, pfn: number): boolean {
    return (this.caches[index][WRITTEN_BASE + (pfn >>> 5)] & (1 << (pfn & 31))) !== 0;
  }

  /** Whether some vCPU holds page `pfn` and has written it (read with the vCPUs paused). */
  isWritten(pfn: number): boolean {
    for (let i = 0; i < this.caches.length; i++) if (this.writtenBy(i, pfn)) return true;
    return false;
  }
}
