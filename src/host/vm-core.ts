/**
 * VmCore: one virtual machine in a real process, without its QMP face (LivemigVm in vm.ts adds
 * the VmController commands). It owns the machine (vm-machine.ts: RAM, dirty log, guest model,
 * balloon), the vCPU threads (vcpus.ts), the run state under QEMU's RunState names, and at
 * most one outgoing and one incoming migration (outgoing.ts, incoming.ts).
 *
 * Run states: `running` (vCPUs run), `prelaunch` (`-S`), `paused` (`stop`), `inmigrate`
 * (waiting for or loading an incoming migration), `finish-migrate` (stopped by the outgoing
 * migration for its completion or the postcopy switch), `postmigrate` (the migration
 * completed; the guest lives elsewhere now). STOP and RESUME are emitted on every move out of
 * and into `running`; MIGRATION follows each status change when capability `events` is on.
 *
 * The guest model's drivers run on the main thread, stepped every DRIVER_STEP_MS while the
 * guest runs; the balloon's free page queue is polled on the same timer.
 */
import { installNativeZeroTest } from './native-zero.ts';
import { nativePageCopier } from './native-copy.ts';
import { defaultCapabilities, type MigrationCapabilities } from '../core/capabilities.ts';
import type { DeviceSectionBlob, PostcopyNotifyReason, PrecopyNotifyReason } from '../core/engine-types.ts';
import { DEFAULT_PARAMETERS, type MigrationParameters } from '../core/params.ts';
import { isFinalStatus, type MigrationStatus } from '../core/status.ts';
import { RangeTable } from '../lib/range-table.ts';
import type { OpenOptions } from '../transport/open.ts';
import { IncomingMigration } from './incoming.ts';
import { prefaultPages } from './prefault.ts';
import { writeBackBackendFile } from './memory-backend.ts';
import { OutgoingMigration, type OutgoingOptions } from './outgoing.ts';
import { VcpuSet } from './vcpus.ts';
import type { VmCommandLine } from './vm-args.ts';
import { buildMachine, type VmMachine } from './vm-machine.ts';
import type { RunState, VmEvent, VmEventListener } from './vm-types.ts';

/** How long closing waits for a completed migration's channel to deliver its last bytes. */
const DELIVERY_WAIT_MS = 10_000;

/** How often the guest's drivers and the balloon's queues are stepped. */
export const DRIVER_STEP_MS = 2;
/** 32-bit words per guest page. */
const PAGE_WORDS = 1024;
/** Guest RAM touched per event-loop turn while an incoming VM waits (16 MiB). */
const PREFAULT_SLICE_WORDS = 4 * 1024 * 1024;

/** What a VM reports outside QMP. */
export interface VmHooks {
  /** A line QEMU would print with error_report (stderr). */
  readonly report?: (line: string) => void;
  /** `quit` was executed: the owner ends the process (or the test) after the reply. */
  readonly onQuit?: () => void;
  /** An incoming migration failed (QEMU exits with status 1 here). */
  readonly onIncomingFailed?: (error: string) => void;
}

export class VmCore {
  readonly config: VmCommandLine;
  readonly machine: VmMachine;
  /** null until `start`. */
  vcpus: VcpuSet | null = null;
  runState: RunState;
  /** In `inmigrate`: run the guest when the incoming migration completes (no `-S`). */
  autostart: boolean;
  capabilities: MigrationCapabilities = defaultCapabilities();
  parameters: MigrationParameters = DEFAULT_PARAMETERS;
  outgoing: OutgoingMigration | null = null;
  incoming: IncomingMigration | null = null;
  /** `-incoming defer`: migrate-incoming is allowed once. */
  readonly incomingDefer: boolean;
  /** Pages the balloon hinted to the current outgoing migration. */
  hintedPages = new RangeTable();
  readonly hooks: VmHooks;
  /** process.hrtime.bigint() at construction; `nowNs()` counts from here. */
  readonly epochNs = process.hrtime.bigint();
  private readonly listeners = new Set<VmEventListener>();
  private driverTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** Pages below this were verified all zero while listening (prefaultWhileListening). */
  private verifiedZeroBelowPage = 0;
  /** The pages the incoming migration placed are recorded in `machine.written`. */
  private incomingWritesRecorded = false;
  /** The run state when the outgoing migration stopped the guest. */
  private stateBeforeStop: RunState = 'running';

