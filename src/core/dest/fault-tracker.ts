/**
 * Postcopy faults on the destination (facts §3.2, §3.5, §3.9): which vCPU waits for which
 * page, since when; the page requests that go to the source; and the accounting of the waits
 * (the longest stall per vCPU, and QEMU's postcopy-blocktime when its capability is on).
 *
 * Per vCPU the state is one of two:
 *
 * ```
 *   running --block(page)--> waiting(page, sinceNs) --release(page) / releaseAll--> running
 * ```
 *
 * A vCPU that waits cannot fault again (it is stopped in the fault), so `block` asserts that.
 * Several vCPUs may wait on one page; each fault sends its own request, as QEMU's fault thread
 * does (duplicates included): the source drops requests for pages it no longer has dirty.
 *
 * Requests follow QEMU's naming rule: REQ_PAGES_ID names the block when it differs from the
 * block of the previous request, REQ_PAGES otherwise (ReturnPathEncoder keeps the last block).
 *
 * On postcopy recovery (facts §3.11) the engine asks for `waitedPages` to request each again
 * and calls `resetRequestBlock` first, so the first request names its block (QEMU resets
 * mis->last_rb).
 *
 * What it deliberately doesn't do: decide whether a fault needs a request (the engine does:
 * present pages and local zero pages never reach here).
 */
import { assert } from '../../lib/assert.ts';
import { ByteWriter } from '../../lib/bytes.ts';
import { ReturnPathEncoder } from '../../format/return-path.ts';
import { PostcopyBlocktime, type BlocktimeFields } from '../blocktime.ts';

/** A vCPU blocked on a page that has not been placed yet. */
export interface OutstandingFault {
  /** The blocked vCPU. */
  readonly vcpuIndex: number;
  /** The guest page it waits for. */
  readonly pageIndex: number;
  /** When it faulted, ns. */
  readonly sinceNs: number;
}

const NOT_WAITING = -1;

export class FaultTracker {
  /** Number of vCPUs. */
  readonly vcpuCount: number;
  /** Per vCPU: the page it waits for, NOT_WAITING when running. Owned by block/release. */
  private readonly waitingPage: Float64Array;
  /** Per vCPU: when its current wait began, ns (valid while waiting). */
  private readonly waitStartNs: Float64Array;
  /** Per vCPU: the longest wait that has ended, ns. */
  private readonly maxStallNs: Float64Array;
  /** Per vCPU: the sum of all waits that have ended, ns. */
  private readonly totalStallNs: Float64Array;
  /** Pages some vCPU waits for → how many vCPUs wait for each. Empty on the no-fault path. */
  private readonly waiters = new Map<number, number>();
  /** QEMU's blocktime context: made at LISTEN when capability postcopy-blocktime is on. */
  private blocktime: PostcopyBlocktime | null = null;
  /** Where requests are encoded, one message at a time. */
  private readonly requestOut = new ByteWriter(64);
  /** Chooses REQ_PAGES_ID or REQ_PAGES from the last requested block. */
  private readonly requestEncoder = new ReturnPathEncoder(this.requestOut);
  /** Faults reported while postcopy traps them (waiting or not). */
  faults = 0;
  /** Faults that had to wait for their page. */
  faultsWaited = 0;
  /** Page requests encoded (REQ_PAGES and REQ_PAGES_ID). */
  requestsSent = 0;
  /** Waits ended by the end of postcopy rather than by their page (QEMU: userfaultfd unregistered). */
  releasedAtEnd = 0;

  constructor(vcpuCount: number) {
    assert(Number.isInteger(vcpuCount) && vcpuCount > 0, `bad vCPU count ${vcpuCount}`);
    this.vcpuCount = vcpuCount;
    this.waitingPage = new Float64Array(vcpuCount).fill(NOT_WAITING);
    this.waitStartNs = new Float64Array(vcpuCount);
    this.maxStallNs = new Float64Array(vcpuCount);
    this.totalStallNs = new Float64Array(vcpuCount);
  }

  /** Starts postcopy-blocktime accounting now (QEMU creates its context at LISTEN). */
  enableBlocktime(nowNs: number): void {
    if (this.blocktime === null) this.blocktime = new PostcopyBlocktime(this.vcpuCount, nowNs);
  }

  /** The query-migrate blocktime members, or null when blocktime is not tracked. */
  blocktimeFields(): BlocktimeFields | null {
    return this.blocktime === null ? null : this.blocktime.toQueryFields();
  }

  /** True while `vcpuIndex` waits for a page. */
  isWaiting(vcpuIndex: number): boolean {
    this.checkVcpu(vcpuIndex);
    return this.waitingPage[vcpuIndex] !== NOT_WAITING;
  }

