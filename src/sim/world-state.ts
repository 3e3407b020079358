/**
 * The state and wiring of a simulated world (world.ts): the scheduler, the link, the engines,
 * the guest runner and what a run records, connected in the constructor. The handlers the
 * wiring calls live in the subclasses (world-effects.ts, world.ts). Pure: no timers, no I/O.
 */
import { NS_PER_MS } from '../lib/units.ts';
import type { DestPort, EndReason, EngineFactory, SourcePort } from './engine-ports.ts';
import { GuestRunner } from './guest-runner.ts';
import { HintGate } from './hint-gate.ts';
import { Link } from './link.ts';
import type { Machine } from './machine.ts';
import type { Scenario } from './scenario/scenario.ts';
import { Scheduler, type ScheduledEvent } from './scheduler.ts';
import { StoreWatch } from './store-watch.ts';
import { DestinationFaults } from './dest-faults.ts';
import type { StatusChange } from './checkers/status-and-queues.ts';
import { TraceEvents } from './trace-events.ts';
import type { TraceWriter } from './trace.ts';
import { WorldProgress } from './world-progress.ts';
import type { Refusal } from './world-guest-events.ts';

/** Bytes the shell lets queue on the stream after the postcopy switch. */
export const STREAM_QUEUE_BYTES_MAX = 128 * 1024;
/** Wire bytes of one postcopy pump (bounds the pages one pump scans, hence its scan time). */
export const POSTCOPY_PUMP_BYTES_MAX = 32 * 1024;
/**
 * How long one precopy iteration sends: QEMU's ram_save_iterate leaves its loop when
 * `(now - t0) / 1000000 > MAX_WAIT` (50), in whole milliseconds, so after 51 ms.
 */
export const PRECOPY_ITERATION_NS = 51 * NS_PER_MS;
/** How long a cancelled migration may take to end before the run gives up on it. */
export const CANCEL_GRACE_NS = 1_000 * NS_PER_MS;
/** Bound on events of one run (a run that needs more is a bug). */
export const WORLD_EVENTS_MAX = 2_000_000_000;

export abstract class WorldState {
  readonly scenario: Scenario;
  readonly machine: Machine;
  readonly scheduler: Scheduler;
  readonly trace: TraceEvents;
  readonly link: Link<Uint8Array, Uint8Array>;
  readonly source: SourcePort;
  readonly destination: DestPort;
  readonly guestRunner: GuestRunner;
  readonly progress: WorldProgress;
  /** Status changes of each side, in order. */
  readonly sourceStatuses: StatusChange[] = [];
  readonly destinationStatuses: StatusChange[] = [];
  /** When `migrate` was issued, the guest stopped, and the migration ended; -1 before. */
  migrationStartNs = -1;
  switchoverNs = -1;
  migrationEndNs = -1;
  /** Whether the source went postcopy-active. */
  postcopy = false;
  /** Whether migrate-start-postcopy was issued. */
  postcopyRequested = false;
  /** Why the run ended (null while it runs). */
  endReason: EndReason | null = null;
  /** A refusal or failure text (QMP error-desc), when there is one. */
  errorText: string | null = null;
  /** Why the destination refused postcopy-ram, when it did (see Refusal). */
  refusal: Refusal | null = null;
  /** A destination device that could not finish loading once the guest ran there. */
  deviceError: string | null = null;
  /** Destination faults on pages hinted and free in the guest at the switchover. */
  faultsOnHinted = 0;
  /** Hints that reached the source engine once it was postcopy-active (before its vm_stop). */
  hintsAfterSwitch = 0;
  /** When a stop-guest with latency takes effect; -1 when none is pending. */
  protected stopAtNs = -1;
  /** Guest free memory just before `migrate`. */
  freeBytesBefore = 0;
  /** Pages missing on the destination when a precopy guest started there; null otherwise. */
  missingAtPrecopyResume: { start: number; end: number }[] | null = null;
  /** Placements and unplugged accesses, watched on the engines' stores. */
  readonly stores: StoreWatch;
  /** The destination host's first writes into its RAM's 2 MiB regions (host.destination-fault), or null. */
  readonly destinationFaults: DestinationFaults | null;
  /** Until when the destination's receiver is stalled in such faults, ns. */
  protected destinationFaultUntilNs = 0;
  /** The destination's extra device load at a precopy completion (host.advised-device-load), ns: 0 without postcopy-ram. */
  protected readonly advisedDeviceLoadNs: number;
  /** High-water marks of the link's queues, in messages. */
  streamQueueHighWater = 0;
  /** Main-stream bytes the destination has decoded (the source's chunk pool reuses them). */
  protected streamConsumedBytes = 0;
  returnQueueHighWater = 0;
  /** DONEs the guest's balloon driver had acted on at the last tick. */
  protected donesSeen = 0;
  /** The next pump event. */
  protected pumpEvent: ScheduledEvent | null = null;
  /** The pending `written` report of a completion without a return path. */
  protected writtenEvent: ScheduledEvent | null = null;
  /** QEMU's bitmap_mutex against free page hints (scenario devices.balloon.hint-apply), or null. */
  readonly hintGate: HintGate | null;