  protected constructor(config: VmCommandLine, hooks: VmHooks) {
    this.config = config;
    this.hooks = hooks;
    installNativeZeroTest();
    this.machine = buildMachine(config, {
      onHint: (startPage, pageCount) => this.onHint(startPage, pageCount),
      onBalloonChange: (actualBytes) => this.emit({ event: 'BALLOON_CHANGE', data: { actual: actualBytes } }),
    });
    this.incomingDefer = config.incoming === 'defer';
    this.autostart = !config.startPaused;
    this.runState = config.incoming !== null ? 'inmigrate' : config.startPaused ? 'prelaunch' : 'running';
    for (const error of this.machine.guest?.probeErrors ?? []) this.report(`livemig: guest driver: ${error.message}`);
  }

  /** Starts the VM: vCPU threads, `-incoming URI` listening, the guest running unless -S. */
  protected async init(): Promise<void> {
    const config = this.config;
    const m = this.machine;
    this.vcpus = await VcpuSet.start({
      memory: m.backing.buffer as SharedArrayBuffer,
      dirtyLog: m.dirtyLog.buffer,
      received: m.received.buffer,
      pageCount: m.backing.pageCount,
      epochNs: this.epochNs,
      plans: m.plans,
      nice: config.vcpuNice,
      onFault: (vcpu, page) => this.onGuestFault(vcpu, page),
      onWorkerError: (vcpu, error) => this.report(`livemig: vCPU ${vcpu} died: ${error.message}`),
    });
    try {
      if (config.incoming !== null && config.incoming !== 'defer') await this.listenIncoming(config.incoming);
    } catch (error) {
      await this.close();
      throw error;
    }
    if (this.runState === 'running') this.resumeGuest();
    this.driverTimer = setInterval(() => this.stepDrivers(), DRIVER_STEP_MS);
  }

  /** Monotonic ns since the VM was built. */
  nowNs(): number {
    return Number(process.hrtime.bigint() - this.epochNs);
  }

  report(line: string): void {
    (this.hooks.report ?? ((text: string) => process.stderr.write(`${text}\n`)))(line);
  }

  // ---- events and run state ----------------------------------------------------------------

