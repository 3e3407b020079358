/**
 * The source's migration bitmap (QEMU's per-RAMBlock `bmap`, here one bitmap over all guest
 * pages) with the dirty page count kept in step (QEMU's migration_dirty_pages). A set bit
 * means "must be sent". At setup every page of every block is set; each sync ORs the dirty
 * log in; sending a page clears its bit; a free page hint or a virtio-mem discard clears bits
 * here, and never in the dirty log (see dirty-log.ts).
 *
 * Plain (non-atomic) access: only the migration thread touches it.
 */
import { Bitmap } from '../lib/bitmap.ts';
import type { DirtyLog } from './dirty-log.ts';
import { checkPageCount, checkPageIndex } from './page-store.ts';

export class MigrationBitmap {
  /** One bit per guest page; set = still to be sent. */
  readonly bits: Bitmap;
  /** How many bits of `bits` are set; always equal to bits.count(). */
  private dirtyPages = 0;

  constructor(pageCount: number) {
    this.bits = new Bitmap(checkPageCount(pageCount));
  }

  /** Number of guest pages. */
  get pageCount(): number {
    return this.bits.sizeBits;
  }

  /** How many pages are still to be sent. */
  get dirtyCount(): number {
    return this.dirtyPages;
  }

  isDirty(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.bits.sizeBits);
    return this.bits.test(pageIndex);
  }

  /** Marks one page to be sent; true when it was not already. */
  markDirty(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.bits.sizeBits);
    const added = this.bits.testAndSet(pageIndex);
    if (added) this.dirtyPages++;
    return added;
  }

  /** Clears one page's bit (the page is being sent); true when it was set. */
  testAndClear(pageIndex: number): boolean {
    checkPageIndex(pageIndex, this.bits.sizeBits);
    const was = this.bits.testAndClear(pageIndex);
    if (was) this.dirtyPages--;
    return was;
  }

  /** Marks pages [startPage, endPage) to be sent; returns how many were not already. */
  setRange(startPage: number, endPage: number): number {
    const before = this.bits.countRange(startPage, endPage);
    this.bits.setRange(startPage, endPage);
    const added = endPage - startPage - before;
    this.dirtyPages += added;
    return added;
  }

  /** Clears pages [startPage, endPage) (a hint, a discard); returns how many were set. */
  clearRange(startPage: number, endPage: number): number {
    const cleared = this.bits.clearRangeCount(startPage, endPage);
    this.dirtyPages -= cleared;
    return cleared;
  }

  /** Marks every page to be sent (migration setup); returns how many were not already. */
  setAll(): number {
    const added = this.bits.sizeBits - this.dirtyPages;
    this.bits.setAll();
    this.dirtyPages = this.bits.sizeBits;
    return added;
  }

  /** Clears every bit. */
  clearAll(): void {
    this.bits.clearAll();
    this.dirtyPages = 0;
  }

  /** Merges the dirty log in (a bitmap sync); returns how many pages became dirty here. */
  syncFrom(log: DirtyLog): number {
    const added = log.sync(this.bits);
    this.dirtyPages += added;
    return added;
  }

  /** Merges pages [startPage, endPage) of the log in; returns how many became dirty. */
  syncRangeFrom(log: DirtyLog, startPage: number, endPage: number): number {
    const added = log.syncRange(this.bits, startPage, endPage);
    this.dirtyPages += added;
    return added;
  }

  /** The first page to send at or after `from`, or -1. */
  nextDirty(from: number): number {
    return this.bits.nextSet(from);
  }

  /** Recounts the bits; equal to dirtyCount unless someone wrote `bits` directly. */
  recount(): number {
    return this.bits.count();
  }

  /** Bytes of memory the bitmap holds. */
  bookkeepingBytes(): number {
    return this.bits.words.byteLength;
  }
}
