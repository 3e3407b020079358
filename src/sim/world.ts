/**
 * The simulated world of one scenario run: a seeded scheduler on a virtual clock, a link
 * (migration stream one way, return path the other), the source and destination engines, the
 * guest and the devices, wired as DESIGN §3's simulated shell. Pure: no timers, no I/O.
 *
 * Timeline of a run:
 *
 *   0                 the guest boots (drivers probe, virtio-mem plugs) and runs its workload,
 *                     one step per `guest.tick`
 *   migration.start   `migrate`: source.start; the stream flows; hints, syncs, page requests
 *   stop-guest        the source stops the guest (switchover), after the scenario's stop latency
 *                     (the guest, and its balloon, run on meanwhile); memory is snapshotted for
 *                     audit
 *   run-guest (dest)  the guest moves to the destination's RAM and devices and runs on
 *   end of migration  both engines final; the guest runs `settle` longer (DONE reaches the
 *                     driver, hinted memory comes back); then the run ends
 *   time-limit        a migration still running is cancelled (QMP migrate_cancel)
 *
 * The shell loop: the stream is pumped when the engine is ready and the wire has room. In
 * precopy a pump gets QEMU's iteration-sized budget (PRECOPY_ITERATION_NS of wire); after
 * the postcopy switch at most POSTCOPY_PUMP_BYTES_MAX, and only while less than
 * STREAM_QUEUE_BYTES_MAX is queued, so a requested page waits for little. Scanned pages are
 * charged to the sender's CPU before its bytes are queued.
 * Bytes arrive after serialization and latency; the return path carries the destination's
 * messages back. Effects are carried out in the order given.
 *
 * The scenario's pressure phase (a memory-hungry second workload) starts at its time on
 * whichever side the guest runs. From `migrate` on, the audit follows which memory the guest
 * gave up (frees, and writes after them), so a hinted page the guest reused but has not written
 * yet may differ at the end (memory-audit.ts).
 *
 * What it deliberately doesn't do: model the guest's CPU throttle (auto-converge), multifd,
 * preempt channels or link faults; judge the run (world-report.ts and the checkers do).
 */
