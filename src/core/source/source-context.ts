/**
 * The source engine's state: one mutable record (`SourceContext`) owned by one engine, with a
 * tagged-union `phase` that says which inputs mean what, and the small helpers every step uses
 * (status moves, effects, flushing the encoders into `send` effects, byte accounting).
 *
 * Phases (the QMP status is a separate field; see status.ts):
 *
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> idle
 *   idle --> precopy: start (none→setup→active)
 *   precopy --> stopping: pump decides complete / postcopy (stop-guest)
 *   stopping --> awaitingShut: pump: END, devices, EOF (return path open)
 *   stopping --> finalPass: pump: END, a budget of the last pass (option completionSpansPumps)
 *   finalPass --> finalPass: pump: a budget of the rest
 *   finalPass --> awaitingShut: pump: the last pages, devices, EOF (or awaitingWritten, finished)
 *   finalPass --> finished: cancel / channelError (failed; the guest runs again)
 *   stopping --> finished: pump: ... no return path (completed)
 *   stopping --> awaitingWritten: pump: ... no return path, option awaitWritten
 *   awaitingWritten --> finished: written (completed)
 *   stopping --> postcopy: pump: discard, package, PING 4
 *   postcopy --> completing: pump: pending < threshold (END header)
 *   completing --> completing: pump: requests, then a budget of the rest
 *   completing --> awaitingShut: pump: the last pages, EOS, EOF
 *   awaitingShut --> finished: SHUT(0) (completed)
 *   postcopy --> paused: channelError / migratePause (postcopy-paused)
 *   completing --> paused: channelError / migratePause
 *   awaitingShut --> paused: channelError / migratePause (before SHUT)
 *   paused --> recover: resume (postcopy-recover; RECV_BITMAP per block)
 *   recover --> recover: RP RECV_BITMAP (the last one: POSTCOPY_RESUME)
 *   recover --> postcopy: RP RESUME_ACK (postcopy-active)
 *   recover --> paused: channelError / bad handshake
 *   precopy --> finished: cancel / channelError / bad RP (cancelled / failed)
 *   paused --> finished: cancel
 * ```
 *
 * Why a mutable record and not an immutable state: the bitmaps are large typed arrays changed
 * per page; copying them per step is out of the question. Each input runs to completion on this
 * record and collects its effects in `effects`.
 */
import { assert } from '../../lib/assert.ts';
import { Bitmap } from '../../lib/bitmap.ts';
import { TARGET_PAGE_SIZE } from '../../lib/units.ts';
import { StreamEncoder } from '../../format/stream-encoder.ts';
import { ReturnPathDecoder, type RpMessage } from '../../format/return-path.ts';
import { MigrationBitmap } from '../../memory/migration-bitmap.ts';
import type { RamBlock } from '../../memory/ram-block.ts';
import type { ChannelName, Effect, SourceHooks, SourceRam } from '../engine-types.ts';
import type { MigrationCapabilities } from '../capabilities.ts';
import type { MigrationParameters } from '../params.ts';
import { isLegalTransition, isPostcopyStatus, type MigrationStatus } from '../status.ts';
import { MigrationStatsAccumulator, transferPhase, type TransferPhase } from '../stats.ts';
import { createRateLimiter, recordSent, type RateLimiter } from '../rate-limiter.ts';
import { openBandwidthWindow, type BandwidthWindow } from '../bandwidth.ts';
import { AUTO_CONVERGE_IDLE, type AutoConvergeState } from '../auto-converge.ts';
import { createPageEmitter, type PageEmitter } from './page-emitter.ts';
import { MultifdPageEmitter, MultifdSender } from './multifd-send.ts';
import type { PageStore } from '../../memory/page-store.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { RequestQueue } from './request-queue.ts';
import { SourceError, type SourceEngineConfig, type SourceSendEffect } from './source-types.ts';
import { checkSupported, gapsOf, resolveOptions, type ResolvedSourceOptions } from './source-options.ts';