  subscribe(listener: VmEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: VmEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  emitMigration(status: MigrationStatus): void {
    if (this.capabilities.events) this.emit({ event: 'MIGRATION', data: { status } });
  }

  /** Moves the run state, with STOP/RESUME on leaving or entering `running`. */
  setRunState(next: RunState): void {
    const wasRunning = this.runState === 'running';
    this.runState = next;
    if (wasRunning && next !== 'running') this.emit({ event: 'STOP' });
    if (!wasRunning && next === 'running') this.emit({ event: 'RESUME' });
  }

  /** Starts the vCPUs and enters `running`. */
  resumeGuest(): void {
    this.vcpus?.run();
    this.setRunState('running');
  }

  /** Stops the vCPUs (synchronously) and enters `state`. */
  pauseGuest(state: RunState): void {
    this.vcpus?.pause();
    this.setRunState(state);
  }

  private stepDrivers(): void {
    if (this.runState !== 'running') return;
    const now = this.nowNs();
    this.machine.pageCaches?.service();
    this.machine.guest?.step(now);
    this.machine.devices.poll(now);
  }

  // ---- outgoing migration ------------------------------------------------------------------

  /**
   * Starts `migrate` (checks done by the controller). Throws what the engine refuses; the
   * caller then calls `machine.devices.setSourceMigrating(false)`.
   */
  startOutgoing(uri: string, open: OpenOptions): OutgoingMigration {
    const m = this.machine;
    m.devices.postcopyRam = this.capabilities['postcopy-ram'];
    m.devices.setSourceMigrating(true);
    this.hintedPages = new RangeTable();
    const options: OutgoingOptions = {
      uri,
      capabilities: this.capabilities,
      parameters: this.parameters,
      hintPolicy: this.config.balloon?.postcopyPolicy ?? 'refuse',
      open,
    };
    const outgoing = new OutgoingMigration({
      ram: {
        blocks: m.blocks,
        store: m.backing,
        syncDirtyLog: (into) => into.syncFrom(m.dirtyLog),
        // Only while no incoming migration is placing pages the written map has not recorded.
        unwritten: this.incoming === null || this.incomingWritesRecorded ? m.written : undefined,
      },
      hooks: {
        precopyNotify: (reason: PrecopyNotifyReason, _nowNs: number, vmRunning: boolean) => m.devices.precopyNotify(reason, vmRunning),
        skipPages: () => m.devices.skipPages(),
        saveDevices: (): readonly DeviceSectionBlob[] => m.devices.saveDevices(),
      },
      nowNs: () => this.nowNs(),
      stopGuest: () => {
        this.stateBeforeStop = this.runState;
        this.pauseGuest('finish-migrate');
      },
      runGuest: () => {
        // QEMU's vm_was_running: a guest that was paused before stays paused.
        if (this.runState !== 'finish-migrate') return;
        if (this.stateBeforeStop === 'running') this.resumeGuest();
        else this.setRunState(this.stateBeforeStop);
      },
      setThrottle: (percent) => this.vcpus?.setThrottle(percent),
      onStatus: (_from, to) => this.onOutgoingStatus(to),
      onEvent: (name, data) => {
        if (name === 'MIGRATION_PASS') this.emit({ event: 'MIGRATION_PASS', data: { pass: Number(data?.pass ?? 0) } });
      },
    }, options);
    this.outgoing = outgoing;
    return outgoing;
  }

  private onOutgoingStatus(to: MigrationStatus): void {
    this.emitMigration(to);
    if (isFinalStatus(to)) this.machine.devices.setSourceMigrating(false);
    if (to === 'completed' && this.runState === 'finish-migrate') this.setRunState('postmigrate');
    // Failed or cancelled after EOF or the postcopy switch: the engine kept the guest stopped
    // because the destination may run it (split-brain rule); `cont` is the operator's call.
    if ((to === 'failed' || to === 'cancelled') && this.runState === 'finish-migrate') this.setRunState('postmigrate');
    if (to !== 'failed') return;
    const outgoing = this.outgoing;
    this.report(`livemig: migration failed: ${outgoing?.error?.message ?? outgoing?.engine.error?.message ?? 'unknown error'}`);
  }

  private onHint(startPage: number, pageCount: number): void {
    const outgoing = this.outgoing;
    if (outgoing === null || isFinalStatus(outgoing.status)) return;
    this.hintedPages.add(startPage, startPage + pageCount);
    outgoing.applyHint(startPage, pageCount);
  }

  // ---- incoming migration ------------------------------------------------------------------

  /** Binds the incoming URI; MIGRATION setup is emitted as QEMU does before the URI is parsed. */
  async listenIncoming(uri: string, open: OpenOptions = {}): Promise<IncomingMigration> {
    const m = this.machine;
    this.emitMigration('setup');
    const incoming = await IncomingMigration.listen({
      ram: {
        blocks: m.blocks,
        store: m.backing,
        received: m.received,
        verifiedZeroBelowPage: () => this.verifiedZeroBelowPage,
        // Until the load completes, the written map holds every writer but the engine.
        unwritten: m.written,
        copyPageIn: nativePageCopier(m.backing.bytes),
      },
      hooks: {
        loadDevice: (blob) => m.devices.loadDevice(blob),
        postcopyNotify: (reason: PostcopyNotifyReason) => m.devices.postcopyNotify(reason),
        localZeroPages: () => m.devices.localZeroPages(),
      },
      deviceDecoder: m.devices.deviceDecoder(),
      vcpuCount: this.config.vcpus,
      capabilities: () => this.capabilities,
      multifdChannels: () => this.parameters.multifdChannels,
      nowNs: () => this.nowNs(),
      runGuest: () => this.onIncomingRun(),
      pageReady: (page) => this.vcpus?.wakePage(page),
      pollFaults: () => this.vcpus?.pollFaults(),
      onStatus: (_from, to) => this.onIncomingStatus(to),
    }, uri, open);
    this.incoming = incoming;
    this.incomingWritesRecorded = false;
    this.verifiedZeroBelowPage = 0;
    this.prefaultWhileListening(0);
    return incoming;
  }

  /**
   * Touches guest RAM in slices while the incoming migration waits for its source, so the
   * stream's page writes do not each take a first-touch page fault (measured here: faults
   * made placement several times slower than the copy itself). It stops when the source
   * connects. The main thread is the only writer of an `inmigrate` VM's RAM, and the touch
   * (`|= 0`) leaves the content unchanged.
   *
   * Each slice is also tested for being all zero while it is in cache; as long as every slice
   * so far was, `verifiedZeroBelowPage` moves past it. The destination engine then skips reading
   * those pages for precopy ZERO records until it writes them (DestRam.verifiedZeroBelowPage).
   */
  private prefaultWhileListening(fromWord: number): void {
    const incoming = this.incoming;
    if (incoming === null || !incoming.isListening || this.closing !== null) return;
    const m = this.machine;
    const words = m.backing.words;
    const end = Math.min(words.length, fromWord + PREFAULT_SLICE_WORDS);
    // Pages that are zero without being read are touched with a plain store (prefault.ts).
    const allZero = prefaultPages({ words, bytes: m.backing.bytes, written: m.written, received: m.received.bits }, fromWord / PAGE_WORDS, Math.ceil(end / PAGE_WORDS));
    if (this.verifiedZeroBelowPage * PAGE_WORDS === fromWord && allZero) {
      this.verifiedZeroBelowPage = Math.floor(end / PAGE_WORDS);
    }
    if (end < words.length) setImmediate(() => this.prefaultWhileListening(end));
  }

  private onIncomingRun(): void {
    if (this.autostart) this.resumeGuest();
  }

  private onIncomingStatus(to: MigrationStatus): void {
    // The engine writes RAM past the dirty log: every page it placed has its received bit set
    // (a bit is cleared only with its page zeroed). A failed load leaves nothing known.
    if (to === 'completed') this.machine.written.markFrom(this.machine.received.bits);
    if (to === 'failed') this.machine.written.markAll();
    if (to === 'completed' || to === 'failed') this.incomingWritesRecorded = true;
    this.emitMigration(to);
    if (to === 'postcopy-active') this.vcpus?.setTrap(true);
    if (to !== 'completed' && to !== 'failed') return;
    this.vcpus?.setTrap(false);
    if (to === 'completed' && this.runState === 'inmigrate') this.setRunState('paused');
    if (to === 'failed') {
      const text = this.incoming?.engine.lastError?.message ?? this.incoming?.error?.message ?? 'unknown error';
      this.report(`livemig: load of migration failed: ${text}`);
      this.hooks.onIncomingFailed?.(text);
    }
  }

  private onGuestFault(vcpu: number, page: number): void {
    const incoming = this.incoming;
    if (incoming === null) {
      this.vcpus?.wakePage(page);
      return;
    }
    incoming.onGuestFault(vcpu, page);
  }

  // ---- lifetime -----------------------------------------------------------------------------

  /** Stops everything: migrations, vCPU threads, timers; writes a shared memory file back. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = (async () => {
      if (this.driverTimer !== null) clearInterval(this.driverTimer);
      this.driverTimer = null;
      this.outgoing?.cancel();
      if (this.outgoing?.status === 'completed') await this.outgoing.whenDelivered(DELIVERY_WAIT_MS);
      await this.incoming?.close();
      await this.vcpus?.close();
      writeBackBackendFile(this.config.memoryBackend, this.machine.backing);
    })();
    return this.closing;
  }
}
