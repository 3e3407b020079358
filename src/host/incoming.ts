/**
 * One incoming migration in a real process (`-incoming URI` or `migrate-incoming`): an
 * IncomingEndpoint bound at once (so its address can be handed to the source), one accepted
 * channel, and a DestEngine fed with its bytes. The engine's effects go to the VM through
 * IncomingHost: return-path bytes are written on the same channel, `run-guest` starts the
 * vCPUs, `page-ready` wakes the vCPUs waiting for a page, status changes become events.
 *
 * Postcopy faults come from the vCPU threads (`onGuestFault`); a fault on a page that is
 * present by the time the message is handled wakes the vCPU at once.
 *
 * Multifd (capability multifd when the source connects): the next multifd-channels
 * connections are its channels (multifd-channels.ts); their bytes go to the engine as they
 * arrive, and a channel that breaks before the end drops the main one, failing the load.
 *
 * Postcopy-preempt (capability postcopy-preempt when the source connects): the next
 * connection after the main one is the preempt channel (QEMU 7.2 goes by order; multifd and
 * postcopy exclude each other). Its bytes go to the engine at once, without coalescing: they
 * are requested pages a vCPU waits for. Recovery of a preempt migration is refused (vm.ts).
 *
 * On a load failure the channel is dropped (QEMU exits without SHUT; the VM decides whether
 * the process exits). A channel that closes before EOF fails the load through the engine.
 *
 * Postcopy recovery (core/dest/dest-recovery.ts): after RUN a lost channel (or migrate-pause)
 * pauses the engine; the channel is dropped and forgotten with its unloaded bytes, and vCPU
 * faults keep waiting. `recover(uri)` (QMP migrate-recover) listens on `uri` for the source's
 * new connection and hands it to the engine (`onChannelReplaced`), which answers RECV_BITMAP
 * and RESUME on it. A connection the engine does not take is closed.
 */
import type { DestHooks, DestRam, Effect, StepResult } from '../core/engine-types.ts';
import type { MigrationCapabilities } from '../core/capabilities.ts';
import { DestEngine } from '../core/dest/dest-engine.ts';
import type { DeviceSectionDecoder } from '../format/stream-types.ts';
import { isFinalStatus, type MigrationStatus } from '../core/status.ts';
import { assert } from '../lib/assert.ts';
import type { Channel } from '../transport/channel.ts';
import { openIncoming, type IncomingEndpoint, type OpenOptions } from '../transport/open.ts';
import { parseMigrationUri } from '../transport/uri.ts';
import { acceptMultifd } from './multifd-channels.ts';
import { hopNowNs, hopTrace } from './hop-trace.ts';

/** What the incoming migration needs from its VM. */
export interface IncomingHost {
  readonly ram: DestRam;
  readonly hooks: DestHooks;
  readonly deviceDecoder: DeviceSectionDecoder;
  readonly vcpuCount: number;
  /** The VM's migration capabilities now. */
  capabilities(): MigrationCapabilities;
  /** The VM's multifd-channels parameter now. */
  multifdChannels(): number;
  nowNs(): number;
  /** The engine started the guest (the VM applies `-S`/autostart). */
  runGuest(): void;
  /** Page `pageIndex` is present: wake the vCPUs waiting for it. */
  pageReady(pageIndex: number): void;
  /** Hands pending vCPU faults to `onGuestFault` now (called between stream chunks). */
  pollFaults(): void;
  onStatus(from: MigrationStatus, to: MigrationStatus): void;
}

/**
 * Each stream channel reads into one buffer of this size, reused for every read, and each
 * read is loaded before the next (ReadOptions.reuseBufferBytes): no allocation per read. On
 * loopback a read returns up to what the socket holds (tcp_rmem allows several MiB); 4 MiB
 * cost the destination the least CPU per GiB among 256 KiB, 1 MiB, 4 MiB and 16 MiB
 * (scripts/perf/pair.ts, docs/performance.md "session 3, destination").
 */
export const READ_BUFFER_BYTES = 4 * 1024 * 1024;
/** After the switch, vCPU faults are polled at least once per this many bytes loaded. */
const POSTCOPY_SLICE_BYTES = 64 * 1024;
/** No deadline for the source's connection (setTimeout's largest delay). */
const ACCEPT_TIMEOUT_MS = 2 ** 31 - 1;

export class IncomingMigration {
  /** The engine; rebuilt when the source connects, with the capabilities set by then. */
  engine: DestEngine;
  /** The URI bound (a tcp port 0 replaced by the real port); migrate-recover binds a new one. */
  uri: string;
  /** The first transport error, typed. */
  error: Error | null = null;
  private readonly host: IncomingHost;
  private endpoint: IncomingEndpoint;
  private channel: Channel | null = null;
  private listening = true;
  /** Set by `close`: the channel's end is ours, not a failure to report. */
  private closing = false;
  /** Multifd channel connections, once accepted. */
  private multifdChannels: Channel[] = [];
  /** The postcopy-preempt connection, once accepted. */
  private preemptChannel: Channel | null = null;

