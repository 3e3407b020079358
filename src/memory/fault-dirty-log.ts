/**
 * A dirty log with the hypervisor-side behaviours of the stale-page races (issue [10]) as
 * switches. The plain DirtyLog is livemig's exact log; this subclass is used only when a
 * scenario switches a stale-page fault on (src/sim/stale-faults.ts).
 *
 *   tcg-tlb        TCG's TLB dirty state: a page written once is marked "TLB dirty" and later
 *                  writes to it do not reach the log until the state is reset. A correct sync
 *                  resets it for the whole log (QEMU's slow path, and QEMU ≥ 9.0); with
 *                  `staleTlb` the sync does not (QEMU < 9.0's word-wise fast path, fixed by
 *                  03bfc2188f), so writes after the sync are lost until `flushTlb` (a TLB flush,
 *                  e.g. a context switch).
 *   manualProtect  KVM's manual dirty-log protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): a sync
 *                  (GET) leaves the fetched bits set; they are cleared per chunk by a CLEAR,
 *                  which QEMU issues lazily before sending a chunk's first page after a sync
 *                  (`beforeSend`) and when a free page hint touches the chunk (`clearForHint`
 *                  'masked'). A write between the GET and the CLEAR to a page whose bit was
 *                  fetched is not logged again, so the CLEAR drops it.
 *   clearForHint   'unmasked': every bit of every chunk the hint touches is cleared (the
 *                  wide-clear candidate), whatever was fetched.
 *
 * Pure (no node:*, timers); one bit per page per bitmap; per-write cost one bit test when the
 * TLB model is on.
 */
import { Bitmap } from '../lib/bitmap.ts';
import { DirtyLog } from './dirty-log.ts';

export interface DirtyLogFaults {
  /** Model TCG's TLB dirty state (writes to a TLB-dirty page are not logged again). */
  readonly tcgTlb: boolean;
  /** With tcgTlb: the sync does not reset the TLB dirty state (QEMU < 9.0 fast path). */
  readonly staleTlb: boolean;
  /** KVM manual protect: GET keeps the bits, CLEAR per chunk drops the fetched ones. */
  readonly manualProtect: boolean;
  /** Pages per clear chunk (QEMU: 1 << clear_bitmap_shift, 2^18 by default). */
  readonly chunkPages: number;
}

export class FaultDirtyLog extends DirtyLog {
  readonly faults: DirtyLogFaults;
  /** TCG: pages whose TLB entry is dirty (writes bypass the log). */
  private readonly tlbDirty: Bitmap | null;
  /** Manual protect: the bits fetched at the last GET and not yet cleared. */
  private readonly fetched: Bitmap | null;
  /** Manual protect: chunks with a CLEAR still due since the last GET. */
  private readonly clearDue: Uint8Array;
  /** Writes that did not reach the log (TLB dirty and the log bit clear). */
  unloggedWrites = 0;
  /** Log bits cleared by CLEARs and hint clears that were set. */
  bitsCleared = 0;

  constructor(pageCount: number, faults: DirtyLogFaults) {
    super(pageCount);
    this.faults = faults;
    this.tlbDirty = faults.tcgTlb ? new Bitmap(pageCount) : null;
    this.fetched = faults.manualProtect ? new Bitmap(pageCount) : null;
    this.clearDue = new Uint8Array(Math.ceil(pageCount / faults.chunkPages));
  }

  override markDirty(pageIndex: number): void {
    const tlb = this.tlbDirty;
    if (tlb !== null) {
      if (tlb.test(pageIndex)) {
        if (!this.isDirty(pageIndex)) this.unloggedWrites++;
        return;
      }
      tlb.set(pageIndex);
    }
    super.markDirty(pageIndex);
  }

  override markRange(startPage: number, endPage: number): void {
    for (let p = startPage; p < endPage; p++) this.markDirty(p);
  }

  override syncRange(dest: Bitmap, startPage: number, endPage: number): number {
    let added: number;
    const fetched = this.fetched;
    if (fetched === null) {
      added = super.syncRange(dest, startPage, endPage);
    } else {
      // GET: OR the bits in, keep them set in the log, remember them for the CLEAR.
      added = 0;
      for (let p = this.bits.nextSet(startPage); p !== -1 && p < endPage; p = this.bits.nextSet(p + 1)) {
        fetched.set(p);
        if (!dest.test(p)) {
          dest.set(p);
          added++;
        }
      }
      this.clearDue.fill(1, Math.floor(startPage / this.faults.chunkPages), Math.ceil(endPage / this.faults.chunkPages));
    }
    if (this.tlbDirty !== null && !this.faults.staleTlb) this.tlbDirty.clearRange(startPage, endPage);
    return added;
  }

  /** A TLB flush: every page's next write is logged again. */
  flushTlb(): void {
    this.tlbDirty?.clearAll();
  }

  /** Manual protect: the CLEAR QEMU issues before sending a page of a chunk (once per sync). */
  beforeSend(pageIndex: number): void {
    if (this.fetched !== null) this.clearChunk(Math.floor(pageIndex / this.faults.chunkPages));
  }

  /**
   * A free page hint of [startPage, endPage) clears the log: 'masked' CLEARs the chunks'
   * fetched bits (QEMU 7.2 with KVM manual protect), 'unmasked' clears every bit of the chunks.
   */
  clearForHint(startPage: number, endPage: number, how: 'masked' | 'unmasked'): void {
    const chunk = this.faults.chunkPages;
    const first = Math.floor(startPage / chunk);
    const last = Math.ceil(endPage / chunk);
    for (let c = first; c < last; c++) {
      if (how === 'masked') this.clearChunk(c);
      else this.bitsCleared += this.clearRange(c * chunk, Math.min(this.pageCount, (c + 1) * chunk));
    }
  }

  private clearChunk(c: number): void {
    const fetched = this.fetched;
    if (fetched === null || this.clearDue[c] === 0) return;
    this.clearDue[c] = 0;
    const end = Math.min(this.pageCount, (c + 1) * this.faults.chunkPages);
    for (let p = fetched.nextSet(c * this.faults.chunkPages); p !== -1 && p < end; p = fetched.nextSet(p + 1)) {
      fetched.clear(p);
      this.bitsCleared += this.clearRange(p, p + 1);
    }
  }
}
