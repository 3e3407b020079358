/**
 * The destination engine: QEMU 7.2's incoming side of a migration (facts §1, §2.5, §3.2-3.5,
 * §3.9, §3.12, §4.7, §9.3) as a synchronous machine. The shell feeds it stream bytes, channel
 * closes and guest faults, each with `nowNs`; it answers with effects (return-path bytes,
 * status changes, run-guest, page-ready, coverage marks) that the shell carries out in order.
 *
 * ```
 *  onBytes ──► IncomingStream (decoder + sink) ──► PagePlacer ─┐
 *                      │ commands, devices, EOF                ├──► DestContext ──► effects
 *  onGuestFault ───────┴──────────► FaultTracker (requests) ───┘     (phase, status)
 * ```
 *
 * Phases and the statuses they show (dest-phase.ts): idle (none) → precopy (active) →
 * [postcopy (postcopy-active)] → completed; failed on an error before POSTCOPY_RUN;
 * postcopy-paused on an error after it.
 *
 * Guarantees: the guest is never started after a failure, and a precopy guest only at EOF,
 * after every page the source sent; in postcopy every page is placed at most once (a second
 * record is MIG_ERR_DEST_PLACED_TWICE) and every trapped fault is either served by its page,
 * by a local zero fill, or released when postcopy ends. On failure QEMU exits without SHUT;
 * the shell closes the return path.
 *
 * What it deliberately doesn't do: postcopy recovery, the postcopy-preempt channel (bytes on
 * it fail the load), COLO and multifd channels.
 *
 * @example
 * const engine = new DestEngine({ ram, hooks, vcpuCount: 2, capabilities: { 'postcopy-ram': true } });
 * for (const e of engine.onBytes('main', chunk, nowNs).effects) shell.apply(e);
 * const { present, effects } = engine.onGuestFault(0, pageIndex, nowNs);
 */
import { assert } from '../../lib/assert.ts';
import type { Range } from '../../lib/range-table.ts';
import { PAGE_SIZE_BYTES } from '../../memory/page-content.ts';
import type { ChannelName, DestHooks, DestRam, StepResult } from '../engine-types.ts';
import type { MigrationStatus } from '../status.ts';
import { toDestinationQueryMigrate, type MigrationInfoQmp } from '../stats.ts';
import { DestContext } from './dest-context.ts';
import { DestError, MIG_ERR_DEST_UNSUPPORTED, toDestError } from './dest-errors.ts';
import type { DestPhase } from './dest-phase.ts';
import type { DestEngineOptions, DestStats, FaultResult } from './dest-types.ts';
import { FaultTracker } from './fault-tracker.ts';
import { IncomingStream } from './incoming-stream.ts';
import { PagePlacer } from './placement.ts';

export class DestEngine {
  /** The RAM being loaded. */
  private readonly ram: DestRam;
  /** The host's callbacks. */
  private readonly hooks: DestHooks;
  /** Phase, effects and flags shared with the stream side. */
  private readonly ctx = new DestContext();
  /** Writes pages and keeps received bits. */
  private readonly placer: PagePlacer;
  /** vCPU waits, page requests, stalls and blocktime. */
  private readonly faults: FaultTracker;
  /** The main channel's decoder and what acts on its records. */
  private readonly stream: IncomingStream;
  /** Bytes pushed on the main channel. */
  private bytesReceived = 0;

  constructor(options: DestEngineOptions) {
    this.ram = options.ram;
    this.hooks = options.hooks;
    this.placer = new PagePlacer(options.ram);
    this.faults = new FaultTracker(options.vcpuCount);
    this.stream = new IncomingStream(this.ctx, this.placer, this.faults, options);
  }

  // --- inputs ---------------------------------------------------------------------------