  private constructor(host: IncomingHost, endpoint: IncomingEndpoint) {
    this.host = host;
    this.endpoint = endpoint;
    this.uri = endpoint.uri;
    this.engine = this.newEngine();
  }

  /**
   * A DestEngine with the VM's capabilities now: QEMU reads them when the stream arrives, so
   * `migrate-set-capabilities` after `-incoming tcp:...` (before the source connects) counts.
   */
  private newEngine(): DestEngine {
    const host = this.host;
    return new DestEngine({
      ram: host.ram,
      hooks: host.hooks,
      vcpuCount: Math.max(1, host.vcpuCount),
      capabilities: host.capabilities(),
      autostart: true,
      deviceDecoder: host.deviceDecoder,
      multifdChannels: host.multifdChannels(),
    });
  }

  /** Binds `uri` and starts waiting for the source's connection. */
  static async listen(host: IncomingHost, uri: string, open: OpenOptions): Promise<IncomingMigration> {
    // Multifd channels follow the main connection (capabilities may still change until then).
    const endpoint = await openIncoming(uri, open);
    const incoming = new IncomingMigration(host, endpoint);
    void incoming.acceptOne();
    return incoming;
  }

  get status(): MigrationStatus {
    return this.engine.status;
  }

  /** True until the source connected (or listening was given up). */
  get isListening(): boolean {
    return this.listening;
  }

  /** QEMU's `socket-address` while listening on tcp (for query-migrate), else undefined. */
  socketAddress(): readonly unknown[] | undefined {
    const parsed = parseMigrationUri(this.uri);
    if (parsed.kind === 'tcp') return [{ port: String(parsed.port), ipv4: !parsed.host.includes(':'), host: parsed.host, type: 'inet' }];
    if (parsed.kind === 'unix') return [{ path: parsed.path, type: 'unix' }];
    return undefined;
  }

  private async acceptOne(): Promise<void> {
    let channel: Channel;
    try {
      channel = await this.endpoint.accept(ACCEPT_TIMEOUT_MS);
    } catch (error) {
      if (!this.listening) return; // closed on purpose
      this.listening = false;
      // A refused connection (a TLS handshake that failed, say) fails the load, as in QEMU.
      if (this.error === null) this.error = error as Error;
      if (!isFinalStatus(this.engine.status)) this.apply(this.engine.onChannelClosed('main', this.host.nowNs()));
      return;
    }
    this.listening = false;
    this.engine = this.newEngine();
    this.attach(channel);
    // Not awaited: a listener's close resolves only once its accepted connections are gone.
    const caps = this.host.capabilities();
    if (caps.multifd) void this.acceptChannels();
    else if (caps['postcopy-preempt']) void this.acceptPreempt();
    else void this.endpoint.close();
  }

  /** Multifd: the next multifd-channels connections, then no more listening. */
  private async acceptChannels(): Promise<void> {
    this.multifdChannels = await acceptMultifd(this.endpoint, this.host.multifdChannels(), {
      onData: (index, chunk) => {
        if (!this.closing) this.apply(this.engine.onMultifdBytes(index, chunk, this.host.nowNs()));
      },
      onError: (error) => {
        if (this.closing || isFinalStatus(this.engine.status)) return;
        if (this.error === null) this.error = error;
        this.channel?.destroy(error);
      },
      isOver: () => this.closing || isFinalStatus(this.engine.status),
    }, ACCEPT_TIMEOUT_MS, { reuseBufferBytes: READ_BUFFER_BYTES });
    await this.endpoint.close();
  }

  /** Postcopy-preempt: the next connection, then no more listening. */
  private async acceptPreempt(): Promise<void> {
    let channel: Channel;
    try {
      channel = await this.endpoint.accept(ACCEPT_TIMEOUT_MS);
    } catch (error) {
      if (this.closing || isFinalStatus(this.engine.status)) return;
      if (this.error === null) this.error = error as Error;
      this.channel?.destroy(error as Error);
      return;
    } finally {
      void this.endpoint.close();
    }
    this.preemptChannel = channel;
    channel.onData((chunk) => {
      hopTrace.dest?.loading('preempt', hopNowNs());
      if (!this.closing) this.apply(this.engine.onBytes('preempt', chunk, this.host.nowNs()));
    }, { reuseBufferBytes: READ_BUFFER_BYTES });
    channel.onClose((error) => {
      if (this.closing || isFinalStatus(this.engine.status)) return;
      if (error !== null && this.error === null) this.error = error;
      this.apply(this.engine.onChannelClosed('preempt', this.host.nowNs()));
    });
  }

  /** Bytes received on the postcopy-preempt channel (0 without it). */
  get preemptBytesReceived(): number {
    return this.engine.preemptBytesReceived;
  }

  /** Makes `channel` the current one; a dropped channel's late data and close are ignored. */
  private attach(channel: Channel): void {
    this.channel = channel;
    channel.onData((chunk) => {
      if (this.channel === channel) this.onData(chunk);
    }, { reuseBufferBytes: READ_BUFFER_BYTES });
    channel.onClose((error) => {
      if (this.closing || this.channel !== channel) return; // quit, or a connection already dropped
      if (error !== null && this.error === null && !isFinalStatus(this.engine.status)) this.error = error;
      this.apply(this.engine.onChannelClosed('main', this.host.nowNs()));
    });
  }

