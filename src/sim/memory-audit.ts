/**
 * What the world remembers to judge memory after a run (invariants 1, 2 and 5):
 *
 * - `hinted`: every page a free page hint cleared during the migration;
 * - `freeAtSwitch`: at the switchover (the source stops its guest), the hinted pages the guest
 *   still considered free (Guest.pageIsFreeInGuest: held as a hint, or free in its allocator);
 *   only these, and unplugged pages, may differ on the destination;
 * - `unplugged`: the unplugged virtio-mem pages (they cannot change while a migration runs:
 *   the device answers plug and unplug requests BUSY);
 * - `writtenAfterResume` / `firstWriteMismatch`: once the destination guest runs, each page
 *   is compared with the (frozen) source page just before its first write there, because the
 *   end-of-run comparison can no longer see what the destination received;
 * - `unpluggedAccesses`: guest and engine touches of unplugged pages.
 *
 * Cost: one bit per page per bitmap, allocated only when needed (no hints, no virtio-mem and
 * no destination writes cost nothing).
 */
import { Bitmap } from '../lib/bitmap.ts';
import type { RangeTable } from '../lib/range-table.ts';
import type { PageStore } from '../memory/page-store.ts';
import type { PageFilter } from './checkers/verdict.ts';
import type { UnpluggedAccesses } from './checkers/unplugged.ts';

/** Pages named per kind of unplugged access. */
const ACCESS_PAGES_MAX = 16;

/** Counts accesses to unplugged pages of one kind, naming the first few. */
export class AccessCounter implements UnpluggedAccesses {
  count = 0;
  readonly pages: number[] = [];

  record(pageIndex: number): void {
    this.count++;
    if (this.pages.length < ACCESS_PAGES_MAX) this.pages.push(pageIndex);
  }
}

export class MemoryAudit {
  /** Guest pages. */
  readonly pageCount: number;
  /** Pages a hint cleared during the migration (null until the first hint). */
  private hinted: Bitmap | null = null;
  /**
   * Pages whose content the guest gave up: free when the migration started or freed since, and
   * not written on the source after that (null before the migration starts).
   */
  private dead: Bitmap | null = null;
  /** Hinted pages whose content the guest gave up at the switchover (null before it). */
  private freeAtSwitch: Bitmap | null = null;
  /** Unplugged virtio-mem pages (null without virtio-mem). */
  private unpluggedBits: Bitmap | null = null;
  /** How many pages `unpluggedBits` holds. */
  unpluggedPageCount = 0;
  /** Pages the destination guest has written (null until it runs). */
  writtenAfterResume: Bitmap | null = null;
  /** Of those, pages that differed from the source at their first write (null until one did). */
  firstWriteMismatch: Bitmap | null = null;
  /** The stores compared at first writes (set when the destination guest starts). */
  private stores: { readonly source: PageStore; readonly destination: PageStore } | null = null;
  /** Hint ranges applied. */
  hintRangeCount = 0;
  /** Guest accesses (source or destination) to unplugged pages. */
  readonly guestUnpluggedAccesses = new AccessCounter();
  /** Source engine reads of unplugged pages. */
  readonly sourceUnpluggedReads = new AccessCounter();
  /** Unplugged pages received by the destination from the stream. */
  readonly receivedUnplugged = new AccessCounter();

  constructor(pageCount: number) {
    this.pageCount = pageCount;
  }

  /** The unplugged pages, fixed for the migration (plug and unplug answer BUSY meanwhile). */
  setUnplugged(unplugged: RangeTable | null): void {
    if (unplugged === null || unplugged.isEmpty()) {
      this.unpluggedBits = null;
      this.unpluggedPageCount = 0;
      return;
    }
    const bits = new Bitmap(this.pageCount);
    let count = 0;
    for (const r of unplugged) {
      const end = Math.min(r.end, this.pageCount);
      bits.setRange(r.start, end);
      count += end - r.start;
    }
    this.unpluggedBits = bits;
    this.unpluggedPageCount = count;
  }

  /** A hint cleared pages [startPage, startPage + pageCount). */
  onHint(startPage: number, pageCount: number): void {
    if (this.hinted === null) this.hinted = new Bitmap(this.pageCount);
    this.hinted.setRange(startPage, Math.min(startPage + pageCount, this.pageCount));
    this.hintRangeCount++;
  }