import type { Effect, StepResult } from '../core/engine-types.ts';
import { wireBytesOf } from '../core/source/source-types.ts';
import { isFinalStatus, type MigrationStatus } from '../core/status.ts';
import { assert } from '../lib/assert.ts';
import { NS_PER_MS, TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { DestPort, EndReason, EngineFactory, SourcePort } from './engine-ports.ts';
export type { EndReason, EngineFactory, WorldSourceHooks } from './engine-ports.ts';
import { MAX_PAGE_ORDER } from '../guest/allocator/buddy.ts';
import { GuestRunner } from './guest-runner.ts';
import { HintGate, type GatedHint } from './hint-gate.ts';
import { Link } from './link.ts';
import type { Machine } from './machine.ts';
import type { Scenario } from './scenario/scenario.ts';
import { Scheduler, type ScheduledEvent } from './scheduler.ts';
import { StoreWatch, traceRequests } from './store-watch.ts';
import type { StatusChange } from './checkers/status-and-queues.ts';
import { TraceEvents } from './trace-events.ts';
import type { TraceWriter } from './trace.ts';
import { WorldProgress } from './world-progress.ts';
import { pressureWorkload, probePostcopy, refusalText, type Refusal } from './world-guest-events.ts';
export type { Refusal } from './world-guest-events.ts';

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

export class World {
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
  private stopAtNs = -1;
  /** Guest free memory just before `migrate`. */
  freeBytesBefore = 0;
  /** Pages missing on the destination when a precopy guest started there; null otherwise. */
  missingAtPrecopyResume: { start: number; end: number }[] | null = null;
  /** Placements and unplugged accesses, watched on the engines' stores. */
  readonly stores: StoreWatch;
  /** High-water marks of the link's queues, in messages. */
  streamQueueHighWater = 0;
  /** Main-stream bytes the destination has decoded (the source's chunk pool reuses them). */
  private streamConsumedBytes = 0;
  returnQueueHighWater = 0;
  /** DONEs the guest's balloon driver had acted on at the last tick. */
  private donesSeen = 0;
  /** The next pump event. */
  private pumpEvent: ScheduledEvent | null = null;
  /** The pending `written` report of a completion without a return path. */
  private writtenEvent: ScheduledEvent | null = null;
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
    this.hintGate = scenario.balloon?.hintApply === 'between-iterations' ? new HintGate(PRECOPY_ITERATION_NS) : null;
    this.stores = new StoreWatch(machine, () => this.destination.status === 'postcopy-active');
    this.trace.run(0, scenario.name, seed, machine.pageCount, scenario.guest.backing);
  }

  /** Runs the scenario to its end. */
  run(): void {
    const s = this.scenario;
    this.scheduler.at(0, (now) => this.onTick(now), 'tick');
    this.scheduler.at(s.migrationStartNs, (now) => this.startMigration(now), 'migrate');
    if (s.postcopySwitch.kind === 'at') this.scheduler.at(s.migrationStartNs + s.postcopySwitch.afterStartNs, (now) => this.requestPostcopy(now), 'postcopy');
    this.scheduler.at(s.migrationStartNs + s.timeLimitNs, (now) => this.onTimeLimit(now), 'time-limit');
    if (s.pressure?.start.kind === 'at') this.scheduler.at(s.migrationStartNs + s.pressure.start.afterStartNs, (now) => this.startPressure(now), 'pressure');
    const result = this.scheduler.runUntil(() => this.endReason !== null && this.scheduler.nowNs >= this.settledAtNs(), WORLD_EVENTS_MAX);
    if (this.endReason === null) this.endReason = 'stuck';
    this.trace.end(this.scheduler.nowNs, this.source.status, this.endReason);
    assert(result.reason !== 'max-events', `run exceeded ${WORLD_EVENTS_MAX} events`);
  }

  private settledAtNs(): number {
    return this.migrationEndNs < 0 ? this.scheduler.nowNs : this.migrationEndNs + this.scenario.settleNs;
  }

  // ---- migration control --------------------------------------------------------------------

  private startMigration(nowNs: number): void {
    const { machine, scenario } = this;
    this.migrationStartNs = nowNs;
    this.freeBytesBefore = machine.guest.freeBytes();
    if (machine.guest.probeErrors.length > 0) return this.refuse(nowNs, machine.guest.probeErrors.map((e) => e.message).join('; '));
    if (scenario.capabilities['postcopy-ram']) {
      // The destination enables postcopy-ram before `migrate` (migrate-set-capabilities while
      // inmigrate): its postcopy probe runs the notifiers, and a veto fails the command.
      this.refusal = probePostcopy(machine.devices.postcopyNotify('probe'));
      if (this.refusal !== null) return this.refuse(nowNs, refusalText(this.refusal));
    }
    machine.devices.setSourceMigrating(true);
    machine.audit.setUnplugged(machine.devices.unpluggedPages());
    this.startSourceAudit();
    this.apply('source', this.source.start(nowNs), nowNs);
    this.schedulePump(nowNs);
  }

  /** Guest accesses (unplugged memory) and which content the guest gives up (frees, writes). */
  private startSourceAudit(): void {
    const { audit, guest, guestMemory } = this.machine;
    const allocator = guest.allocator;
    audit.startSourceAudit((visit) => {
      for (let order = 0; order <= MAX_PAGE_ORDER; order++) allocator.forEachFreeBlock(order, (pfn) => visit(pfn, 2 ** order));
    });
    allocator.onFree = (pfn, order) => audit.onGuestFree(pfn, 2 ** order);
    guestMemory.beforeAccess = (first, last, write) => {
      audit.onGuestAccess(first, last);
      if (write) audit.onSourceWrite(first, last);
    };
  }

  private refuse(nowNs: number, text: string): void {
    this.errorText = text;
    this.endReason = 'refused';
    this.migrationEndNs = nowNs;
  }

  private requestPostcopy(nowNs: number): void {
    if (this.postcopyRequested || isFinalStatus(this.source.status)) return;
    this.postcopyRequested = true;
    const result = this.source.startPostcopy(nowNs);
    if (typeof result === 'string') {
      this.trace.mark(nowNs, 'source', `migrate-start-postcopy refused: ${result}`);
      return;
    }
    this.apply('source', result, nowNs);
    this.schedulePump(nowNs);
  }

  private onTimeLimit(nowNs: number): void {
    if (this.endReason !== null || isFinalStatus(this.source.status) || this.source.status === 'none') return;
    this.trace.mark(nowNs, 'source', 'time-limit: migrate_cancel');
    this.apply('source', this.source.cancel(nowNs), nowNs);
    // A cancel that does not end the migration within a second of virtual time ends the run.
    this.scheduler.at(nowNs + CANCEL_GRACE_NS, (now) => {
      if (this.endReason !== null) return;
      this.endReason = 'stuck';
      this.migrationEndNs = now;
    }, 'cancel-grace');
  }

  // ---- the guest's clock ----------------------------------------------------------------------

  private onTick(nowNs: number): void {
    if (this.migrationStartNs >= 0 && !isFinalStatus(this.source.status)) {
      this.apply('source', this.source.tick(nowNs), nowNs);
      this.sampleProgress(nowNs);
      this.schedulePump(nowNs);
    }
    this.staleFaultsTick(nowNs);
    this.stepGuest(nowNs);
    this.traceDones(nowNs);
    this.updateHostCpu(nowNs);
    if (this.endReason === null || nowNs < this.settledAtNs()) {
      this.scheduler.at(nowNs + this.scenario.guest.tickNs, (now) => this.onTick(now), 'tick');
    }
  }

  /**
   * Which threads keep the host busy now (host-cpu.ts): the stream while the source has sends
   * in flight or would pump, the vCPU while its hint driver is in a round.
   */
  private updateHostCpu(nowNs: number): void {
    const hostCpu = this.machine.hostCpu;
    if (hostCpu === null) return;
    const migrating = this.migrationStartNs >= 0 && !isFinalStatus(this.source.status);
    const stream = this.link.stream;
    const streamBusy = migrating && (stream.senderFreeAtNs() > nowNs || stream.wireFreeAtNs() > nowNs);
    const guestBusy = this.guestRunner.running && (this.machine.guest.balloon?.hinting?.inRound ?? false);
    hostCpu.update(nowNs, streamBusy, guestBusy);
  }

  /** Stale-page faults (stale-faults.ts): late hints a sync has passed, the vCPU's TLB flush. */
  private staleFaultsTick(nowNs: number): void {
    const faults = this.machine.staleFaults;
    if (faults === null) return;
    if (this.migrationStartNs >= 0 && !isFinalStatus(this.source.status)) this.applyReleased(faults.release(this.progress.syncCount), nowNs);
    if (this.guestRunner.running) faults.onGuestTick(this.machine.guest.balloon?.hinting?.inRound ?? false);
  }

  /** Traces each DONE the guest's balloon driver acts on. */
  private traceDones(nowNs: number): void {
    const dones = this.machine.guest.balloon?.hinting?.stats().dones ?? 0;
    if (dones === this.donesSeen) return;
    this.donesSeen = dones;
    this.trace.done(nowNs, this.guestRunner.side, dones);
  }

  /** One guest step now, then device work on the guest's side. */
  private stepGuest(nowNs: number): void {
    this.guestRunner.step(nowNs);
    if (this.guestRunner.running) this.machine.devices.poll(this.guestRunner.side, nowNs);
  }

  // ---- pumping the stream ---------------------------------------------------------------------

  /** Makes sure a pump is scheduled no later than `atNs`. */
  private schedulePump(atNs: number): void {
    const at = Math.max(atNs, this.scheduler.nowNs);
    if (this.pumpEvent !== null && this.pumpEvent.pending) {
      if (this.pumpEvent.timeNs <= at) return;
      this.scheduler.cancel(this.pumpEvent);
    }
    this.pumpEvent = this.scheduler.at(at, (now) => this.onPump(now), 'pump');
  }

  private onPump(nowNs: number): void {
    this.pumpEvent = null;
    if (isFinalStatus(this.source.status)) return;
    if (this.stopAtNs >= 0) return; // The guest is being stopped: stopGuest pumps next.
    const readiness = this.source.readiness(nowNs);
    if (readiness.kind !== 'pump' && this.hintGate !== null) this.applyReleased(this.hintGate.release(), nowNs);
    if (readiness.kind === 'idle') return;
    if (readiness.kind === 'wait') return this.schedulePump(readiness.untilNs);
    const stream = this.link.stream;
    const senderFree = stream.senderFreeAtNs();
    if (senderFree > nowNs) return this.schedulePump(senderFree);
    const bytesPerNs = this.scenario.link.stream.bandwidthBytesPerSec / 1e9;
    const backlogNs = stream.wireFreeAtNs() - nowNs;
    const postcopy = this.source.status === 'postcopy-active';
    const queueNs = postcopy ? STREAM_QUEUE_BYTES_MAX / bytesPerNs : NS_PER_MS;
    if (backlogNs > queueNs) return this.schedulePump(stream.wireFreeAtNs() - Math.floor(queueNs / 2));
    // A pump's budget is a bound the engine may pass by one record; two pages is the least useful.
    const room = STREAM_QUEUE_BYTES_MAX - Math.floor(Math.max(0, backlogNs) * bytesPerNs);
    const budget = postcopy ? Math.min(POSTCOPY_PUMP_BYTES_MAX, room) : Math.floor(PRECOPY_ITERATION_NS * bytesPerNs);
    if (this.hintGate !== null) {
      const precopy = this.source.status === 'active' && this.guestRunner.running;
      this.applyReleased(precopy ? this.hintGate.beginPump(nowNs) : this.hintGate.release(), nowNs);
    }
    const result = this.source.pump(Math.max(budget, TARGET_PAGE_SIZE * 2), nowNs);
    this.apply('source', result, nowNs);
    if (!isFinalStatus(this.source.status)) this.sampleProgress(nowNs);
    this.schedulePump(Math.max(nowNs + 1, stream.senderFreeAtNs()));
  }

  /** A progress row per new sync; the after-syncs postcopy rule fires on the sync it names. */
  private sampleProgress(nowNs: number): void {
    this.progress.sample(this.source.queryMigrate(nowNs), nowNs);
    const rule = this.scenario.postcopySwitch;
    if (rule.kind === 'after-syncs' && this.progress.syncCount >= rule.syncCount) this.requestPostcopy(nowNs);
  }

  // ---- effects ----------------------------------------------------------------------------------

  /** Carries out an engine's effects, in order. */
  apply(side: 'source' | 'destination', result: StepResult, nowNs: number): void {
    if (side === 'source' && result.pagesScanned > 0) this.link.stream.scanPages(result.pagesScanned);
    for (const effect of result.effects) {
      if (side === 'source') this.applySource(effect, nowNs);
      else this.applyDestination(effect, nowNs);
    }
    if (side === 'source' && this.source.awaitingWritten) this.scheduleWritten();
  }

  /**
   * Without a return path QEMU's completion ends with a blocking write of the last pass
   * (qemu_fflush), so downtime and total time end when the wire has serialized the last byte:
   * `written` is reported then (again later if a stall or a rate change moved that time).
   */
  private scheduleWritten(): void {
    if (this.writtenEvent !== null && this.writtenEvent.pending) return;
    this.writtenEvent = this.scheduler.at(this.link.stream.wireFreeAtNs(), (now) => {
      this.writtenEvent = null;
      if (!this.source.awaitingWritten) return;
      if (this.link.stream.wireFreeAtNs() > now) return this.scheduleWritten();
      this.apply('source', this.source.written(now), now);
    }, 'written');
  }

  private applySource(effect: Effect, nowNs: number): void {
    switch (effect.kind) {
      case 'send': {
        assert(effect.channel === 'main', `the simulated source sends on ${effect.channel}`);
        const size = wireBytesOf(effect);
        const sent = this.link.stream.send(effect.data, size);
        if (!sent.ok) this.apply('source', this.source.channelError(sent.error.message, nowNs), nowNs);
        this.streamQueueHighWater = Math.max(this.streamQueueHighWater, this.link.stream.queuedMessages);
        return;
      }
      case 'status':
        return this.onSourceStatus(effect.from, effect.to, nowNs);
      case 'stop-guest':
        if (this.scenario.stopLatencyNs > 0) {
          this.stopAtNs = nowNs + this.scenario.stopLatencyNs;
          this.scheduler.at(this.stopAtNs, (now) => this.stopGuest(now), 'stop-guest');
          return;
        }
        return this.stopGuest(nowNs);
      case 'run-guest':
        // A failed or cancelled migration gives the guest back to the source.
        if (!this.guestRunner.running && this.guestRunner.side === 'source') this.guestRunner.resume('source', nowNs);
        return;
      case 'event':
        return this.trace.event(nowNs, 'source', effect.name);
      case 'mark':
        return this.trace.mark(nowNs, 'source', effect.name, effect.detail);
      case 'throttle':
        return this.trace.mark(nowNs, 'source', `throttle ${effect.percent}%`);
      case 'page-ready':
        return assert(false, 'the source emitted page-ready');
    }
  }

  /** The source's guest stops (stop-guest, after the scenario's stop latency). */
  private stopGuest(nowNs: number): void {
    this.stopAtNs = -1;
    // Cancelled or failed meanwhile: the guest keeps running; the engine goes on.
    if (isFinalStatus(this.source.status) || this.source.status === 'cancelling') return this.schedulePump(nowNs);
    if (this.hintGate !== null) this.applyReleased(this.hintGate.release(), nowNs);
    if (this.machine.hostCpu !== null) this.link.stream.chargeSender(this.machine.hostCpu.switchoverNs);
    this.switchoverNs = nowNs;
    this.guestRunner.stop(nowNs);
    this.machine.audit.snapshotAtSwitch((p) => this.machine.guest.pageIsFreeInGuest(p));
    this.schedulePump(nowNs);
  }

  private onSourceStatus(from: MigrationStatus, to: MigrationStatus, nowNs: number): void {
    this.sourceStatuses.push({ from, to });
    this.trace.status(nowNs, 'source', from, to);
    if (to === 'postcopy-active' && !this.postcopy) {
      this.postcopy = true;
      // QEMU sets postcopy-active before vm_stop: the balloon's iothread may still take hints
      // kicked before the stop (the window `ignore-after-switch` is about).
      if (this.guestRunner.running && this.guestRunner.side === 'source') this.machine.devices.poll('source', nowNs, true);
    }
    if (!isFinalStatus(to)) return;
    this.machine.devices.setSourceMigrating(false);
    this.progress.sample(this.source.queryMigrate(nowNs), nowNs);
    if (to !== 'completed') this.apply('destination', this.destination.onChannelClosed('main', nowNs), nowNs);
    this.migrationEndNs = nowNs;
    this.endReason = to === 'completed' ? 'completed' : to === 'cancelled' ? (this.scheduler.nowNs >= this.migrationStartNs + this.scenario.timeLimitNs ? 'time-limit' : 'cancelled') : 'failed';
    if (to === 'failed' && this.errorText === null) this.errorText = this.source.queryMigrate(nowNs)['error-desc'] ?? 'migration failed';
  }

  private applyDestination(effect: Effect, nowNs: number): void {
    switch (effect.kind) {
      case 'send': {
        const sent = this.link.returnPath.send(effect.data, effect.data.length);
        this.returnQueueHighWater = Math.max(this.returnQueueHighWater, this.link.returnPath.queuedMessages);
        if (!sent.ok) this.trace.mark(nowNs, 'destination', sent.error.code);
        return;
      }
      case 'status':
        this.destinationStatuses.push({ from: effect.from, to: effect.to });
        this.trace.status(nowNs, 'destination', effect.from, effect.to);
        if (effect.to === 'failed' || effect.to === 'postcopy-paused') this.onDestinationError(nowNs);
        return;
      case 'run-guest':
        return this.moveGuestToDestination(nowNs);
      case 'page-ready':
        if (this.guestRunner.onPageReady(effect.pageIndex, nowNs)) this.stepSoon(nowNs);
        return;
      case 'event':
        return this.trace.event(nowNs, 'destination', effect.name);
      case 'mark':
        return this.trace.mark(nowNs, 'destination', effect.name, effect.detail);
      case 'stop-guest':
      case 'throttle':
        return assert(false, `the destination emitted ${effect.kind}`);
    }
  }

  /**
   * The destination failed (QEMU exits) or paused: its connection goes away, which the source
   * sees as a channel error (failed in precopy, paused in postcopy). A paused source is then
   * cancelled: recovery is not modelled.
   */
  private onDestinationError(nowNs: number): void {
    const text = this.destination.lastError?.message ?? 'destination error';
    this.trace.mark(nowNs, 'destination', `error: ${text}`);
    // After the source ended (a cancel closes the stream) the destination's error is expected.
    if (this.errorText === null && !isFinalStatus(this.source.status)) this.errorText = `destination: ${text}`;
    this.scheduler.at(nowNs, (now) => {
      if (isFinalStatus(this.source.status)) return;
      this.apply('source', this.source.channelError(`destination: ${text}`, now), now);
      if (!isFinalStatus(this.source.status)) this.apply('source', this.source.cancel(now), now);
    }, 'destination-error');
  }

  /** The destination starts the guest: it moves there with its drivers. */
  private moveGuestToDestination(nowNs: number): void {
    const { machine } = this;
    if (this.destination.status !== 'postcopy-active') {
      this.missingAtPrecopyResume = [];
      for (const r of machine.received.missingRanges()) this.missingAtPrecopyResume.push({ start: r.start, end: r.end });
    }
    machine.devices.switchPorts('destination');
    machine.guest.allocator.onFree = null;
    machine.audit.startDestinationAudit(machine.sourceBacking, machine.destinationBacking);
    machine.guestMemory.retarget(machine.destinationBacking);
    machine.guestMemory.beforeAccess = (first, last, write) => {
      machine.audit.onGuestAccess(first, last);
      if (write) machine.audit.beforeDestinationWrite(first, last);
    };
    machine.destinationDeviceMemory.beforeAccess = (first, last, write) => {
      if (write) machine.audit.beforeDestinationWrite(first, last);
    };
    this.guestRunner.resume('destination', nowNs);
    this.stepSoon(nowNs);
    const start = this.scenario.pressure?.start;
    if (start?.kind === 'after-resume') this.scheduler.at(nowNs + start.delayNs, (now) => this.startPressure(now), 'pressure');
  }

  /** The scenario's memory-hungry phase starts (see PressureRule). */
  private startPressure(nowNs: number): void {
    const rule = this.scenario.pressure;
    if (rule === null || (this.endReason !== null && nowNs >= this.settledAtNs())) return;
    this.guestRunner.startPressure(pressureWorkload(rule, this.machine.guest), nowNs);
    if (this.guestRunner.side === 'destination') this.stepSoon(nowNs);
  }

  /** The destination's ring pages are present: its devices finish loading. */
  private activateDestinationDevices(nowNs: number): void {
    const error = this.machine.devices.activateDestination();
    if (error === null) return;
    this.deviceError = error;
    this.trace.mark(nowNs, 'destination', `device load: ${error}`);
  }

  /** Runs a guest step at `nowNs` (a woken vCPU does not wait for the next tick). */
  private stepSoon(nowNs: number): void {
    this.scheduler.at(nowNs, (now) => this.stepGuest(now), 'wake');
  }

  // ---- the link's deliveries ----------------------------------------------------------------------

  private onStreamBytes(bytes: Uint8Array, nowNs: number): void {
    this.stores.loadingStream = true;
    try {
      this.apply('destination', this.destination.onBytes('main', bytes, nowNs), nowNs);
    } finally {
      this.stores.loadingStream = false;
    }
    // The decoder copies what it keeps (a record cut by the chunk's end): the chunk is free.
    this.streamConsumedBytes += bytes.length;
  }

  private onReturnPathBytes(bytes: Uint8Array, nowNs: number): void {
    if (isFinalStatus(this.source.status)) return;
    traceRequests(this.trace, bytes, nowNs);
    this.apply('source', this.source.onReturnPath(bytes, nowNs), nowNs);
    this.schedulePump(nowNs);
  }

  private onFault(vcpu: number, page: number, nowNs: number): boolean {
    if (this.machine.audit.hintedFreeAtSwitch(page)) this.faultsOnHinted++;
    const result = this.destination.onGuestFault(vcpu, page, nowNs);
    this.apply('destination', result, nowNs);
    return result.present;
  }

  /** Applies a hint from the source balloon to the source engine. */
  onHint(startPage: number, pageCount: number, cmdId: number): void {
    const nowNs = this.scheduler.nowNs;
    this.trace.hint(nowNs, startPage, pageCount, cmdId);
    if (this.migrationStartNs < 0 || isFinalStatus(this.source.status)) return;
    if (this.machine.staleFaults?.hold({ startPage, pageCount, cmdId }, this.progress.syncCount)) return; // late-hint
    if (this.hintGate?.offer({ startPage, pageCount, cmdId })) return; // Waits for the iteration's end.
    this.applyHintNow(startPage, pageCount, cmdId, nowNs);
  }

  private applyHintNow(startPage: number, pageCount: number, cmdId: number, nowNs: number): void {
    const faults = this.machine.staleFaults;
    if (faults !== null) {
      if (faults.drops(cmdId, (id) => this.machine.devices.sourceHintAccepts(id))) return;
      faults.onHintApplied(startPage, pageCount);
    }
    if (this.postcopy) this.hintsAfterSwitch++;
    this.machine.audit.onHint(startPage, pageCount);
    this.apply('source', this.source.applyHint(startPage, pageCount, nowNs), nowNs);
  }

  /** Applies hints the gate released (hint-gate.ts), unless the migration is over. */
  private applyReleased(hints: readonly GatedHint[], nowNs: number): void {
    for (const h of hints) {
      if (isFinalStatus(this.source.status)) return;
      this.applyHintNow(h.startPage, h.pageCount, h.cmdId, nowNs);
    }
  }
}
