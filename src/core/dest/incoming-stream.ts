/**
 * The stream side of the destination: the main channel's push decoder and the sink that acts
 * on what it decodes (facts §1.10, §2.5, §3.3-3.5, §3.12). RAM records go to PagePlacer;
 * commands, device sections and EOF are handled here, in stream order.
 *
 * Timeline of a postcopy switch as it arrives (facts §3.4): ADVISE (length check, PROBE
 * notifier, page-size checks, INBOUND_ADVISE notifier, all RAM discarded) … precopy pages …
 * RAM_DISCARD … PING 2 → PONG 2 … PACKAGED { LISTEN (INBOUND_LISTEN notifier, status
 * postcopy-active, faults trapped, pages placed exactly once); device sections; PING 3;
 * RUN (run-guest) } … PING 4 … pages … EOF (INBOUND_END notifier, waiting vCPUs released,
 * completed, SHUT 0). QEMU answers PING 3 and PING 4 from two threads in either order; this
 * engine answers in stream order.
 *
 * A handler refuses by throwing a DestError; the decoder stops at once and the engine turns it
 * into a failure (before RUN) or a pause (after RUN).
 *
 * Postcopy recovery's commands (RECV_BITMAP, POSTCOPY_RESUME) go to DestRecovery
 * (dest-recovery.ts); the recovery connection continues this decoder (resumeOnNewChannel).
 *
 * What it deliberately doesn't do: COLO, and QEMU's machine-type check of the CONFIGURATION
 * record (the host knows its machine type).
 */
import { assert, assertNever } from '../../lib/assert.ts';
import { encodeRpMessages } from '../../format/return-path.ts';
import { StreamDecoder } from '../../format/stream-decoder.ts';
import type { VersionPageSink } from '../../format/ram-records.ts';
import type { Command, StreamRecord } from '../../format/stream-types.ts';
import { DEFAULT_TARGET_PAGE_BITS, GLOBALSTATE_SECTION_IDSTR } from '../../format/constants.ts';
import { PAGE_SIZE_BYTES } from '../../memory/page-content.ts';
import type { DestHooks, DestRam, PostcopyNotifyReason } from '../engine-types.ts';
import type { DestContext } from './dest-context.ts';
import {
  DestError,
  MIG_ERR_DEST_DEVICE_LOAD,
  MIG_ERR_DEST_NO_RETURN_PATH,
  MIG_ERR_DEST_NOTIFIER_VETO,
  MIG_ERR_DEST_STREAM,
  MIG_ERR_DEST_UNSUPPORTED,
  pingWithoutReturnPathText,
} from './dest-errors.ts';
import type { DestEngineOptions } from './dest-types.ts';
import { CapturingDeviceDecoder, deviceBlobOf, globalstateRunstate } from './device-load.ts';
import type { DestRecovery } from './dest-recovery.ts';
import type { FaultTracker } from './fault-tracker.ts';
import { createPageSink } from './page-sink.ts';
import type { MultifdReceiver } from './multifd-receive.ts';
import type { PagePlacer } from './placement.ts';
import { adviseRefusal } from './postcopy-advise.ts';

/** SHUT's status when the destination loaded everything (1 would report a stream error). */
const SHUT_OK = 0;

export class IncomingStream {
  /** The shared per-input state. */
  private readonly ctx: DestContext;
  /** The RAM being loaded. */
  private readonly ram: DestRam;
  /** The host's callbacks. */
  private readonly hooks: DestHooks;
  /** Writes pages and keeps received bits. */
  private readonly placer: PagePlacer;
  /** Waiting vCPUs to wake when their page arrives. */
  private readonly faults: FaultTracker;
  /** Capability postcopy-ram on this side. */
  private readonly postcopyRamCap: boolean;
  /** Capability postcopy-blocktime on this side. */
  private readonly blocktimeCap: boolean;
  /** Start the guest when loading ends (QEMU's autostart, i.e. no `-S`). */
  private readonly autostart: boolean;
  /** Wraps options.deviceDecoder to keep each device section's raw payload; or null. */
  private readonly deviceDecoder: CapturingDeviceDecoder | null;
  /** The main stream's push decoder; its first error is sticky. */
  readonly decoder: StreamDecoder;
  /** The runstate of the globalstate section, once received. */
  private runstate: string | null = null;
  /** run-guest effects emitted. */
  runGuestCount = 0;
  /**
   * With postcopy-preempt: true while the preempt channel has not delivered its EOS (set by
   * the engine); a postcopy EOF then waits for it. Null without postcopy-preempt.
   */
  preemptOpen: (() => boolean) | null = null;
  /** Multifd channels (capability multifd), else null. */
  multifd: MultifdReceiver | null = null;
  /** A precopy EOF arrived and waits for every multifd channel's last SYNC. */
  private eofWaitsForMultifd = false;
  /** The main stream's postcopy EOF arrived and waits for the preempt channel's EOS. */
  private eofWaitsForPreempt = false;
  /** Pages missing when the guest was started after a precopy load; null when not started so. */
  missingAtPrecopyRun: number | null = null;
  /** What the decoder calls; RAM records go straight to placement (versions in `version` mode). */
  private readonly sink: VersionPageSink;
  /** Answers the recovery commands. */
  private readonly recovery: DestRecovery;

