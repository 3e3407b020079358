/**
 * Page placement on the destination (facts §2.5, §3.5, §3.8): turns the stream's PAGE and
 * ZERO records into page contents plus received bits, in one of two modes.
 *
 * - Precopy: a page may arrive any number of times (each resend of a dirtied page overwrites
 *   it). PAGE writes the contents; ZERO zeroes the page unless it already is zero (QEMU's
 *   ram_handle_compressed); both set the page's received bit.
 * - Postcopy (after LISTEN): each page is placed exactly once. A record for a page whose bit
 *   is already set fails like QEMU's UFFDIO_COPY with EEXIST (`postcopy_place_page: ...`);
 *   QEMU has no tolerance for that, and neither does this module.
 *
 * Ordering rule for the real shell, where vCPU threads read the received map without locks:
 * the contents are written first and the bit is set after, so a vCPU that sees the bit set
 * reads the final contents.
 *
 * Discards (POSTCOPY_ADVISE treats all RAM as discarded; POSTCOPY_RAM_DISCARD names ranges)
 * clear received bits (ReceivedMap.clearRange) and zero the pages.
 *
 * Payloads: a PAGE record's 4096 bytes (`loadPage`; QEMU's streams, and exact pages of the
 * simulator's compact stream), or, in the compact `version` payload mode, the page's version
 * (`loadVersion`), stored with setVersion on a compact store or materialized on a bytes store.
 *
 * What it deliberately doesn't do: host pages larger than the target page (hugetlbfs
 * assembly of several records into one placement), XBZRLE or compressed pages.
 */
import { assert } from '../../lib/assert.ts';
import { isZeroRange, zeroPagesAt } from '../../lib/zero-range.ts';
import type { RangeTable } from '../../lib/range-table.ts';
import type { RamBlockInfo, RamBlockRef } from '../../format/stream-types.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactPageError } from '../../memory/compact-backing.ts';
import { PAGE_SIZE_BYTES, materializeCompactPage } from '../../memory/page-content.ts';
import { isVersionedPageStore, type PageStore, type VersionedPageStore } from '../../memory/page-store.ts';
import type { ReceivedMap } from '../../memory/received-map.ts';
import type { DestRam, UnwrittenPages } from '../engine-types.ts';
import {
  DestError,
  MIG_ERR_DEST_BLOCK_SIZE,
  MIG_ERR_DEST_PAGE_PAYLOAD,
  MIG_ERR_DEST_PLACED_TWICE,
  MIG_ERR_DEST_UNKNOWN_BLOCK,
  blockSizeText,
  placedTwiceText,
  unknownBlockText,
} from './dest-errors.ts';

/** What placement counted so far (all monotonic). */
export interface PlacementCounters {
  /** PAGE records loaded (with bytes or a version), precopy and postcopy. */
  readonly pagesReceived: number;
  /** ZERO records loaded, precopy and postcopy. */
  readonly zeroPagesReceived: number;
  /** Pages placed after LISTEN (a subset of the two above). */
  readonly postcopyPagesPlaced: number;
  /** Pages zero-filled locally instead of received (virtio-mem unplugged). */
  readonly localZeroPages: number;
  /** Pages discarded by ADVISE or RAM_DISCARD that had been received. */
  readonly discardedPages: number;
  /** Postcopy records refused because the page was already placed (should stay 0). */
  readonly placedTwiceAttempts: number;
  /** ZERO records whose fill byte was not 0 (QEMU never sends one). */
  readonly nonzeroFills: number;
}

export class PagePlacer implements PlacementCounters {
  /** The destination's RAM: block list, page store and received map. */
  private readonly ram: DestRam;
  /** ram.store, held directly for the hot path. */
  private readonly store: PageStore;
  /** ram.received, held directly for the hot path. */
  private readonly received: ReceivedMap;
  /**
   * The bytes of guest RAM when the store is a BytesBacking, else null. PAGE payloads are
   * copied into it with one `set` (a memcpy): BytesBacking.writePageFrom copies byte by byte
   * when the payload is not 4-byte aligned in the stream chunk, which is the usual case and
   * measured ~80 MiB/s against several GiB/s here.
   */
  private readonly ramBytes: Uint8Array | null;
  /** ram.copyPageIn, or a `set` into ramBytes (see DestRam.copyPageIn); null with ramBytes null. */
  private readonly copyPageIn: ((pageIndex: number, bytes: Uint8Array) => void) | null;
  /** ram.store when it is a compact (versioned) store, else null. */
  private readonly versioned: VersionedPageStore | null;
  /** First guest page of each block of the stream's MEM_SIZE list, by list index. */
  private startPages: number[] = [];
  /** One page of scratch: non-zero fills, versions materialized for a bytes store. */
  private readonly scratch = new Uint8Array(PAGE_SIZE_BYTES);
  // The counters (documented on PlacementCounters), bumped by the load and fill methods.
  pagesReceived = 0;
  zeroPagesReceived = 0;
  postcopyPagesPlaced = 0;
  localZeroPages = 0;
  discardedPages = 0;
  placedTwiceAttempts = 0;
  nonzeroFills = 0;