/** Where the engine is; data lives only in the variants where it means something. */
/** A precopy iteration that spans pumps (option iterationNsMin). */
export interface PrecopyIteration {
  readonly startNs: number;
  readonly startPages: number;
}

export type SourcePhase =
  /** Constructed; `start` not called yet (status none). */
  | { readonly kind: 'idle' }
  /**
   * Status active: RAM PART chunks, convergence decisions, syncs. Left by a pump's decision.
   * `iteration`: the iteration that spans pumps (option iterationNsMin), from its start (ns) and
   * the pages saved (zero and normal) by then; null when none runs and the next pump checks.
   */
  | { readonly kind: 'precopy'; readonly iteration: PrecopyIteration | null }
  /**
   * The guest was told to stop (stop-guest effect); the next pump, after the shell stopped it,
   * writes the completion (`complete`) or the postcopy switch (`postcopy`).
   */
  | { readonly kind: 'stopping'; readonly next: 'complete' | 'postcopy' }
  /**
   * Status active, guest stopped, the END section of `ram` is open (option completionSpansPumps):
   * each pump sends up to its budget of the last pass; the pump that sends the last page writes
   * EOS, the devices and EOF (switchover.ts).
   */
  | { readonly kind: 'final-pass' }
  /** Status postcopy-active: page requests first, then the background push. */
  | { readonly kind: 'postcopy' }
  /**
   * Status postcopy-active, the END section of `ram` is open: each pump serves queued requests,
   * then sends up to its budget of the remaining pages (no rate limit); the pump that sends the
   * last page writes EOS, the footer and EOF (postcopy.ts).
   */
  | { readonly kind: 'completing' }
  /** Everything is written (EOF); waiting for the destination's SHUT on the return path. */
  | { readonly kind: 'awaiting-shut' }
  /** Everything is emitted (EOF), no return path: waiting for the shell's `written` (option awaitWritten). */
  | { readonly kind: 'awaiting-written' }
  /** Status postcopy-paused after a channel error or migrate-pause; `resume` leaves it. */
  | { readonly kind: 'paused' }
  /**
   * Status postcopy-recover (recovery.ts): `bitmaps` while RECV_BITMAP replies are due (the
   * blocks still due are in `SourceContext.recoverPending`), `resume-ack` after POSTCOPY_RESUME.
   */
  | { readonly kind: 'recover'; readonly step: 'bitmaps' | 'resume-ack' }
  /** Status completed, failed or cancelled. Every input is ignored from here on. */
  | { readonly kind: 'finished' };

/** Mutable counters behind SourceCounters. */
export interface MutableCounters {
  hintedPages: number;
  hintedNeverSentPages: number;
  hintedZeroPagesSent: number;
  requestedPagesDropped: number;
  requestedPagesSent: number;
  requestsReceived: number;
  requestQueueHighWater: number;
  pongs: number;
  lastPong: number | null;
  discardCommands: number;
  discardRanges: number;
  convergenceChecks: number;
  lastCheckPendingBytes: number;
  lastCheckThresholdBytes: number;
  lastCheckDecision: 'iterate' | 'complete' | 'postcopy' | null;
  lastSyncPeriodDirtyPages: number;
  bigWaits: number;
  lastBigWaitMs: number;
  lastBigWaitPages: number;
}

export class SourceContext {
  // --- configuration (fixed at construction) ---------------------------------------------
  /** Guest RAM: blocks, store, dirty log. */
  readonly ram: SourceRam;
  /** Host callbacks: notifiers, skip ranges, device state. */
  readonly hooks: SourceHooks;
  /** Capabilities of this migration (they cannot change while it runs). */
  readonly caps: MigrationCapabilities;
  /** Options with defaults applied. */
  readonly options: ResolvedSourceOptions;
  /** RAM blocks in QEMU list order (largest first); the scan walks them in this order. */
  readonly blocks: readonly RamBlock[];
  /** Page ranges of the store that belong to no block; cleared from the bitmap after every sync. */
  readonly gaps: ReadonlyArray<readonly [number, number]>;
  /** True when a return path is opened (capability postcopy-ram or return-path). */
  readonly returnPath: boolean;

