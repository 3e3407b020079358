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
 * postcopy-paused on an error after it (a closed or broken channel, `migratePause`), and
 * back through postcopy-recover to postcopy-active by a recovery.
 *
 * postcopy-preempt (facts §3.10): `onBytes('preempt', …)` takes the bare RAM records of the
 * preempt channel (preempt-stream.ts); both channels place through one PagePlacer, so a page is
 * placed once whichever channel brings it.
 *
 * Postcopy recovery (facts §3.11; dest-recovery.ts), as a shell drives it:
 *
 * ```ts
 * apply(engine.onChannelClosed('main', now));   // or engine.migratePause(now): postcopy-paused;
 *                                               // vCPUs that fault keep waiting, nothing is requested
 * engine.migrateRecover(now);                   // QMP migrate-recover: refused unless paused
 * engine.onChannelReplaced('main', now);        // the source connected again (and 'preempt'):
 *                                               // postcopy-recover
 * apply(engine.onBytes('main', bytes, now));    // RECV_BITMAP answered,
 *                                               // POSTCOPY_RESUME → postcopy-active, RESUME_ACK,
 *                                               // requests again for every page still waited for
 * ```
 * Return-path effects go to the return path of the newest main connection.
 *
 * Guarantees: the guest is never started after a failure, and a precopy guest only at EOF,
 * after every page the source sent; in postcopy every page is placed at most once (a second
 * record is MIG_ERR_DEST_PLACED_TWICE) and every trapped fault is either served by its page,
 * by a local zero fill, or released when postcopy ends. On failure QEMU exits without SHUT;
 * the shell closes the return path.
 *
 * Multifd channels (capability multifd): multifd-receive.ts.
 *
 * Input bytes (`onBytes`, `onMultifdBytes`) are consumed during the call: the engine keeps no
 * view of them (the decoders copy only a record a chunk boundary cuts), so the shell may pass
 * views of a read buffer it reuses for the next read (host/incoming.ts).
 *
 * What it deliberately doesn't do: COLO.
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
import { DestError, MIG_ERR_DEST_CHANNEL, MIG_ERR_DEST_COMMAND, RECOVERY_TEXTS, toDestError } from './dest-errors.ts';
import type { DestPhase } from './dest-phase.ts';
import { DestRecovery } from './dest-recovery.ts';
import type { ChannelReplacedResult, DestCommandResult, DestEngineOptions, DestStats, FaultResult } from './dest-types.ts';
import { FaultTracker } from './fault-tracker.ts';
import { IncomingStream } from './incoming-stream.ts';
import { MultifdReceiver } from './multifd-receive.ts';
import { PagePlacer } from './placement.ts';
import { PreemptStream } from './preempt-stream.ts';

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
  /** The postcopy-preempt channel's decoder. */
  private readonly preempt: PreemptStream;
  /** Pause and recovery. */
  private readonly recovery: DestRecovery;
  /** Bytes pushed on the main channel. */
  private bytesReceived = 0;
  /** Multifd channels (capability multifd), else null. */
  private readonly multifd: MultifdReceiver | null = null;

  constructor(options: DestEngineOptions) {
    this.ram = options.ram;
    this.hooks = options.hooks;
    this.placer = new PagePlacer(options.ram);
    this.faults = new FaultTracker(options.vcpuCount);
    this.recovery = new DestRecovery(this.ctx, options.ram, this.faults);
    this.stream = new IncomingStream(this.ctx, this.placer, this.faults, options, this.recovery);
    this.preempt = new PreemptStream(this.ctx, this.placer, this.faults, this.stream, options.payloadMode ?? 'bytes');
    if (options.capabilities?.['postcopy-preempt'] === true) this.stream.preemptOpen = () => !this.preempt.sawEos;
    if (options.capabilities?.multifd === true) {
      this.multifd = new MultifdReceiver(options.ram, this.placer, options.multifdChannels ?? 2, () => this.stream.onMultifdCaughtUp());
      this.stream.multifd = this.multifd;
    }
  }

  /**
   * Bytes of the multifd channel that connected `index`-th (capability multifd; its init
   * packet first). A decode error fails the load, as a bad packet does in QEMU.
   */
  onMultifdBytes(index: number, bytes: Uint8Array, nowNs: number): StepResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    const multifd = this.multifd;
    if (multifd === null || index < 0 || index >= multifd.channelCount) {
      ctx.loadError(new DestError(MIG_ERR_DEST_CHANNEL, `multifd channel ${index} is not expected (multifd ${multifd === null ? 'off' : `with ${multifd.channelCount} channels`})`));
      return ctx.finish();
    }
    if (ctx.phase.kind === 'failed') return ctx.finish();
    if (ctx.phase.kind === 'idle') ctx.move({ kind: 'stream-start' });
    try {
      multifd.push(index, bytes);
    } catch (e) {
      ctx.loadError(toDestError(e));
    }
    return ctx.finish();
  }

  // --- inputs ---------------------------------------------------------------------------

  /**
   * Bytes arrived on `channel` (any chunking). The first main bytes start the migration
   * (none → active). Preempt bytes are bare RAM records. While paused, main bytes (of the dead
   * connection) are dropped.
   */
  onBytes(channel: ChannelName, bytes: Uint8Array, nowNs: number): StepResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    if (channel === 'preempt') {
      this.preempt.push(bytes);
      return ctx.finish();
    }
    if (ctx.phase.kind === 'idle') ctx.move({ kind: 'stream-start' });
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

  /**
   * The peer closed `channel` (or it broke): on the main channel a stream without its EOF fails
   * the load before RUN and pauses it after; the preempt channel closed before its EOS pauses it
   * after RUN too.
   */
  onChannelClosed(channel: ChannelName, nowNs: number): StepResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    if (channel === 'preempt') {
      this.preempt.close();
      return ctx.finish();
    }
    const decoder = this.stream.decoder;
    const ended = ctx.phase.kind === 'failed' || ctx.phase.kind === 'paused' || decoder.error !== null;
    if (ended) return ctx.finish();
    if (ctx.phase.kind === 'idle') ctx.move({ kind: 'stream-start' });
    try {
      decoder.end();
    } catch (e) {
      ctx.loadError(toDestError(e));
    }
    return ctx.finish();
  }

  /**
   * A new connection replaced `channel` (postcopy recovery). The main one is taken only in
   * postcopy-paused after `migrateRecover`: postcopy-paused → postcopy-recover at once (QEMU
   * moves when the source connects), and the decoder restarts at a record boundary (the source
   * sends no header). A new preempt connection gets a fresh decoder. `accepted` false: the
   * connection should be refused. Report no close of the old connection after this.
   */
  onChannelReplaced(channel: ChannelName, nowNs: number): ChannelReplacedResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    let accepted: boolean;
    if (channel === 'main') {
      accepted = this.recovery.replaceMain(this.stream.decoder);
    } else {
      this.preempt.replace();
      ctx.mark('channel-replaced', 'preempt');
      accepted = true;
    }
    return { ...ctx.finish(), accepted };
  }

  /**
   * QMP `migrate-recover` (facts §3.11): only in postcopy-paused (`Migrate recover can only be
   * run when postcopy is paused.`), once per pause. The shell then listens for the source and
   * reports its connection with `onChannelReplaced('main', …)`.
   */
  migrateRecover(nowNs: number): DestCommandResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    const error = this.recovery.migrateRecover();
    return { ...ctx.finish(), error };
  }

  /**
   * QMP `migrate-pause` on the destination: only in postcopy-active (else QEMU's text). The
   * incoming connection is shut down: after RUN the migration pauses (before RUN it fails, as
   * QEMU's load does); the shell closes the connections when it sees the status effect.
   */
  migratePause(nowNs: number): DestCommandResult {
    const ctx = this.ctx;
    ctx.begin(nowNs);
    if (ctx.status !== 'postcopy-active') return { ...ctx.finish(), error: new DestError(MIG_ERR_DEST_COMMAND, RECOVERY_TEXTS.pauseNotPostcopy) };
    ctx.mark('migrate-pause');
    ctx.loadError(new DestError(MIG_ERR_DEST_CHANNEL, RECOVERY_TEXTS.pausedByCommand));
    return { ...ctx.finish(), error: null };
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
    if (ctx.phase.kind === 'paused' || ctx.phase.kind === 'recover') {
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

  /** Postcopy recoveries begun (postcopy-paused → postcopy-recover). */
  get recoveries(): number {
    return this.recovery.recoveries;
  }

  /** Bytes pushed on the postcopy-preempt channel, over all its connections. */
  get preemptBytesReceived(): number {
    return this.preempt.bytesReceived;
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