  /**
   * Multifd (multifd-receive.ts): asked before a precopy page is written; false drops the
   * record as stale (an older pass of the page arrived after a newer one). Null: no check.
   */
  gate: ((pageIndex: number) => boolean) | null = null;
  /** Records the gate dropped. */
  staleDropped = 0;

  constructor(ram: DestRam) {
    assert(ram.store.pageCount === ram.received.pageCount, 'page store and received map disagree on the page count');
    assert(ram.blocks.endBytes <= ram.store.sizeBytes, 'RAM blocks reach beyond the page store');
    this.ram = ram;
    this.store = ram.store;
    this.received = ram.received;
    this.versioned = isVersionedPageStore(ram.store) ? ram.store : null;
    const ramBytes = ram.store instanceof BytesBacking ? ram.store.bytes : null;
    this.ramBytes = ramBytes;
    this.copyPageIn = ramBytes === null ? null : ram.copyPageIn ?? ((pageIndex, bytes) => ramBytes.set(bytes, pageIndex * PAGE_SIZE_BYTES));
  }

  /**
   * Takes the stream's MEM_SIZE list: every block must exist locally with the same length
   * (QEMU resizes resizable blocks; livemig's blocks are fixed). Returns the refusal, if any.
   */
  setStreamBlocks(blocks: readonly RamBlockInfo[]): DestError | null {
    const starts: number[] = [];
    for (const info of blocks) {
      const local = this.ram.blocks.byName(info.name);
      if (local === undefined) return new DestError(MIG_ERR_DEST_UNKNOWN_BLOCK, unknownBlockText(info.name));
      if (local.sizeBytes !== info.usedLengthBytes) {
        return new DestError(MIG_ERR_DEST_BLOCK_SIZE, blockSizeText(info.name, info.usedLengthBytes, local.sizeBytes));
      }
      starts.push(local.startPage);
    }
    this.startPages = starts;
    return null;
  }

  /** The guest page a record for `offsetBytes` of stream block `ref` addresses. */
  pageIndexOf(ref: RamBlockRef, offsetBytes: number): number {
    return this.startPages[ref.index] + offsetBytes / PAGE_SIZE_BYTES;
  }

  /** Loads a PAGE record's bytes; returns its page index. Throws DestError (postcopy: placed twice). */
  loadPage(ref: RamBlockRef, offsetBytes: number, data: Uint8Array, postcopy: boolean): number {
    const pageIndex = this.pageIndexOf(ref, offsetBytes);
    this.pagesReceived++;
    if (postcopy) this.refuseSecondPlacement(pageIndex, ref, offsetBytes, false);
    if (this.gate !== null && !this.admit(pageIndex)) return pageIndex;
    this.writeBytes(pageIndex, data);
    this.markReceived(pageIndex, postcopy);
    return pageIndex;
  }

  /** A page from a multifd channel (precopy, already admitted by the gate's owner). */
  loadMultifdPage(pageIndex: number, data: Uint8Array): void {
    this.pagesReceived++;
    this.writeBytes(pageIndex, data);
    this.markReceived(pageIndex, false);
  }

  private admit(pageIndex: number): boolean {
    if (this.gate!(pageIndex)) return true;
    this.staleDropped++;
    return false;
  }

  /** Loads a version-mode PAGE record (the page's version); returns its page index. */
  loadVersion(ref: RamBlockRef, offsetBytes: number, version: number, postcopy: boolean): number {
    const pageIndex = this.pageIndexOf(ref, offsetBytes);
    this.pagesReceived++;
    if (postcopy) this.refuseSecondPlacement(pageIndex, ref, offsetBytes, false);
    if (this.versioned !== null) {
      if (!this.versioned.acceptsVersion(version)) {
        throw new DestError(MIG_ERR_DEST_PAGE_PAYLOAD, `page ${pageIndex}: version ${version} is not one the compact store can hold`);
      }
      this.versioned.setVersion(pageIndex, version);
    } else {
      materializeCompactPage(pageIndex, version, this.scratch, 0);
      this.writeBytes(pageIndex, this.scratch);
    }
    this.markReceived(pageIndex, postcopy);
    return pageIndex;
  }