  // --- bitmaps (owned by the page scan, hints and requests) -------------------------------
  /** QEMU's bmap: set = must be sent. Synced from the dirty log, cleared on send and by hints. */
  readonly bitmap: MigrationBitmap;
  /**
   * `track` only: set when the destination holds a copy of the page (it was sent); cleared at
   * the postcopy switch for every page the DISCARD commands throw away on the destination.
   */
  readonly sentOnce: Bitmap | null;
  /** `track` only: pages a hint cleared while not in `sentOnce`, not answered yet. */
  readonly hintedNeverSent: Bitmap | null;
  /** debugChecks only, after the switch: pages sent since the switch (a second send asserts). */
  sentAfterSwitch: Bitmap | null = null;

  // --- streams ------------------------------------------------------------------------------
  /** The main migration stream. */
  readonly main: StreamEncoder;
  /** The postcopy-preempt channel (capability postcopy-preempt), else null. */
  readonly preempt: StreamEncoder | null;
  /** Writes page records from the store in the configured payload mode. */
  readonly emitter: PageEmitter;
  /** Multifd channels (capability multifd), else null. */
  readonly multifd: MultifdSender | null;
  /** The channel requested pages went to last (QEMU resets the "last block" when it changes). */
  lastPageChannel: ChannelName = 'main';
  /** Return-path decoder; null without a return path. A recovery replaces it (a new connection). */
  rp: ReturnPathDecoder | null;
  /** Postcopy recovery: names of the blocks whose RECV_BITMAP reply has not arrived yet. */
  readonly recoverPending = new Set<string>();
  /** Postcopy recoveries begun (`resume` accepted). */
  recoveries = 0;
  /** Messages the decoder delivered during the current push. */
  readonly rpInbox: RpMessage[] = [];
  /** SHUT(0) was received. */
  shutReceived = false;

  // --- migration state ---------------------------------------------------------------------
  /** Parameters (migrate-set-parameters may replace them during the migration). */
  params: MigrationParameters;
  /** The QMP status. Changed only through `setStatus`. */
  status: MigrationStatus = 'none';
  /** Where the engine is (see the diagram). */
  phase: SourcePhase = { kind: 'idle' };
  /** The error that failed the migration, once it failed. */
  error: SourceError | null = null;
  /** QMP statistics. */
  readonly stats = new MigrationStatsAccumulator(TARGET_PAGE_SIZE);
  /** Counters the statistics don't have. */
  readonly counters: MutableCounters = {
    hintedPages: 0,
    hintedNeverSentPages: 0,
    hintedZeroPagesSent: 0,
    requestedPagesDropped: 0,
    requestedPagesSent: 0,
    requestsReceived: 0,
    requestQueueHighWater: 0,
    pongs: 0,
    lastPong: null,
    discardCommands: 0,
    discardRanges: 0,
    convergenceChecks: 0,
    lastCheckPendingBytes: 0,
    lastCheckThresholdBytes: 0,
    lastCheckDecision: null,
    lastSyncPeriodDirtyPages: 0,
    bigWaits: 0,
    lastBigWaitMs: 0,
    lastBigWaitPages: 0,
  };
  /** Queued page requests (postcopy), served before the background scan. */
  readonly requests: RequestQueue;
  /** `migrate-start-postcopy` was issued. */
  postcopyRequested = false;
  /** The engine stopped the guest and has not run it again (QEMU's vm_was_running, inverted). */
  guestStopped = false;
  /** Index into `blocks` of the background scan position. */
  scanBlock = 0;
  /** Page index (global) the background scan examines next. */
  scanPage = 0;
  /** Rate limiter of the main stream (QEMU's qemu_file rate limit). */
  limiter: RateLimiter;
  /** Main-stream wire offset already counted by the limiter. */
  limiterCountedBytes = 0;
  /** The open bandwidth window. */
  window: BandwidthWindow;
  /** Convergence threshold, bytes (0 until the first window closed). */
  thresholdBytes = 0;
  /** Auto-converge state across sync periods. */
  autoConverge: AutoConvergeState = AUTO_CONVERGE_IDLE;
  /** Start of the current dirty-rate period, ms; null before the first sync. */
  periodStartMs: number | null = null;
  /** Pages newly dirtied in the bitmap during the current period. */
  periodDirtyPages = 0;
  /** `transferred` at the start of the current period. */
  periodStartTransferredBytes = 0;
  /** Device-section ids handed out by the default sectionIdOf, by "idstr/instance". */
  readonly deviceSectionIds = new Map<string, number>();
  /** The last input's time, ns (inputs must not go back in time). */
  lastNowNs = 0;