  constructor(scenario: Scenario, machine: Machine, engines: EngineFactory, trace: TraceWriter, seed: number) {
    this.scenario = scenario;
    this.machine = machine;
    this.scheduler = new Scheduler({ seed });
    this.trace = new TraceEvents(trace);
    // A shared host (scenario `host`) slows the stream while a hinting vCPU competes for it.
    const hostCpu = machine.hostCpu;
    const stream = hostCpu === null
      ? scenario.link.stream
      : { ...scenario.link.stream, scanCostNs: (pages: number) => hostCpu.scanCostNs(pages) };
    this.link = new Link<Uint8Array, Uint8Array>(this.scheduler, 'migration', { stream, returnPath: scenario.link.returnPath });
    hostCpu?.attach(this.link.stream);
    this.link.stream.connect({ deliver: (bytes, _size, now) => this.onStreamBytes(bytes, now) });
    this.link.returnPath.connect({ deliver: (bytes, _size, now) => this.onReturnPathBytes(bytes, now) });
    this.source = engines.source(machine, scenario, {
      precopyNotify: (reason, now, running) => this.trace.notifier(now, reason, running),
      consumedStreamBytes: () => this.streamConsumedBytes,
    });
    this.destination = engines.destination(machine, scenario);
    this.guestRunner = new GuestRunner({
      guest: machine.guest,
      trace: this.trace,
      isTrapping: () => this.destination.status === 'postcopy-active' || this.destination.status === 'postcopy-paused',
      isReceived: (p) => machine.received.isReceived(p),
      fault: (vcpu, page, now) => this.onFault(vcpu, page, now),
      kernelPages: machine.kernelPages,
      onKernelPagesReady: (now) => this.activateDestinationDevices(now),
    });
    this.progress = new WorldProgress(this.trace);
    this.hintGate = scenario.balloon?.hintApply === 'between-iterations' ? new HintGate() : null;
    const faultNs = scenario.host?.destinationFaultNs ?? 0;
    this.destinationFaults = faultNs > 0 ? new DestinationFaults(machine.pageCount, faultNs) : null;
    this.advisedDeviceLoadNs = scenario.capabilities['postcopy-ram'] ? (scenario.host?.advisedDeviceLoadNs ?? 0) : 0;
    this.stores = new StoreWatch(machine, () => this.destination.status === 'postcopy-active', this.destinationFaults);
    this.trace.run(0, scenario.name, seed, machine.pageCount, scenario.guest.backing);
  }

  protected settledAtNs(): number {
    return this.migrationEndNs < 0 ? this.scheduler.nowNs : this.migrationEndNs + this.scenario.settleNs;
  }

  /** The link's deliveries and the guest's faults (world.ts). */
  protected abstract onStreamBytes(bytes: Uint8Array, nowNs: number): void;
  protected abstract onReturnPathBytes(bytes: Uint8Array, nowNs: number): void;
  protected abstract onFault(vcpu: number, page: number, nowNs: number): boolean;
  /** The destination's ring pages are present (world-effects.ts). */
  protected abstract activateDestinationDevices(nowNs: number): void;
}