  /** Loads a ZERO record; returns its page index. Throws DestError (postcopy: placed twice). */
  loadZero(ref: RamBlockRef, offsetBytes: number, fill: number, postcopy: boolean): number {
    const pageIndex = this.pageIndexOf(ref, offsetBytes);
    this.zeroPagesReceived++;
    if (postcopy) this.refuseSecondPlacement(pageIndex, ref, offsetBytes, fill === 0);
    if (this.gate !== null && !this.admit(pageIndex)) return pageIndex;
    if (fill !== 0) {
      this.nonzeroFills++;
      this.scratch.fill(fill);
      this.writeBytes(pageIndex, this.scratch);
    } else if (postcopy || !this.store.isZeroPage(pageIndex)) {
      this.store.zeroPage(pageIndex);
    }
    this.markReceived(pageIndex, postcopy);
    return pageIndex;
  }

  /**
   * Loads `pageCount` consecutive fill-0 ZERO records from `offsetBytes` of `ref`: the same as
   * that many loadZero calls, with the received bits set per word instead of per page. Returns
   * the first page index. A page already placed in postcopy throws (through loadZero) after the
   * pages before it are loaded, as the per-record sequence would.
   */
  loadZeroRun(ref: RamBlockRef, offsetBytes: number, pageCount: number, postcopy: boolean): number {
    const first = this.pageIndexOf(ref, offsetBytes);
    if (this.gate !== null) {
      for (let i = 0; i < pageCount; i++) this.loadZero(ref, offsetBytes + i * PAGE_SIZE_BYTES, 0, postcopy);
      return first;
    }
    const end = first + pageCount;
    if (postcopy) {
      const placed = this.received.bits.nextSetBelow(first, end);
      if (placed !== -1) {
        if (placed > first) this.loadZeroRun(ref, offsetBytes, placed - first, true);
        this.loadZero(ref, offsetBytes + (placed - first) * PAGE_SIZE_BYTES, 0, true);
        throw new Error('unreachable: loadZero accepted a page placed twice');
      }
    }
    const store = this.store;
    if (this.ramBytes !== null && !postcopy) {
      this.zeroBytesRun(this.ramBytes, first, end);
    } else if (this.ramBytes !== null && this.ram.unwritten !== undefined) {
      // Postcopy: no page of the run was received (checked above); those nobody wrote are zero.
      this.zeroWrittenPages(this.ramBytes, this.ram.unwritten, first, end);
    } else if (store.zeroPages !== undefined) {
      // Zeroing a page that is zero already changes nothing, so the whole run may be zeroed.
      store.zeroPages(first, end);
    } else if (postcopy) {
      for (let page = first; page < end; page++) store.zeroPage(page);
    } else {
      for (let page = first; page < end; page++) if (!store.isZeroPage(page)) store.zeroPage(page);
    }
    this.zeroPagesReceived += pageCount;
    const added = this.received.markRange(first, end);
    if (postcopy) {
      assert(added === pageCount, `a page of [${first}, ${end}) was placed twice`);
      this.postcopyPagesPlaced += pageCount;
    }
    return first;
  }

  /**
   * Zero-fills a page locally (a virtio-mem unplugged page, facts §3.5) and marks it received.
   * Returns false, doing nothing, when the page is already received.
   */
  fillLocalZero(pageIndex: number): boolean {
    if (this.received.isReceived(pageIndex)) return false;
    this.store.zeroPage(pageIndex);
    const first = this.received.testAndSet(pageIndex);
    assert(first, `page ${pageIndex} was placed while being zero-filled`);
    this.localZeroPages++;
    return true;
  }

  /** fillLocalZero over every page of `table` (clamped to guest RAM); returns pages filled. */
  fillLocalZeroRanges(table: RangeTable): number {
    let filled = 0;
    for (const range of table.toArray()) {
      const end = Math.min(range.end, this.store.pageCount);
      for (let page = Math.max(range.start, 0); page < end; page++) if (this.fillLocalZero(page)) filled++;
    }
    return filled;
  }

  /**
   * POSTCOPY_RAM_DISCARD of `lengthBytes` at `startBytes` of block `blockName` (the decoder has
   * checked alignment and bounds): the pages become missing and read as zero.
   */
  discardRange(blockName: string, startBytes: number, lengthBytes: number): void {
    const block = this.ram.blocks.requireByName(blockName);
    const start = block.startPage + startBytes / PAGE_SIZE_BYTES;
    const end = start + lengthBytes / PAGE_SIZE_BYTES;
    // Pages never received (or already discarded) read as zero already (discardAll's rule):
    // only the received ones need zeroing, found word by word in the received map.
    const bits = this.received.bits;
    for (let page = bits.nextSetBelow(start, end); page !== -1; page = bits.nextSetBelow(page + 1, end)) this.store.zeroPage(page);
    this.discardedPages += this.clearReceived(start, end);
  }