  // --- per input -----------------------------------------------------------------------------
  /** Effects of the input being processed, in order. */
  effects: Effect[] = [];
  /** Pages examined by the input being processed. */
  pagesScanned = 0;
  /** payloadAdjustBytes of each encoder at its last flush (for the wireBytes of a chunk). */
  private readonly flushedAdjust = { main: 0, preempt: 0 };

  constructor(config: SourceEngineConfig) {
    this.ram = config.ram;
    this.hooks = config.hooks;
    this.caps = config.capabilities;
    this.params = config.parameters;
    this.options = resolveOptions(config, this.deviceSectionIds);
    checkSupported(config);
    this.blocks = config.ram.blocks.blocks;
    const pageCount = config.ram.store.pageCount;
    if (config.ram.blocks.endBytes > config.ram.store.sizeBytes) {
      throw new SourceError('MIG_ERR_SOURCE_CONFIG', `RAM blocks reach ${config.ram.blocks.endBytes} bytes, the page store holds ${config.ram.store.sizeBytes}`);
    }
    if (this.blocks.length === 0) throw new SourceError('MIG_ERR_SOURCE_CONFIG', 'no RAM blocks to migrate');
    this.gaps = gapsOf(this.blocks, pageCount);
    this.returnPath = this.caps['postcopy-ram'] || this.caps['return-path'];
    this.bitmap = new MigrationBitmap(pageCount);
    const track = this.options.hintPolicy === 'track';
    this.sentOnce = track ? new Bitmap(pageCount) : null;
    this.hintedNeverSent = track ? new Bitmap(pageCount) : null;
    this.main = new StreamEncoder({
      onChunk: (chunk) => this.onChunk('main', chunk),
      chunkSizeBytes: this.options.chunkSizeBytes,
      allocChunk: this.options.allocChunk,
      pageViews: this.options.pageViews,
    });
    this.preempt = this.caps['postcopy-preempt']
      ? new StreamEncoder({ onChunk: (chunk) => this.onChunk('preempt', chunk), chunkSizeBytes: this.options.chunkSizeBytes })
      : null;
    this.multifd = this.caps.multifd ? this.newMultifdSender(config.ram.store) : null;
    this.emitter = this.multifd !== null
      ? new MultifdPageEmitter(config.ram.store, this.multifd, config.ram.unwritten ?? null)
      : createPageEmitter(config.ram.store, this.options.payloadMode, config.ram.unwritten ?? null);
    this.rp = this.returnPath ? this.newReturnPathDecoder() : null;
    this.requests = new RequestQueue(this.options.requestQueueLimit);
    this.limiter = createRateLimiter(this.params.maxBandwidthBytesPerSec, 0);
    this.window = openBandwidthWindow(0, 0, 0);
    this.scanPage = this.blocks[0].startPage;
  }

  private newMultifdSender(store: PageStore): MultifdSender {
    return new MultifdSender(this.params.multifdChannels, {
      store,
      pageBytes: this.options.pageViews && store instanceof BytesBacking ? store.bytes : null,
      effects: () => this.effects,
      account: (bytes, transferred) => {
        this.main.addExternalWireBytes(bytes);
        this.flushedAdjust.main += bytes;
        this.stats.multifdBytes += bytes;
        if (transferred) this.stats.addTransferred(bytes, this.transferPhase());
      },
    });
  }

  /** QEMU's multifd_send_sync_main before a RAM EOS (nothing without multifd). */
  syncMultifd(): void {
    this.multifd?.sync();
  }