  /** Bytes arrived on `channel` (any chunking). The first bytes start the migration (none → active). */
  onBytes(channel: ChannelName, bytes: Uint8Array, nowNs: number): StepResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    if (ctx.phase.kind === 'idle') ctx.move({ kind: 'stream-start' });
    if (channel === 'preempt') {
      ctx.loadError(new DestError(MIG_ERR_DEST_UNSUPPORTED, 'postcopy-preempt is not supported by this destination'));
      return ctx.finish();
    }
    this.bytesReceived += bytes.length;
    const decoder = this.stream.decoder;
    if (ctx.phase.kind === 'failed' || ctx.phase.kind === 'paused' || decoder.error !== null) {
      ctx.mark('bytes-after-end', `${bytes.length} byte(s) in ${ctx.phase.kind}`);
      return ctx.finish();
    }
    try {
      decoder.push(bytes);
    } catch (e) {
      ctx.loadError(toDestError(e));
    }
    return ctx.finish();
  }

  /** The peer closed `channel`: on the main channel, a stream without its EOF fails the load. */
  onChannelClosed(channel: ChannelName, nowNs: number): StepResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    const decoder = this.stream.decoder;
    const ended = ctx.phase.kind === 'failed' || ctx.phase.kind === 'paused' || decoder.error !== null;
    if (channel !== 'main' || ended) return ctx.finish();
    if (ctx.phase.kind === 'idle') ctx.move({ kind: 'stream-start' });
    try {
      decoder.end();
    } catch (e) {
      ctx.loadError(toDestError(e));
    }
    return ctx.finish();
  }

  /**
   * vCPU `vcpuIndex` touched page `pageIndex`, which the shell found not received (facts §3.5).
   * Faults are trapped only from LISTEN until postcopy ends (QEMU's userfaultfd registration);
   * otherwise the memory is plain memory and the page is present. A trapped fault on a missing
   * page either zero-fills it locally (virtio-mem unplugged; nothing is requested) or blocks
   * the vCPU and sends one request: REQ_PAGES_ID when the block differs from the last
   * requested block, else REQ_PAGES. The vCPU resumes on a `page-ready` effect for the page.
   */
  onGuestFault(vcpuIndex: number, pageIndex: number, nowNs: number): FaultResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    assert(Number.isInteger(pageIndex) && pageIndex >= 0 && pageIndex < this.ram.store.pageCount, `fault on page ${pageIndex} outside guest RAM`);
    if (!ctx.trapFaults) {
      if (!this.ram.received.isReceived(pageIndex)) ctx.mark('fault-untrapped', `page ${pageIndex} in ${ctx.phase.kind}`);
      return this.faultResult(true);
    }
    if (this.ram.received.isReceived(pageIndex)) {
      this.faults.notePresentFault(vcpuIndex, pageIndex, nowNs);
      ctx.mark('fault-on-present-page', `page ${pageIndex}`);
      return this.faultResult(true);
    }
    if (this.hooks.localZeroPages()?.has(pageIndex) === true) {
      this.placer.fillLocalZero(pageIndex);
      ctx.mark('local-zero', `page ${pageIndex}`);
      return this.faultResult(true);
    }
    if (this.faults.block(vcpuIndex, pageIndex, nowNs)) ctx.mark('duplicate-fault', `page ${pageIndex}`);
    if (ctx.phase.kind === 'paused') {
      ctx.mark('fault-while-paused', `page ${pageIndex}`);
    } else if (!ctx.returnPathOpen) {
      ctx.mark('fault-without-return-path', `page ${pageIndex}`);
    } else {
      const block = this.ram.blocks.blockOfPage(pageIndex);
      assert(block !== undefined, `page ${pageIndex} is in no RAM block`);
      ctx.send(this.faults.request(block.name, (pageIndex - block.startPage) * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES));
    }
    return this.faultResult(false);
  }

  // --- queries ----------------------------------------------------------------------------

  /** The MigrationStatus now. */
  get status(): MigrationStatus {
    return this.ctx.status;
  }

  /** The phase now (diagnostics and tests). */
  get phase(): DestPhase {
    return this.ctx.phase;
  }

  /** Why the load failed or paused, once it did. */
  get lastError(): DestError | null {
    return this.ctx.error;
  }

  /** True once OPEN_RETURN_PATH was received. */
  get hasReturnPath(): boolean {
    return this.ctx.returnPathOpen;
  }

  /**
   * The destination's `query-migrate` (facts §9.3): status unless none; postcopy-blocktime and
   * postcopy-vcpu-blocktime once completed, when capability postcopy-blocktime made the engine
   * track them from LISTEN on.
   */
  queryMigrate(_nowNs: number): MigrationInfoQmp {
    const status = this.ctx.status;
    return toDestinationQueryMigrate(status, { blocktime: status === 'completed' ? this.faults.blocktimeFields() : null });
  }

  /** The number of pages neither received nor zero-filled locally. */
  missingPages(): number {
    return this.ram.received.missingCount();
  }

  /** Up to `limit` runs of missing pages, in order (for reports). */
  missingRanges(limit = 64): Range[] {
    const out: Range[] = [];
    for (const range of this.ram.received.missingRanges()) {
      if (out.length >= limit) break;
      out.push(range);
    }
    return out;
  }

  /** True when every page was received (or zero-filled locally). */
  isComplete(): boolean {
    return this.ram.received.isComplete();
  }

  /**
   * True when a precopy load started the guest while some pages had never arrived. The engine
   * starts a precopy guest only at EOF, after everything the source sent, so a true value
   * means the source skipped pages: legitimate only for pages free in the guest (hinted),
   * which the invariant checker must account for.
   */
  get guestRanWithMissingPages(): boolean {
    const missing = this.stream.missingAtPrecopyRun;
    return missing !== null && missing > 0;
  }

  /** How many pages were missing when a precopy load started the guest; null if it did not. */
  get missingPagesAtPrecopyRun(): number | null {
    return this.stream.missingAtPrecopyRun;
  }

  /** The destination statistics now. */
  stats(): DestStats {
    const p = this.placer;
    const f = this.faults;
    return {
      bytesReceived: this.bytesReceived,
      pagesReceived: p.pagesReceived,
      zeroPagesReceived: p.zeroPagesReceived,
      postcopyPagesPlaced: p.postcopyPagesPlaced,
      localZeroPages: p.localZeroPages,
      discardedPages: p.discardedPages,
      requestsSent: f.requestsSent,
      placedTwiceAttempts: p.placedTwiceAttempts,
      faults: f.faults,
      faultsWaited: f.faultsWaited,
      faultsReleasedAtEnd: f.releasedAtEnd,
      maxStallNsPerVcpu: f.maxStallNsPerVcpu(),
      maxStallNs: f.maxStallNsOverall(),
      totalStallNsPerVcpu: f.totalStallNsPerVcpu(),
      outstandingFaults: f.outstanding(),
      missingPages: this.missingPages(),
      runGuestCount: this.stream.runGuestCount,
    };
  }

  private faultResult(present: boolean): FaultResult {
    return { ...this.ctx.finish(), present };
  }
}