  /**
   * POSTCOPY_ADVISE: QEMU discards all RAM, so every page starts out missing. Pages already
   * received are zeroed and their bits cleared; pages never received keep the store's initial
   * contents, which for a destination that starts a fresh guest is zero.
   */
  discardAll(): void {
    const bits = this.received.bits;
    for (let page = bits.nextSet(0); page !== -1; page = bits.nextSet(page + 1)) this.store.zeroPage(page);
    this.discardedPages += this.clearReceived(0, this.received.pageCount);
  }

  /** Clears received bits [start, end); returns bits cleared. */
  private clearReceived(start: number, end: number): number {
    return this.received.clearRange(start, end);
  }

  private refuseSecondPlacement(pageIndex: number, ref: RamBlockRef, offsetBytes: number, zero: boolean): void {
    if (!this.received.isReceived(pageIndex)) return;
    this.placedTwiceAttempts++;
    const text = placedTwiceText(zero, pageIndex * PAGE_SIZE_BYTES, ref.name, offsetBytes, PAGE_SIZE_BYTES);
    throw new DestError(MIG_ERR_DEST_PLACED_TWICE, text);
  }

  private markReceived(pageIndex: number, postcopy: boolean): void {
    const first = this.received.testAndSet(pageIndex);
    if (postcopy) {
      assert(first, `page ${pageIndex} was placed twice`);
      this.postcopyPagesPlaced++;
    }
  }

  /**
   * Precopy ZERO records for pages [first, end) of a bytes store: only pages that are not
   * already zero are written (QEMU's ram_handle_compressed), found with large native
   * comparisons (lib/zero-range.ts) so fresh, untouched RAM is scanned, not written. Pages that
   * are known zero unless this engine received them (below the host's verified-zero mark, or
   * never written by anyone else: DestRam) are not read at all unless received.
   */
  private zeroBytesRun(ramBytes: Uint8Array, first: number, end: number): void {
    const verifiedEnd = Math.min(end, this.ram.verifiedZeroBelowPage?.() ?? 0);
    const unwritten = this.ram.unwritten;
    let page = first;
    while (page < end) {
      let known = Math.max(page, verifiedEnd);
      if (unwritten !== undefined) known += unwritten.unwrittenRun(known, end - known);
      if (known > page) {
        this.zeroReceivedPages(ramBytes, page, known);
        page = known;
        continue;
      }
      const stop = unwritten === undefined ? end : page + unwritten.writtenRun(page, end - page);
      this.zeroNonZeroPages(ramBytes, page, stop);
      page = stop;
    }
  }

  /** Zeroes the received pages of [first, end) that are not zero; the others are left unread. */
  private zeroReceivedPages(ramBytes: Uint8Array, first: number, end: number): void {
    const bits = this.received.bits;
    for (let page = bits.nextSetBelow(first, end); page !== -1; page = bits.nextSetBelow(page + 1, end)) {
      const at = page * PAGE_SIZE_BYTES;
      if (!isZeroRange(ramBytes, at, at + PAGE_SIZE_BYTES)) ramBytes.fill(0, at, at + PAGE_SIZE_BYTES);
    }
  }

  /** Zeroes the pages of [first, end) that are not zero, found a span at a time. */
  private zeroNonZeroPages(ramBytes: Uint8Array, first: number, end: number): void {
    let page = first;
    while (page < end) {
      page += zeroPagesAt(ramBytes, page * PAGE_SIZE_BYTES, end - page, PAGE_SIZE_BYTES);
      if (page < end) ramBytes.fill(0, page * PAGE_SIZE_BYTES, ++page * PAGE_SIZE_BYTES);
    }
  }

  /** Postcopy ZERO run over pages none of which was received: zeroes those others may have written. */
  private zeroWrittenPages(ramBytes: Uint8Array, unwritten: UnwrittenPages, first: number, end: number): void {
    let page = first;
    while (page < end) {
      page += unwritten.unwrittenRun(page, end - page);
      if (page >= end) return;
      const stop = page + unwritten.writtenRun(page, end - page);
      ramBytes.fill(0, page * PAGE_SIZE_BYTES, stop * PAGE_SIZE_BYTES);
      page = stop;
    }
  }


  private writeBytes(pageIndex: number, bytes: Uint8Array): void {
    const copyPageIn = this.copyPageIn;
    if (copyPageIn !== null && bytes.length === PAGE_SIZE_BYTES) {
      // pageIndex comes from a block validated against the store (constructor, setStreamBlocks).
      copyPageIn(pageIndex, bytes);
      return;
    }
    try {
      this.store.writePageFrom(pageIndex, bytes, 0);
    } catch (e) {
      if (!(e instanceof CompactPageError)) throw e;
      throw new DestError(MIG_ERR_DEST_PAGE_PAYLOAD, `page ${pageIndex}: ${e.message}`);
    }
  }
}
