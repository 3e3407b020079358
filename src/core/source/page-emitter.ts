/**
 * The hot path of the source: page records written straight from the page store into the
 * encoder's chunk buffer, one implementation per (payload mode, store kind), chosen once:
 *
 * | mode    | store        | how                                                          |
 * |---------|--------------|--------------------------------------------------------------|
 * | bytes   | BytesBacking | runs through StreamEncoder.ramPages (word zero test, one copy) |
 * | bytes   | any other    | per page: isZeroPage → ZERO, else copyPageOut into the chunk   |
 * | version | CompactBacking | per page from the versions array: 0 → ZERO, exact → mark+bytes, else version |
 * | version | any other    | per page through pageVersion / isZeroPage                     |
 *
 * Every emitter stops once the encoder's wire offset reaches the caller's limit (always writing
 * at least one page), so a chunk overshoots its budget by at most one record, as QEMU's rate
 * limit does. Nothing is allocated per page. The caller has already decided the pages must be
 * sent and does the bitmap bookkeeping for the pages written.
 */
import type { StreamEncoder } from '../../format/stream-encoder.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { EXACT_PAGE_VERSION, isVersionedPageStore, type PageStore } from '../../memory/page-store.ts';
import type { RamBlock } from '../../memory/ram-block.ts';
import type { PagePayloadMode, UnwrittenPages } from '../engine-types.ts';
import { zeroPagesAt } from '../../lib/zero-range.ts';

/** Bytes of a PAGE|CONTINUE record in bytes mode: the record word and the page. */
const PAGE_RECORD_BYTES = 8 + 4096;
/** Bytes of a ZERO|CONTINUE record: the record word and the fill byte. */
export const ZERO_RECORD_BYTES = 9;
/** Versions tested at once when a zero run is extended. */
const ZERO_SPAN_VERSIONS = 4096;

export interface PageEmitter {
  /** Pages written as ZERO records, cumulative (the caller takes differences). */
  zeroPages: number;
  /** Pages written with content (PAGE records), cumulative. */
  normalPages: number;
  /**
   * Writes records for pages [firstPage, firstPage + count) of `block` (global page indexes)
   * into `encoder`, in order, stopping before a page once the encoder's wire offset is at or
   * past `wireLimit`; the first page is always written. Returns how many pages were written.
   */
  emit(encoder: StreamEncoder, block: RamBlock, firstPage: number, count: number, wireLimit: number): number;
}

/**
 * The emitter for a store and payload mode. With `unwritten` (bytes over real bytes only), pages
 * known never written go out as ZERO runs without being read.
 */
export function createPageEmitter(store: PageStore, mode: PagePayloadMode, unwritten: UnwrittenPages | null = null): PageEmitter {
  if (mode === 'version') return new VersionEmitter(store);
  if (store instanceof BytesBacking) return new BytesRunEmitter(store, unwritten);
  return new StorePageEmitter(store);
}

/**
 * bytes mode over real bytes: whole runs through the encoder's ramPages; runs of pages never
 * written (when the host knows them) as ZERO runs, unread.
 */
class BytesRunEmitter implements PageEmitter {
  zeroPages = 0;
  normalPages = 0;
  /** The block whose view is cached, and the view of its used bytes. */
  private viewBlock: RamBlock | null = null;
  private view: Uint8Array = new Uint8Array(0);

  constructor(private readonly store: BytesBacking, private readonly unwritten: UnwrittenPages | null) {}

  emit(encoder: StreamEncoder, block: RamBlock, firstPage: number, count: number, wireLimit: number): number {
    const unwritten = this.unwritten;
    if (block !== this.viewBlock) {
      this.view = this.store.bytes.subarray(block.offsetBytes, block.offsetBytes + block.sizeBytes);
      this.viewBlock = block;
    }
    const pageBytes = 4096;
    let done = 0;
    while (done < count) {
      const leftBytes = wireLimit - encoder.wireOffsetBytes;
      if (leftBytes <= 0 && done > 0) break;
      const page = firstPage + done;
      if (unwritten !== null) {
        const zeros = unwritten.unwrittenRun(page, Math.min(count - done, Math.max(1, Math.ceil(leftBytes / ZERO_RECORD_BYTES))));
        if (zeros > 0) {
          encoder.ramZeroRun(block.name, page - block.startPage, zeros);
          this.zeroPages += zeros;
          done += zeros;
          continue;
        }
      }
      // As many pages as surely fit if none is zero; zero pages leave budget for another round.
      let n = Math.min(count - done, Math.max(1, Math.floor(leftBytes / PAGE_RECORD_BYTES)));
      if (unwritten !== null) n = unwritten.writtenRun(page, n);
      const startBytes = (page - block.startPage) * pageBytes;
      const written = encoder.ramPages(block.name, this.view, 0, startBytes, n * pageBytes);
      this.zeroPages += written.zeroPages;
      this.normalPages += written.normalPages;
      done += n;
    }
    return done;
  }
}

