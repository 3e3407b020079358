/**
 * One outgoing migration in a real process: a SourceEngine bound to a channel (tcp, unix, TLS,
 * exec, file), a timer and the VM's vCPUs and devices (through OutgoingHost).
 *
 * ```
 *  migrate ──► engine.start ── sends queue until connected ──► ChannelWriter ──► channel
 *                   ▲                                                              │
 *   pump loop ──────┤  (while the channel takes bytes; yields every PUMP_SLICE_MS)  │
 *   tick timer ─────┤                                                              │
 *   return path ────┴──────────────────── engine.onReturnPath ◄────────────────────┘
 * ```
 *
 * Backpressure: the pump stops when the channel asks for a drain and resumes on 'drain'. In
 * precopy each pump may write PRECOPY_PUMP_BYTES (the engine emits 1 MiB chunks, written as
 * they are); after the postcopy switch a pump writes at most POSTCOPY_PUMP_BYTES and only
 * while fewer than POSTCOPY_QUEUE_BYTES_MAX wait in the channel, so a requested page does not
 * queue behind megabytes of background pages. Every pump ends with a flush. Page requests do
 * not wait for a pump: once return-path bytes are handled, `engine.serveRequests` writes the
 * requested pages at once (on the preempt channel when there is one).
 *
 * Zero-copy pages (engine option pageViews, plain channels): background pages leave as views
 * of guest RAM between their record headers; `apply` corks the channel around each step, so a
 * pump's pieces go to the kernel in writev calls (libuv: up to 1024 pieces each) and the page
 * bytes are copied once, by the kernel, instead of twice. TLS channels keep copied chunks.
 *
 * Completion (engine option awaitWritten): after the precopy EOF without a return path the
 * engine waits in `awaiting-written`; the shell reports `written` once every queue (the main
 * channel's and the multifd channels') is empty, i.e. the stream's last bytes are with the
 * kernel, as QEMU's blocking writes are when it completes. That time ends total-time and
 * downtime, which therefore include the final pass and the flush. The final pass itself spans
 * pumps (engine option completionSpansPumps), so it streams to the socket in PRECOPY_PUMP_BYTES
 * steps with backpressure, and the chunk pool recycles its buffers, instead of arriving as one
 * step of hundreds of MiB in fresh buffers.
 *
 * Multifd (capability multifd): the channels are opened after the main connection
 * (multifd-channels.ts); packets go to their channel as the engine emits them, and a channel
 * over its high-water mark stops the pump like the main one.
 *
 * Postcopy-preempt (capability postcopy-preempt, facts §3.10): a second connection is opened
 * right after the main one, when the migration starts (QEMU 7.2); the engine sends requested
 * pages on it after the switch (bare RAM records), so they never queue behind the background
 * pages of the main channel. Its bytes wait in its queue until it is connected. It ends with
 * the migration (EOS, then end) and is dropped on failure. Recovery of a preempt migration is
 * refused by the VM (vm.ts).
 *
 * Failures: a connect or TLS error, a write error or the peer going away become
 * `engine.channelError`, whose effects give a stopped guest back (failed precopy) or leave it
 * stopped (postcopy-paused). The first transport error is kept typed in `error`.
 *
 * Postcopy recovery (core/source/recovery.ts): `pause` (QMP migrate-pause) or a lost channel
 * moves to postcopy-paused; the channel is dropped and forgotten, so late bytes or a late close
 * of the dead connection are ignored. `resume(uri)` (QMP migrate with resume) connects again;
 * the engine's RECV_BITMAP commands wait in the send queue until the new channel is up, and the
 * new channel's return path answers them. `whenFinished` then waits for the next end or pause.
 */
import type { Effect, SourceHooks, SourceRam, StepResult } from '../core/engine-types.ts';
import type { MigrationCapabilities } from '../core/capabilities.ts';
import type { MigrationParameters } from '../core/params.ts';
import { SourceEngine } from '../core/source/source-engine.ts';
import type { HintPostcopyPolicy } from '../core/engine-types.ts';
import { isFinalStatus, type MigrationStatus } from '../core/status.ts';
import { assert } from '../lib/assert.ts';
import { KiB, MiB, NS_PER_MS } from '../lib/units.ts';
import { ChannelWriter, type Channel } from '../transport/channel.ts';
import { ChunkPool } from './chunk-pool.ts';
import { openOutgoing, type OpenOptions } from '../transport/open.ts';
import { MultifdConnections } from './multifd-channels.ts';
import { hopNowNs, hopTrace } from './hop-trace.ts';

