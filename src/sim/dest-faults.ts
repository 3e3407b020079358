/**
 * What backing its RAM costs the destination host. QEMU's guest RAM is anonymous memory
 * madvised MADV_HUGEPAGE, so the destination's first write into each 2 MiB region (a PAGE
 * record) takes a fault that allocates and clears a huge page; a ZERO record only reads the
 * region (QEMU 7.2's ram_handle_compressed tests it with buffer_is_zero first), which maps the
 * shared huge zero page and allocates nothing.
 *
 * On a warm host that fault is a fraction of a millisecond: the lab machine's calibration folds
 * it into the link's rate, the host suites' sets it (src/sim/calibration-host.ts). On a host that
 * is itself a guest handing its free memory back to its hypervisor (free page reporting: the
 * lab's kind of machine), a region whose memory was reported also faults in the outer host,
 * several milliseconds more (`host.destination-fault`, measured by `npm run lab --
 * --host-probe`). The receiving thread stalls that long and, once the socket buffers are full,
 * so does the sender: the world stalls the link by what `takeStallNs` returns after each load
 * of stream bytes.
 *
 * Pure bookkeeping: one bit per region.
 */
import { assert } from '../lib/assert.ts';
import { Bitmap } from '../lib/bitmap.ts';

/** 4 KiB pages per 2 MiB huge page. */
export const HUGE_PAGE_PAGES = 512;

export class DestinationFaults {
  /** The extra time of one region's first write, ns. */
  readonly costNs: number;
  /** Regions written so far. */
  private readonly written: Bitmap;
  /** Regions first written since the last `takeStallNs`. */
  private pending = 0;
  /** Regions first written in the whole run, and the stall they cost, ns (for reports). */
  faults = 0;
  stalledNs = 0;

  constructor(pageCount: number, costNs: number) {
    assert(Number.isFinite(costNs) && costNs >= 0, `destination fault cost must be >= 0, got ${costNs}`);
    this.costNs = costNs;
    this.written = new Bitmap(Math.ceil(pageCount / HUGE_PAGE_PAGES));
  }

  /** The destination writes page `pageIndex` (its content, not a zero test). */
  onWrite(pageIndex: number): void {
    if (!this.written.testAndSet(Math.floor(pageIndex / HUGE_PAGE_PAGES))) return;
    this.pending++;
    this.faults++;
  }

  /** The stall the first writes since the last call cost, ns; resets the count. */
  takeStallNs(): number {
    const ns = this.pending * this.costNs;
    this.pending = 0;
    this.stalledNs += ns;
    return ns;
  }
}