  constructor(ctx: DestContext, placer: PagePlacer, faults: FaultTracker, options: DestEngineOptions, recovery: DestRecovery) {
    this.ctx = ctx;
    this.ram = options.ram;
    this.hooks = options.hooks;
    this.placer = placer;
    this.faults = faults;
    this.recovery = recovery;
    this.sink = createPageSink(ctx, placer, faults, (record) => this.onRecord(record));
    this.postcopyRamCap = options.capabilities?.['postcopy-ram'] ?? false;
    this.blocktimeCap = options.capabilities?.['postcopy-blocktime'] ?? false;
    this.autostart = options.autostart ?? true;
    this.deviceDecoder = options.deviceDecoder === undefined ? null : new CapturingDeviceDecoder(options.deviceDecoder);
    this.decoder = new StreamDecoder(this.sink, {
      pagePayloadMode: options.payloadMode ?? 'bytes',
      deviceDecoder: this.deviceDecoder ?? undefined,
      limits: options.limits,
      targetPageBits: DEFAULT_TARGET_PAGE_BITS,
      postcopyRam: this.postcopyRamCap,
    });
  }

  /** Every non-RAM record of the stream, in order. Throwing a DestError fails the load. */
  private onRecord(record: StreamRecord): void {
    switch (record.kind) {
      case 'header':
      case 'configuration':
      case 'section-begin':
      case 'section-end':
      case 'packaged-end':
      case 'vmdescription':
        return;
      case 'ram-eos':
        this.multifd?.mainEos();
        return;
      case 'ram-blocks': {
        const refusal = this.placer.setStreamBlocks(record.blocks);
        if (refusal !== null) throw refusal;
        return;
      }
      case 'device':
        return this.onDevice(record);
      case 'command':
        return this.onCommand(record.command);
      case 'eof':
        if (record.depth !== 0) return this.ctx.mark('eof-inside-package');
        return this.onEof();
      default:
        return assertNever(record);
    }
  }

  private onDevice(record: StreamRecord & { kind: 'device' }): void {
    const { header, state } = record;
    if (header.idstr === GLOBALSTATE_SECTION_IDSTR) this.runstate = globalstateRunstate(state);
    const text = this.hooks.loadDevice(deviceBlobOf(header, state, this.deviceDecoder), this.ctx.nowNs);
    if (text !== null) throw new DestError(MIG_ERR_DEST_DEVICE_LOAD, text);
  }

  private onCommand(command: Command): void {
    const ctx = this.ctx;
    switch (command.kind) {
      case 'open-return-path':
        if (ctx.returnPathOpen) return ctx.mark('return-path-already-open', 'CMD_OPEN_RETURN_PATH called when RP already open');
        ctx.returnPathOpen = true;
        return;
      case 'ping':
        if (!ctx.returnPathOpen) throw new DestError(MIG_ERR_DEST_NO_RETURN_PATH, pingWithoutReturnPathText(command.value));
        return ctx.send(encodeRpMessages([{ kind: 'pong', value: command.value }]));
      case 'postcopy-advise':
      case 'postcopy-advise-empty':
        return this.onAdvise(command);
      case 'postcopy-ram-discard':
        for (const range of command.ranges) this.placer.discardRange(command.blockName, range.startBytes, range.lengthBytes);
        return;
      case 'postcopy-listen':
        return this.onListen();
      case 'postcopy-run':
        ctx.move({ kind: 'run' });
        return this.startGuest();
      case 'packaged':
        return;
      case 'recv-bitmap':
        return this.recovery.answerRecvBitmap(command.blockName);
      case 'postcopy-resume':
        return this.recovery.resume();
      case 'enable-colo':
        throw new DestError(MIG_ERR_DEST_UNSUPPORTED, `${command.kind} is not supported by this destination (no COLO)`);
      default:
        return assertNever(command);
    }
  }

  /** QEMU's loadvm_postcopy_handle_advise, in its order of checks (postcopy-advise.ts). */
  private onAdvise(command: Command & { kind: 'postcopy-advise' | 'postcopy-advise-empty' }): void {
    const lengthRefusal = adviseRefusal(command, this.postcopyRamCap, null);
    if (lengthRefusal !== null) throw lengthRefusal;
    if (command.kind === 'postcopy-advise-empty') return; // dirty-bitmaps-only postcopy
    this.notify('probe');
    const local = { pageSizeSummary: PAGE_SIZE_BYTES, targetPageSize: PAGE_SIZE_BYTES };
    const sizeRefusal = adviseRefusal(command, this.postcopyRamCap, local);
    if (sizeRefusal !== null) throw sizeRefusal;
    this.notify('inbound-advise');
    this.placer.discardAll();
    this.ctx.move({ kind: 'advise' });
  }

