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
 *
 * The class is built in layers: world-state.ts holds the state and wires the parts together,
 * world-effects.ts carries out the engines' effects, and this file drives the run (migration
 * control, the guest's clock, the stream pump, the link's deliveries and the balloon's hints).
 */
import { isFinalStatus } from '../core/status.ts';
import { assert } from '../lib/assert.ts';
import { NS_PER_MS, TARGET_PAGE_SIZE } from '../lib/units.ts';
export type { EndReason, EngineFactory, WorldSourceHooks } from './engine-ports.ts';
import { MAX_PAGE_ORDER } from '../guest/allocator/buddy.ts';
import type { GatedHint } from './hint-gate.ts';
import { traceRequests } from './store-watch.ts';
import { probePostcopy, refusalText } from './world-guest-events.ts';
export type { Refusal } from './world-guest-events.ts';
import { WorldEffects } from './world-effects.ts';
import { CANCEL_GRACE_NS, POSTCOPY_PUMP_BYTES_MAX, PRECOPY_ITERATION_NS, STREAM_QUEUE_BYTES_MAX, WORLD_EVENTS_MAX } from './world-state.ts';
export { CANCEL_GRACE_NS, POSTCOPY_PUMP_BYTES_MAX, PRECOPY_ITERATION_NS, STREAM_QUEUE_BYTES_MAX, WORLD_EVENTS_MAX } from './world-state.ts';

export class World extends WorldEffects {
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
    hostCpu.update(nowNs, streamBusy, guestBusy, nowNs < this.destinationFaultUntilNs);
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
  protected stepGuest(nowNs: number): void {
    this.guestRunner.step(nowNs);
    if (this.guestRunner.running) this.machine.devices.poll(this.guestRunner.side, nowNs);
  }

  // ---- pumping the stream ---------------------------------------------------------------------

  /** Makes sure a pump is scheduled no later than `atNs`. */
  protected schedulePump(atNs: number): void {
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
    const budget = Math.max(TARGET_PAGE_SIZE * 2, postcopy ? Math.min(POSTCOPY_PUMP_BYTES_MAX, room) : Math.floor(PRECOPY_ITERATION_NS * bytesPerNs));
    // An iteration that this pump does not go on with has ended: the hints it held go first.
    if (this.hintGate !== null && !this.source.iterationGoesOn(budget, nowNs)) this.applyReleased(this.hintGate.release(), nowNs);
    const result = this.source.pump(budget, nowNs);
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

  // ---- the link's deliveries ----------------------------------------------------------------------

  protected onStreamBytes(bytes: Uint8Array, nowNs: number): void {
    this.stores.loadingStream = true;
    try {
      const result = this.destination.onBytes('main', bytes, nowNs);
      // A precopy completion after a postcopy advise: the destination takes longer to load the
      // devices (host.advised-device-load), and what follows the load (SHUT, the guest's start) waits.
      if (this.advisedDeviceLoadNs > 0 && result.effects.some((e) => e.kind === 'status' && e.to === 'completed')) {
        const loaded = { ...result, effects: [...result.effects] };
        this.scheduler.at(nowNs + this.advisedDeviceLoadNs, (now) => this.apply('destination', loaded, now), 'device-load');
      } else this.apply('destination', result, nowNs);
    } finally {
      this.stores.loadingStream = false;
    }
    // The destination's first writes into fresh 2 MiB regions stall its reads, and the stream.
    const stallNs = this.destinationFaults?.takeStallNs() ?? 0;
    if (stallNs > 0) {
      const untilNs = nowNs + Math.ceil(stallNs);
      this.link.stream.stall(nowNs, untilNs);
      this.destinationFaultUntilNs = Math.max(this.destinationFaultUntilNs, untilNs);
    }
    // The decoder copies what it keeps (a record cut by the chunk's end): the chunk is free.
    this.streamConsumedBytes += bytes.length;
  }

  protected onReturnPathBytes(bytes: Uint8Array, nowNs: number): void {
    if (isFinalStatus(this.source.status)) return;
    traceRequests(this.trace, bytes, nowNs);
    this.apply('source', this.source.onReturnPath(bytes, nowNs), nowNs);
    this.schedulePump(nowNs);
  }

  protected onFault(vcpu: number, page: number, nowNs: number): boolean {
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
    if (this.hintGate !== null && this.source.iterationOpen) return this.hintGate.hold({ startPage, pageCount, cmdId }); // Waits for the iteration's end.
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
  protected applyReleased(hints: readonly GatedHint[], nowNs: number): void {
    for (const h of hints) {
      if (isFinalStatus(this.source.status)) return;
      this.applyHintNow(h.startPage, h.pageCount, h.cmdId, nowNs);
    }
  }
}