  /**
   * The migration starts: from now on the audit follows which pages' content the guest gave
   * up. `forEachFree` visits the guest's free blocks now (first page, page count).
   */
  startSourceAudit(forEachFree: (visit: (firstPage: number, pageCount: number) => void) => void): void {
    const dead = new Bitmap(this.pageCount);
    forEachFree((first, count) => dead.setRange(first, Math.min(first + count, this.pageCount)));
    this.dead = dead;
  }

  /** The guest freed pages [firstPage, firstPage + pageCount) on the source: content given up. */
  onGuestFree(firstPage: number, pageCount: number): void {
    if (this.dead !== null) this.dead.setRange(firstPage, Math.min(firstPage + pageCount, this.pageCount));
  }

  /** The guest writes pages [first, last] on the source: their content counts again. */
  onSourceWrite(firstPage: number, lastPage: number): void {
    if (this.dead !== null) this.dead.clearRange(firstPage, lastPage + 1);
  }

  /** Whether a hint cleared page `p` during the migration. */
  wasHinted(p: number): boolean {
    return this.hinted !== null && this.hinted.test(p);
  }

  /** Pages hinted so far. */
  hintedPageCount(): number {
    return this.hinted?.count() ?? 0;
  }

  /**
   * The source stopped its guest for the switchover: remember which hinted pages' content the
   * guest has given up: free in the guest now (free or held as a hint), or freed after their
   * last write (the shrinker gave them back and they were allocated again, but nothing wrote
   * them yet: the virtio spec has the driver treat hinted pages as uninitialised). Cost: one
   * call per hinted page.
   */
  snapshotAtSwitch(pageIsFreeInGuest: (pageIndex: number) => boolean): void {
    if (this.hinted === null) return;
    const free = new Bitmap(this.pageCount);
    const dead = this.dead;
    for (let p = this.hinted.nextSet(0); p !== -1; p = this.hinted.nextSet(p + 1)) {
      if ((dead !== null && dead.test(p)) || pageIsFreeInGuest(p)) free.set(p);
    }
    this.freeAtSwitch = free;
  }

  /** Whether page `p` was hinted and free in the guest at the switchover. */
  hintedFreeAtSwitch(p: number): boolean {
    return this.freeAtSwitch !== null && this.freeAtSwitch.test(p);
  }

  /** Pages allowed to differ between the destination and the source at switchover. */
  readonly allowedToDiffer: PageFilter = {
    has: (p: number): boolean => (this.unpluggedBits !== null && this.unpluggedBits.test(p)) || (this.freeAtSwitch !== null && this.freeAtSwitch.test(p)),
  };

  /** The destination guest starts: from now on its first write to a page is audited. */
  startDestinationAudit(source: PageStore, destination: PageStore): void {
    this.stores = { source, destination };
    this.writtenAfterResume = new Bitmap(this.pageCount);
  }

  /** Whether first writes are being audited (the destination guest runs). */
  get auditing(): boolean {
    return this.stores !== null;
  }

  /** Before the destination guest (or a device on its behalf) writes pages [first, last]. */
  beforeDestinationWrite(firstPage: number, lastPage: number): void {
    const stores = this.stores;
    if (stores === null) return;
    const written = this.writtenAfterResume as Bitmap;
    for (let p = firstPage; p <= lastPage; p++) {
      if (!written.testAndSet(p)) continue;
      if (!stores.destination.pageEquals(stores.source, p)) (this.firstWriteMismatch ??= new Bitmap(this.pageCount)).set(p);
    }
  }

  /** A guest access to pages [first, last]: counts those that are unplugged. */
  onGuestAccess(firstPage: number, lastPage: number): void {
    const unplugged = this.unpluggedBits;
    if (unplugged === null) return;
    for (let p = firstPage; p <= lastPage; p++) if (unplugged.test(p)) this.guestUnpluggedAccesses.record(p);
  }

  /** Whether any page of [start, end) is unplugged (found per word). */
  unpluggedInRange(start: number, end: number): boolean {
    return this.unpluggedBits !== null && this.unpluggedBits.nextSetBelow(start, end) !== -1;
  }

  /** Whether a page is unplugged. */
  isUnplugged(pageIndex: number): boolean {
    return this.unpluggedBits !== null && this.unpluggedBits.test(pageIndex);
  }
}