/** Wire bytes one precopy pump may write. */
export const PRECOPY_PUMP_BYTES = 8 * MiB;
/** Wire bytes one postcopy pump may write. */
export const POSTCOPY_PUMP_BYTES = 64 * KiB;
/** After the switch, pump only while fewer bytes than this wait in the channel. */
export const POSTCOPY_QUEUE_BYTES_MAX = 64 * KiB;
/** Longest stretch of pumping before the event loop gets a turn (return path, QMP, faults). */
export const PUMP_SLICE_MS = 20;
/** How often the engine's bandwidth window is ticked. */
export const TICK_INTERVAL_MS = 20;
/** The engine's chunk size: chunks are written to the channel as they are. */
export const SOURCE_CHUNK_BYTES = 1 * MiB;

/** What the migration needs from its VM, called synchronously. */
export interface OutgoingHost {
  readonly ram: SourceRam;
  readonly hooks: SourceHooks;
  /** Monotonic time, ns. */
  nowNs(): number;
  /** Stop the vCPUs and return once they are stopped. */
  stopGuest(): void;
  /** Resume the vCPUs (a failed or cancelled migration). */
  runGuest(): void;
  setThrottle(percent: number): void;
  onStatus(from: MigrationStatus, to: MigrationStatus): void;
  onEvent(name: string, data: Readonly<Record<string, unknown>> | undefined): void;
}

export interface OutgoingOptions {
  readonly uri: string;
  readonly capabilities: MigrationCapabilities;
  readonly parameters: MigrationParameters;
  readonly hintPolicy: HintPostcopyPolicy;
  readonly open: OpenOptions;
  /** Opens the main connection (default the transport's openOutgoing; tests pass a fake). */
  readonly openChannel?: (uri: string, open: OpenOptions) => Promise<Channel>;
}

export class OutgoingMigration {
  readonly engine: SourceEngine;
  /** The URI of the current connection (a resume may name another one). */
  uri: string;
  /** The first transport or vCPU error, typed; null while all is well. */
  error: Error | null = null;
  /** When `migrate` ran and when the status became final, ns (host clock). */
  readonly startNs: number;
  endNs: number | null = null;
  private readonly host: OutgoingHost;
  private channel: Channel | null = null;
  private writer: ChannelWriter | null = null;
  private readonly pendingSends: Uint8Array[] = [];
  /** The main stream's chunk buffers; the channel carries exactly that stream from offset 0. */
  private readonly pool = new ChunkPool(() => (this.channel === null ? 0 : this.channel.bytesWritten - this.channel.queuedBytes));
  /** The multifd channels (capability multifd), else null. */
  private readonly multifd: MultifdConnections | null;
  /** The postcopy-preempt connection (capability postcopy-preempt), else null. */
  private readonly preempt: MultifdConnections | null;
  /** Background pages leave as views of guest RAM (plain channels; TLS copies anyway). */
  private readonly pageViews: boolean;
  private tickTimer: NodeJS.Timeout | null = null;
  private pumpTimer: NodeJS.Timeout | null = null;
  private pumpQueued = false;
  private waitingForDrain = false;
  /** The vCPUs did not stop for the completion: the migration must fail, not complete. */
  private stopFailed = false;
  private readonly openChannel: (uri: string, open: OpenOptions) => Promise<Channel>;
  private finished!: Promise<MigrationStatus>;
  private resolveFinished!: (status: MigrationStatus) => void;

  constructor(host: OutgoingHost, options: OutgoingOptions) {
    this.host = host;
    this.uri = options.uri;
    this.openChannel = options.openChannel ?? openOutgoing;
    this.startNs = host.nowNs();
    this.pageViews = options.open.tls === undefined;
    this.engine = new SourceEngine({
      ram: host.ram,
      hooks: host.hooks,
      capabilities: options.capabilities,
      parameters: options.parameters,
      hintPolicy: options.hintPolicy,
      chunkSizeBytes: SOURCE_CHUNK_BYTES,
      allocChunk: this.pool.alloc,
      awaitWritten: true,
      completionSpansPumps: true,
      pageViews: this.pageViews,
      multifd: true,
    });
    this.armFinished();
    this.multifd = options.capabilities.multifd ? new MultifdConnections(options.parameters.multifdChannels, (error) => this.fail(error)) : null;
    this.preempt = options.capabilities['postcopy-preempt'] ? new MultifdConnections(1, (error) => this.onPreemptError(error)) : null;
    this.apply(this.engine.start(host.nowNs()));
    this.tickTimer = setInterval(() => this.onTick(), TICK_INTERVAL_MS);
    void this.connect(this.uri, options.open);
  }