/** bytes mode over any store: zero test and copy per page. */
class StorePageEmitter implements PageEmitter {
  zeroPages = 0;
  normalPages = 0;

  constructor(private readonly store: PageStore) {}

  emit(encoder: StreamEncoder, block: RamBlock, firstPage: number, count: number, wireLimit: number): number {
    const store = this.store;
    const name = block.name;
    const base = block.startPage;
    let k = 0;
    for (; k < count; k++) {
      if (k > 0 && encoder.wireOffsetBytes >= wireLimit) break;
      const page = firstPage + k;
      if (store.isZeroPage(page)) {
        encoder.ramZeroPage(name, page - base);
        this.zeroPages++;
      } else {
        encoder.ramPageFrom(name, page - base, store, page);
        this.normalPages++;
      }
    }
    return k;
  }
}

/**
 * version mode. A compact store's versions are read straight from its array; the value that
 * marks an exact page (2^bits - 1) sends the exact-page record. Stores without versions send
 * every non-zero page as an exact page.
 */
class VersionEmitter implements PageEmitter {
  zeroPages = 0;
  normalPages = 0;
  /** The compact store's versions, or null for other stores. */
  private readonly versions: Uint16Array | Uint32Array | null;
  /** The value of `versions` that marks an exact page. */
  private readonly exactMarker: number;
  /** `versions` as bytes, for the zero-run search; and bytes per version. */
  private readonly versionBytes: Uint8Array;
  private readonly versionSize: number;

  constructor(private readonly store: PageStore) {
    if (store instanceof CompactBacking) {
      this.versions = store.versions;
      this.exactMarker = 2 ** store.versionBits - 1;
    } else {
      this.versions = null;
      this.exactMarker = -1;
    }
    const v = this.versions;
    this.versionBytes = v === null ? new Uint8Array(0) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    this.versionSize = v === null ? 1 : v.BYTES_PER_ELEMENT;
  }

  emit(encoder: StreamEncoder, block: RamBlock, firstPage: number, count: number, wireLimit: number): number {
    const versions = this.versions;
    const marker = this.exactMarker;
    const name = block.name;
    const base = block.startPage;
    let k = 0;
    for (; k < count; k++) {
      if (k > 0 && encoder.wireOffsetBytes >= wireLimit) break;
      const page = firstPage + k;
      const version = versions !== null ? versions[page] : this.versionOf(page);
      if (version === 0 && versions !== null) {
        // A run of zero pages in one tight loop, as far as the budget reaches (9 bytes each).
        const budgetPages = Math.max(1, Math.ceil((wireLimit - encoder.wireOffsetBytes) / ZERO_RECORD_BYTES));
        const stop = Math.min(count, k + budgetPages);
        // The rest of the run: zero versions found a span at a time (lib/zero-range.ts).
        const size = this.versionSize;
        const end = k + 1 + zeroPagesAt(this.versionBytes, (page + 1) * size, stop - k - 1, size, ZERO_SPAN_VERSIONS);
        encoder.ramZeroRun(name, page - base, end - k);
        this.zeroPages += end - k;
        k = end - 1;
      } else if (version === 0) {
        encoder.ramZeroPage(name, page - base);
        this.zeroPages++;
      } else if (version === marker || version === EXACT_PAGE_VERSION) {
        this.exactPage(encoder, name, page, base);
      } else if (versions !== null) {
        // A run of versioned pages in one tight loop, as far as the budget reaches.
        const budgetPages = Math.max(1, Math.ceil((wireLimit - encoder.wireOffsetBytes) / PAGE_RECORD_BYTES));
        const stop = Math.min(count, k + budgetPages);
        let end = k + 1;
        for (; end < stop; end++) {
          const v = versions[firstPage + end];
          if (v === 0 || v === marker) break;
        }
        encoder.ramPageVersionRun(name, page - base, versions, page, end - k);
        this.normalPages += end - k;
        k = end - 1;
      } else {
        encoder.ramPageVersion(name, page - base, version);
        this.normalPages++;
      }
    }
    return k;
  }

  /** The page's version, or EXACT_PAGE_VERSION when no version represents it. */
  private versionOf(page: number): number {
    const store = this.store;
    if (isVersionedPageStore(store)) return store.pageVersion(page);
    return store.isZeroPage(page) ? 0 : EXACT_PAGE_VERSION;
  }

  private exactPage(encoder: StreamEncoder, name: string, page: number, base: number): void {
    if (this.store.isZeroPage(page)) {
      encoder.ramZeroPage(name, page - base);
      this.zeroPages++;
      return;
    }
    encoder.ramPageVersionExact(name, page - base, this.store, page);
    this.normalPages++;
  }
}