  /** QEMU's loadvm_postcopy_handle_listen: uffd, INBOUND_LISTEN notifier, then the listen thread. */
  private onListen(): void {
    const phase = this.ctx.phase;
    assert(phase.kind === 'precopy', `LISTEN in ${phase.kind}`);
    this.notify('inbound-listen');
    if (phase.ramAdvised) {
      this.ctx.trapFaults = true;
      if (this.blocktimeCap) this.faults.enableBlocktime(this.ctx.nowNs);
    }
    this.ctx.move({ kind: 'listen' });
  }

  private onEof(): void {
    const phase = this.ctx.phase;
    switch (phase.kind) {
      case 'precopy':
        if (this.multifd !== null && !this.multifd.caughtUp) {
          // QEMU waits in each EOS for every channel's SYNC: the last pass must be placed.
          this.eofWaitsForMultifd = true;
          return this.ctx.mark('eof-waits-for-multifd');
        }
        return this.completePrecopy(phase.ramAdvised);
      case 'postcopy':
        if (this.preemptOpen !== null && this.preemptOpen()) {
          // QEMU 7.2 joins the preempt thread (which reads until the channel's EOS) before it
          // completes: requested pages still in flight there must be placed first.
          this.eofWaitsForPreempt = true;
          return this.ctx.mark('eof-waits-for-preempt-eos');
        }
        return this.completePostcopy();
      case 'recover':
        throw new DestError(MIG_ERR_DEST_STREAM, 'EOF on the recovery connection before POSTCOPY_RESUME');
      case 'idle':
      case 'paused':
      case 'completed':
      case 'failed':
        return assert(false, `EOF decoded in ${phase.kind}`);
      default:
        return assertNever(phase);
    }
  }

  /** Precopy EOF (QEMU's process_incoming_migration_bh): post_load, start, completed, SHUT. */
  private completePrecopy(ramAdvised: boolean): void {
    // virtio-mem's post_load discards unplugged memory again: those pages are zero, not missing.
    const local = this.hooks.localZeroPages();
    const filled = local === null ? 0 : this.placer.fillLocalZeroRanges(local);
    if (filled > 0) this.ctx.mark('local-zero-at-load', `${filled} page(s)`);
    if (ramAdvised) this.notifyAtEnd(); // advised but never listened: postcopy cleanup
    this.startGuest();
    this.ctx.move({ kind: 'eof' });
    this.sendShut();
  }

  /** Every multifd channel delivered the last pass's SYNC: a precopy EOF that waited completes now. */
  onMultifdCaughtUp(): void {
    const phase = this.ctx.phase;
    if (!this.eofWaitsForMultifd || phase.kind !== 'precopy') return;
    this.eofWaitsForMultifd = false;
    this.completePrecopy(phase.ramAdvised);
  }

  /** The preempt channel's EOS arrived: a postcopy EOF that waited for it completes now. */
  onPreemptEos(): void {
    if (!this.eofWaitsForPreempt || this.ctx.phase.kind !== 'postcopy') return;
    this.eofWaitsForPreempt = false;
    this.completePostcopy();
  }

  /** Postcopy EOF (QEMU's listen thread): cleanup, release waiters, completed, SHUT. */
  private completePostcopy(): void {
    const ctx = this.ctx;
    this.notifyAtEnd();
    ctx.trapFaults = false;
    for (const pageIndex of this.faults.releaseAll(ctx.nowNs)) {
      // userfaultfd is gone: the retried access reads the discarded (zero) page.
      this.ram.store.zeroPage(pageIndex);
      ctx.mark('fault-released-at-end', `page ${pageIndex}`);
      ctx.effects.push({ kind: 'page-ready', pageIndex });
    }
    ctx.move({ kind: 'eof' });
    this.sendShut();
  }

  /**
   * Starts the guest unless autostart is off or the globalstate names another runstate
   * (facts §1.10). QEMU 7.2's postcopy RUN looks only at autostart; livemig applies the
   * globalstate there too, as later QEMUs do, so a paused source stays paused.
   */
  private startGuest(): void {
    const ctx = this.ctx;
    if (!this.autostart) return ctx.mark('guest-stays-paused', 'autostart off');
    if (this.runstate !== null && this.runstate !== 'running') return ctx.mark('guest-stays-paused', this.runstate);
    if (ctx.phase.kind === 'precopy') this.missingAtPrecopyRun = this.ram.received.missingCount();
    this.runGuestCount++;
    ctx.effects.push({ kind: 'run-guest' });
  }

  /** Runs a postcopy notifier; a veto fails the load with the notifier's text. */
  private notify(reason: PostcopyNotifyReason): void {
    const veto = this.hooks.postcopyNotify(reason);
    if (veto !== null) throw new DestError(MIG_ERR_DEST_NOTIFIER_VETO, veto);
  }

  /** INBOUND_END, whose veto QEMU only reports. */
  private notifyAtEnd(): void {
    const veto = this.hooks.postcopyNotify('inbound-end');
    if (veto !== null) this.ctx.mark('inbound-end-veto', veto);
  }

  private sendShut(): void {
    if (this.ctx.returnPathOpen) this.ctx.send(encodeRpMessages([{ kind: 'shut', status: SHUT_OK }]));
  }
}