  private armFinished(): void {
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  /** Resolves with the final status (completed, failed, cancelled) or postcopy-paused. */
  whenFinished(): Promise<MigrationStatus> {
    return this.finished;
  }

  get status(): MigrationStatus {
    return this.engine.status;
  }

  /**
   * Resolves once the channel has closed (a completed migration's last bytes handed over, an
   * exec: command exited), or after `timeoutMs`. QEMU reports `completed` only after its
   * blocking writes returned; here the status turns first and the channel ends after it, so
   * a `quit` right after `completed` waits for this before the process exits (otherwise
   * `exec:cat > FILE` would be cut short).
   */
  async whenDelivered(timeoutMs: number): Promise<void> {
    const channel = this.channel;
    if (channel === null || channel.closed) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([channel.whenClosed().then(() => undefined), timeout]);
    clearTimeout(timer);
  }

  private async connect(uri: string, open: OpenOptions): Promise<void> {
    const attempt = this.engine.recoveries;
    let channel: Channel;
    try {
      channel = await this.openChannel(uri, open);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    // Ended meanwhile, or paused and resumed again by a newer connect.
    if (isFinalStatus(this.engine.status) || this.engine.status === 'postcopy-paused' || attempt !== this.engine.recoveries) {
      channel.destroy();
      return;
    }
    this.channel = channel;
    // With page views every piece goes to the channel as it is (apply corks it around a step,
    // so a step's pieces leave in one writev); without, small pieces are batched.
    this.writer = new ChannelWriter(channel, { batchBytes: SOURCE_CHUNK_BYTES, directWriteMinBytes: this.pageViews ? 1 : 256 * KiB });
    for (const data of this.pendingSends.splice(0)) this.writer.write(data);
    this.writer.flush();
    // A dropped connection may still report: only the current one is heard.
    channel.onData((chunk) => {
      if (this.channel === channel) this.onReturnPath(chunk);
    });
    channel.onClose((error) => {
      if (this.channel === channel) this.onChannelClosed(error);
    });
    this.schedulePump();
    // Multifd never pauses (the engine refuses it with postcopy): this is the first connect.
    if (this.multifd !== null) await this.multifd.connect(uri, open);
    if (this.preempt !== null) await this.preempt.connect(uri, open);
  }

  /**
   * The preempt connection failed. Once the engine waits for SHUT its EOS is written, so the
   * channel has nothing left to carry: a destination that completed and closed its connections
   * (its preempt socket's reset can arrive before SHUT on the main one) is not a failure.
   */
  private onPreemptError(error: Error): void {
    if (this.engine.phase === 'awaiting-shut') return;
    this.fail(error);
  }

  /** Bytes handed to the postcopy-preempt connection so far (0 without the capability). */
  get preemptBytesWritten(): number {
    return this.preempt?.bytesWritten ?? 0;
  }

  /**
   * QMP `migrate` with `resume: true`: the engine's refusal text, or null once the recovery
   * handshake is queued for a new connection to `uri` (connected in the background; a failed
   * connect pauses again).
   */
  resume(uri: string, open: OpenOptions): string | null {
    const result = this.engine.resume(this.host.nowNs());
    if (result.error !== null) return result.error.message;
    this.uri = uri;
    this.endNs = null;
    this.armFinished();
    this.apply(result);
    this.tickTimer ??= setInterval(() => this.onTick(), TICK_INTERVAL_MS);
    void this.connect(uri, open);
    return null;
  }

  /** QMP `migrate-pause` on the source: the refusal text, or null (the status is postcopy-paused). */
  pause(): string | null {
    const result = this.engine.migratePause(this.host.nowNs());
    if (result.error !== null) return result.error.message;
    this.apply(result);
    return null;
  }

  /** A transport failure: kept typed, then the engine's channel error. */
  private fail(error: Error): void {
    if (this.error === null) this.error = error;
    if (isFinalStatus(this.engine.status)) return;
    this.apply(this.engine.channelError(this.host.nowNs(), error.message));
  }

  private onReturnPath(chunk: Uint8Array): void {
    if (isFinalStatus(this.engine.status)) return;
    const readNs = hopTrace.source === null ? 0 : hopNowNs();
    const result = this.engine.onReturnPath(this.host.nowNs(), chunk);
    hopTrace.source?.requestsRead(this.engine.counters().requestsReceived, readNs);
    this.apply(result);
    // Requested pages go out now, not at the next pump: that may be held by a full main
    // channel, the rate limiter or a pump timer (postcopy-preempt's pages bypass all three).
    if (this.engine.status === 'postcopy-active') this.apply(this.engine.serveRequests(this.host.nowNs()));
    this.schedulePump();
  }

  private onChannelClosed(error: Error | null): void {
    if (isFinalStatus(this.engine.status) || this.engine.status === 'postcopy-paused') return;
    // A destination without a return path closes its end once it has loaded the whole stream,
    // which can be before the next look for `written` (reportWritten looks every ms). A clean
    // close while nothing is queued any more is that: every byte was handed to the kernel and
    // read. (A peer that failed with bytes unread resets the connection: an error.)
    if (error === null && this.engine.phase === 'awaiting-written' && this.queuedStreamBytes() === 0) {
      this.apply(this.engine.written(this.host.nowNs()));
      return;
    }
    this.fail(error ?? new Error('Migration channel closed by the peer'));
  }

  private onTick(): void {
    if (isFinalStatus(this.engine.status)) return;
    this.apply(this.engine.tick(this.host.nowNs()));
    this.schedulePump();
  }

  /** `migrate_cancel`. */
  cancel(): void {
    if (isFinalStatus(this.engine.status)) return;
    this.apply(this.engine.cancel(this.host.nowNs()));
  }

  /** `migrate-start-postcopy`: the refusal text, or null. */
  startPostcopy(): string | null {
    const result = this.engine.startPostcopy(this.host.nowNs());
    this.apply(result);
    this.schedulePump();
    return result.error === null ? null : result.error.message;
  }

  /** Applies a free page hint. */
  applyHint(startPage: number, pageCount: number): void {
    if (isFinalStatus(this.engine.status)) return;
    this.apply(this.engine.applyHint(this.host.nowNs(), startPage, pageCount));
  }

  /** `migrate-set-parameters` during the migration. */
  setParameters(parameters: MigrationParameters): void {
    if (isFinalStatus(this.engine.status)) return;
    this.apply(this.engine.setParameters(this.host.nowNs(), parameters));
    this.schedulePump();
  }

  // ---- pumping ---------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpQueued || this.waitingForDrain || this.channel === null) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pumpSlice();
    });
  }

  private pumpSlice(): void {
    const writer = this.writer;
    if (writer === null) return;
    const sliceEndNs = this.host.nowNs() + PUMP_SLICE_MS * NS_PER_MS;
    for (;;) {
      if (isFinalStatus(this.engine.status) || writer.channel.closed) return;
      if (this.stopFailed) return this.apply(this.engine.channelError(this.host.nowNs(), `cannot stop the guest: ${this.error?.message}`));
      if (writer.channel.needsDrain) return this.awaitDrain(writer.channel);
      const multifdFull = this.multifd?.needingDrain() ?? null;
      if (multifdFull !== null) return this.awaitDrain(multifdFull);
      if (this.engine.phase === 'awaiting-written') return this.reportWritten(writer.channel);
      const postcopy = this.engine.status === 'postcopy-active';
      if (postcopy && writer.channel.queuedBytes >= POSTCOPY_QUEUE_BYTES_MAX) return this.pumpLater(1);
      const now = this.host.nowNs();
      const readiness = this.engine.readiness(now);
      if (readiness.kind === 'idle') return;
      if (readiness.kind === 'wait') return this.pumpLater((readiness.untilNs - now) / NS_PER_MS);
      this.apply(this.engine.pump(now, postcopy ? POSTCOPY_PUMP_BYTES : PRECOPY_PUMP_BYTES));
      writer.flush();
      // After the switch, return-path requests must not wait for a long slice.
      if (postcopy || this.host.nowNs() >= sliceEndNs) break;
    }
    this.schedulePump();
  }

  /** `written` once no queue holds stream bytes any more; until then, a look every ms. */
  private reportWritten(main: Channel): void {
    if (main.queuedBytes + this.queuedSideBytes() > 0) return this.pumpLater(1);
    this.apply(this.engine.written(this.host.nowNs()));
  }

  /** Stream bytes the multifd and preempt channels still queue. */
  private queuedSideBytes(): number {
    return (this.multifd?.queuedBytes ?? 0) + (this.preempt?.queuedBytes ?? 0);
  }

  /** Stream bytes not yet handed to the kernel: the main writer's batch and every channel's queue. */
  private queuedStreamBytes(): number {
    const main = this.writer === null ? 0 : this.writer.pendingBytes + this.writer.channel.queuedBytes;
    return main + this.queuedSideBytes();
  }

  private awaitDrain(channel: Channel): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    const stop = channel.onDrain(() => {
      stop();
      this.waitingForDrain = false;
      this.schedulePump();
    });
  }

  private pumpLater(delayMs: number): void {
    if (this.pumpTimer !== null) return;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = null;
      this.schedulePump();
    }, Math.max(0, Math.ceil(delayMs)));
  }

  // ---- effects ----------------------------------------------------------------------------

  /** Carries out the effects; what they sent goes out now (an answer to the return path must not wait for a pump). */
  private apply(result: StepResult): void {
    // Page views: a step's pieces (headers, views, small records) leave in one writev.
    const channel = this.pageViews ? this.writer?.channel ?? null : null;
    channel?.cork();
    try {
      for (const effect of result.effects) this.applyEffect(effect);
      const writer = this.writer;
      if (writer !== null && !writer.channel.closed) writer.flush();
    } finally {
      channel?.uncork();
    }
    this.traceServed();
  }

  /** Hop trace: the requests served so far are with their socket now. */
  private traceServed(): void {
    const trace = hopTrace.source;
    if (trace === null) return;
    const c = this.engine.counters();
    trace.requestsServed(c.requestedPagesSent + c.requestedPagesDropped + c.hintedZeroPagesSent, hopNowNs());
  }

  private applyEffect(effect: Effect): void {
    switch (effect.kind) {
      case 'send':
        if (effect.channel === 'preempt') {
          assert(this.preempt !== null, 'the source sent on the preempt channel without the capability');
          this.preempt.write(0, effect.data);
          return this.traceServed();
        }
        if (effect.channel !== 'main') {
          assert(this.multifd !== null && effect.channel.startsWith('multifd'), `the real source sends on ${effect.channel} without multifd`);
          return this.multifd.write(Number(effect.channel.slice('multifd'.length)), effect.data);
        }
        if (this.writer === null) this.pendingSends.push(effect.data);
        else if (!this.writer.channel.closed) this.writer.write(effect.data);
        return;
      case 'status':
        this.host.onStatus(effect.from, effect.to);
        if (isFinalStatus(effect.to) || effect.to === 'postcopy-paused') this.finish(effect.to);
        return;
      case 'stop-guest':
        try {
          this.host.stopGuest();
        } catch (error) {
          // The final sync must not run with a vCPU still writing: the next pump fails instead.
          if (this.error === null) this.error = error as Error;
          this.stopFailed = true;
        }
        return;
      case 'run-guest':
        return this.host.runGuest();
      case 'throttle':
        return this.host.setThrottle(effect.percent);
      case 'event':
        return this.host.onEvent(effect.name, effect.data);
      case 'mark':
        return;
      case 'page-ready':
        return assert(false, 'the source emitted page-ready');
    }
  }

  /**
   * The migration ended (or paused): timers stop; the channel is ended or dropped. A paused
   * migration forgets its channel and whatever was queued for it (lost with the connection).
   */
  private finish(status: MigrationStatus): void {
    this.endNs = this.host.nowNs();
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    if (this.pumpTimer !== null) clearTimeout(this.pumpTimer);
    this.tickTimer = null;
    this.pumpTimer = null;
    const writer = this.writer;
    if (status === 'completed' && writer !== null && !writer.channel.closed) {
      writer.end();
      this.multifd?.end();
      this.preempt?.end();
    } else {
      this.channel?.destroy();
      this.multifd?.destroy();
      this.preempt?.destroy();
    }
    if (status === 'postcopy-paused') {
      this.channel = null;
      this.writer = null;
      this.pendingSends.length = 0;
      this.waitingForDrain = false;
    }
    this.resolveFinished(status);
  }
}