  /** A return-path decoder for a new connection; RECV_BITMAP sizes are checked per block. */
  newReturnPathDecoder(): ReturnPathDecoder {
    return new ReturnPathDecoder((msg) => this.rpInbox.push(msg), {
      bitmapBitsForBlock: (name) => this.ram.blocks.byName(name)?.pageCount,
    });
  }

  /** Starts an input at `nowNs`: fresh effect list, monotonic time. */
  beginInput(nowNs: number): void {
    assert(Number.isSafeInteger(nowNs) && nowNs >= this.lastNowNs, `source input at ${nowNs} ns goes back before ${this.lastNowNs} ns`);
    this.lastNowNs = nowNs;
    this.effects = [];
    this.pagesScanned = 0;
  }

  /** Moves the status along a legal source transition and emits the `status` effect. */
  setStatus(to: MigrationStatus): void {
    const from = this.status;
    assert(isLegalTransition(from, to, 'source'), `illegal source status transition ${from} -> ${to}`);
    this.status = to;
    this.effects.push({ kind: 'status', from, to });
  }

  /** A coverage mark for a rare branch. */
  mark(name: string, detail?: string): void {
    this.effects.push(detail === undefined ? { kind: 'mark', name } : { kind: 'mark', name, detail });
  }

  /** A QMP event; MIGRATION_PASS and friends follow capability `events`. */
  event(name: string, data?: Readonly<Record<string, unknown>>): void {
    if (!this.caps.events) return;
    this.effects.push(data === undefined ? { kind: 'event', name } : { kind: 'event', name, data });
  }

  /** Hands what the encoders hold to the shell as `send` effects (main first). */
  flush(): void {
    this.multifd?.flushPacket(true);
    this.main.flush();
    this.preempt?.flush();
    this.countRate();
  }

  /** Counts main-stream bytes written since the last call against the rate limiter. */
  countRate(): void {
    const wire = this.main.wireOffsetBytes;
    const delta = wire - this.limiterCountedBytes;
    if (delta > 0) this.limiter = recordSent(this.limiter, delta);
    this.limiterCountedBytes = wire;
  }

  /** Where RAM bytes written now count: precopy, downtime or postcopy (QEMU's rule). */
  transferPhase(): TransferPhase {
    return transferPhase(!this.guestStopped, isPostcopyStatus(this.status));
  }

  /** The encoder requested pages go to now, resetting its "last block" on a channel change. */
  requestEncoder(): StreamEncoder {
    const channel: ChannelName = this.preempt !== null && isPostcopyStatus(this.status) ? 'preempt' : 'main';
    return this.switchPageChannel(channel);
  }

  /** The encoder background pages go to (main), resetting its "last block" on a channel change. */
  backgroundEncoder(): StreamEncoder {
    return this.switchPageChannel('main');
  }

  private switchPageChannel(channel: ChannelName): StreamEncoder {
    const encoder = channel === 'preempt' ? (this.preempt as StreamEncoder) : this.main;
    if (channel !== this.lastPageChannel) {
      encoder.resetLastBlock();
      this.lastPageChannel = channel;
    }
    return encoder;
  }

  /** Refreshes the `remaining` statistic from the bitmap. */
  updateRemaining(): void {
    this.stats.remainingBytes = this.bitmap.dirtyCount * TARGET_PAGE_SIZE;
  }

  /** The block holding page `pageIndex`, or undefined outside every block. */
  blockOfPage(pageIndex: number): RamBlock | undefined {
    return this.ram.blocks.blockOfPage(pageIndex);
  }

  private onChunk(channel: ChannelName, data: Uint8Array): void {
    const encoder = channel === 'main' ? this.main : (this.preempt as StreamEncoder);
    const adjust = encoder.payloadAdjustBytes;
    const wireBytes = data.length + adjust - this.flushedAdjust[channel];
    this.flushedAdjust[channel] = adjust;
    const effect: SourceSendEffect = { kind: 'send', channel, data, wireBytes };
    this.effects.push(effect);
  }
}