  /**
   * QMP `migrate-recover URI`: the engine's refusal text, or null once `uri` is bound and
   * waits for the source's `migrate` with resume.
   */
  async recover(uri: string, open: OpenOptions): Promise<string | null> {
    const result = this.engine.migrateRecover(this.host.nowNs());
    if (result.error !== null) return result.error.message;
    this.apply(result);
    const endpoint = await openIncoming(uri, { ...open, expectedConnections: 1 });
    this.endpoint = endpoint;
    this.uri = endpoint.uri;
    this.listening = true;
    void this.acceptRecovery(endpoint);
    return null;
  }

  private async acceptRecovery(endpoint: IncomingEndpoint): Promise<void> {
    let channel: Channel;
    try {
      channel = await endpoint.accept(ACCEPT_TIMEOUT_MS);
    } catch (error) {
      // Closed by quit, or a refused handshake: the migration stays paused (QEMU's too).
      if (this.error === null && !this.closing) this.error = error as Error;
      return;
    } finally {
      if (this.endpoint === endpoint) this.listening = false;
      await endpoint.close();
    }
    const result = this.engine.onChannelReplaced('main', this.host.nowNs());
    if (!result.accepted) {
      channel.destroy();
      return;
    }
    this.attach(channel);
    this.apply(result);
  }

  /**
   * Loads one read at once: the chunk may be a view of the channel's reused read buffer, which
   * the next read overwrites, and the engine keeps no view of it past the call (the decoder
   * copies only a record that a read boundary cuts). A pause drops the channel (dropChannel),
   * so the dead connection's later reads and the rest of this one are ignored. After the switch
   * a read (up to READ_BUFFER_BYTES) is loaded in POSTCOPY_SLICE_BYTES pieces with vCPU faults
   * polled after each, so a page request does not wait behind the whole read.
   */
  private onData(chunk: Uint8Array): void {
    hopTrace.dest?.loading('main', hopNowNs());
    for (let at = 0; at < chunk.length && !this.closing && this.engine.status !== 'postcopy-paused';) {
      const postcopy = this.engine.status === 'postcopy-active';
      const end = postcopy ? Math.min(chunk.length, at + POSTCOPY_SLICE_BYTES) : chunk.length;
      this.apply(this.engine.onBytes('main', at === 0 && end === chunk.length ? chunk : chunk.subarray(at, end), this.host.nowNs()));
      at = end;
      if (postcopy && !this.closing) this.host.pollFaults();
    }
  }

  /** A vCPU touched a missing page (vcpu-worker.ts). */
  onGuestFault(vcpu: number, pageIndex: number): void {
    hopTrace.dest?.faultSeen(pageIndex, hopNowNs());
    const result = this.engine.onGuestFault(vcpu, pageIndex, this.host.nowNs());
    this.apply(result);
    // A fault's only `send` is its request (REQ_PAGES[_ID]) on the return path.
    if (result.effects.some((e) => e.kind === 'send')) hopTrace.dest?.requestWritten(pageIndex);
    if (result.present) this.host.pageReady(pageIndex);
  }

  /** Stops listening and drops the channel (quit, or a second incoming). */
  async close(): Promise<void> {
    this.closing = true;
    this.listening = false;
    // Connections first: a listener's close resolves only once its accepted connections are gone.
    this.channel?.destroy();
    for (const channel of this.multifdChannels) channel.destroy();
    this.preemptChannel?.destroy();
    await this.endpoint.close();
  }

  /** Drops the current channel; on a pause its unloaded bytes go with it (the dead connection's). */
  private dropChannel(): void {
    const channel = this.channel;
    if (this.engine.status === 'postcopy-paused') this.channel = null;
    channel?.destroy();
    for (const multifd of this.multifdChannels) multifd.destroy();
    this.preemptChannel?.destroy();
  }

  /** Carries out the effects of an engine command the VM ran (migrate-pause). */
  applyResult(result: StepResult): void {
    this.apply(result);
  }

  private apply(result: StepResult): void {
    for (const effect of result.effects) this.applyEffect(effect);
  }

  private applyEffect(effect: Effect): void {
    switch (effect.kind) {
      case 'send': {
        const channel = this.channel;
        if (channel !== null && !channel.closed) channel.write(effect.data);
        return hopTrace.dest?.sent(hopNowNs());
      }
      case 'status':
        this.host.onStatus(effect.from, effect.to);
        if (effect.to === 'failed' || effect.to === 'postcopy-paused') this.dropChannel();
        return;
      case 'run-guest':
        return this.host.runGuest();
      case 'page-ready':
        this.host.pageReady(effect.pageIndex);
        return hopTrace.dest?.placed(effect.pageIndex, hopNowNs());
      case 'event':
      case 'mark':
        return;
      case 'stop-guest':
      case 'throttle':
        return assert(false, `the destination emitted ${effect.kind}`);
    }
  }
}