  /**
   * `vcpuIndex` faulted at `nowNs` on missing page `pageIndex` and now waits for it. Returns
   * true when another vCPU already waited for the same page.
   */
  block(vcpuIndex: number, pageIndex: number, nowNs: number): boolean {
    this.checkVcpu(vcpuIndex);
    assert(this.waitingPage[vcpuIndex] === NOT_WAITING, `vCPU ${vcpuIndex} faulted while already waiting for page ${this.waitingPage[vcpuIndex]}`);
    this.faults++;
    this.faultsWaited++;
    this.waitingPage[vcpuIndex] = pageIndex;
    this.waitStartNs[vcpuIndex] = nowNs;
    const before = this.waiters.get(pageIndex) ?? 0;
    this.waiters.set(pageIndex, before + 1);
    this.blocktime?.faultBegin(vcpuIndex, pageIndex, nowNs);
    return before > 0;
  }

  /**
   * A trapped fault whose page turned out to be present (it arrived between the access and the
   * report). QEMU's blocktime still sees the fault begin and undoes it at once.
   */
  notePresentFault(vcpuIndex: number, pageIndex: number, nowNs: number): void {
    this.checkVcpu(vcpuIndex);
    this.faults++;
    this.blocktime?.faultBegin(vcpuIndex, pageIndex, nowNs, true);
  }

  /** Encodes the request for one page's bytes: REQ_PAGES_ID or REQ_PAGES (see the header). */
  request(blockName: string, startBytes: number, lengthBytes: number): Uint8Array {
    this.requestEncoder.requestPages(blockName, startBytes, lengthBytes);
    const bytes = this.requestOut.toBytes();
    this.requestOut.reset();
    this.requestsSent++;
    return bytes;
  }

  /** Forgets the last requested block: the next request is a REQ_PAGES_ID (a new return path). */
  resetRequestBlock(): void {
    this.requestEncoder.resetBlock();
  }

  /** The pages some vCPU waits for, each once, ascending. */
  waitedPages(): number[] {
    return [...this.waiters.keys()].sort((a, b) => a - b);
  }

  /** True when any vCPU waits for any page. */
  anyWaiters(): boolean {
    return this.waiters.size !== 0;
  }

  /** True when some vCPU waits for `pageIndex` (cheap: called for every placed page). */

  hasWaiters(pageIndex: number): boolean {
    return this.waiters.size !== 0 && this.waiters.has(pageIndex);
  }

  /** `pageIndex` was placed at `nowNs`: releases and charges its waiters; returns how many. */
  release(pageIndex: number, nowNs: number): number {
    const count = this.waiters.get(pageIndex);
    if (count === undefined) return 0;
    this.waiters.delete(pageIndex);
    let released = 0;
    for (let v = 0; v < this.vcpuCount; v++) {
      if (this.waitingPage[v] !== pageIndex) continue;
      this.endWait(v, nowNs);
      released++;
    }
    assert(released === count, `page ${pageIndex}: ${count} waiters recorded, ${released} found`);
    this.blocktime?.pagePlaced(pageIndex, nowNs);
    return released;
  }

  /**
   * Postcopy ended with vCPUs still waiting (QEMU unregisters userfaultfd; the access is
   * retried and reads a zero page). Releases them without blocktime charges, as QEMU does;
   * returns the pages they waited for, each once, in ascending order.
   */
  releaseAll(nowNs: number): number[] {
    const pages = [...this.waiters.keys()].sort((a, b) => a - b);
    for (let v = 0; v < this.vcpuCount; v++) {
      if (this.waitingPage[v] === NOT_WAITING) continue;
      this.endWait(v, nowNs);
      this.releasedAtEnd++;
    }
    this.waiters.clear();
    return pages;
  }

  /** The waits in progress, by vCPU. */
  outstanding(): OutstandingFault[] {
    const out: OutstandingFault[] = [];
    for (let v = 0; v < this.vcpuCount; v++) {
      const pageIndex = this.waitingPage[v];
      if (pageIndex !== NOT_WAITING) out.push({ vcpuIndex: v, pageIndex, sinceNs: this.waitStartNs[v] });
    }
    return out;
  }

  /** The longest ended wait of each vCPU, ns. */
  maxStallNsPerVcpu(): number[] {
    return Array.from(this.maxStallNs);
  }

  /** The sum of ended waits of each vCPU, ns. */
  totalStallNsPerVcpu(): number[] {
    return Array.from(this.totalStallNs);
  }

  /** The longest ended wait of any vCPU, ns. */
  maxStallNsOverall(): number {
    let max = 0;
    for (const ns of this.maxStallNs) if (ns > max) max = ns;
    return max;
  }

  private endWait(vcpuIndex: number, nowNs: number): void {
    const stallNs = nowNs - this.waitStartNs[vcpuIndex];
    if (stallNs > this.maxStallNs[vcpuIndex]) this.maxStallNs[vcpuIndex] = stallNs;
    this.totalStallNs[vcpuIndex] += stallNs;
    this.waitingPage[vcpuIndex] = NOT_WAITING;
  }

  private checkVcpu(vcpuIndex: number): void {
    assert(Number.isInteger(vcpuIndex) && vcpuIndex >= 0 && vcpuIndex < this.vcpuCount, `vCPU ${vcpuIndex} out of range (${this.vcpuCount} vCPUs)`);
  }
}
