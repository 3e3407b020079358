/**
 * How a simulated world (world.ts) carries out its engines' effects: sends onto the link,
 * status changes, stopping the guest on the source and starting it on the destination.
 * Pure: no timers, no I/O.
 */
import type { Effect, StepResult } from '../core/engine-types.ts';
import { wireBytesOf } from '../core/source/source-types.ts';
import { isFinalStatus, type MigrationStatus } from '../core/status.ts';
import { assert } from '../lib/assert.ts';
import type { GatedHint } from './hint-gate.ts';
import { pressureWorkload } from './world-guest-events.ts';
import { WorldState } from './world-state.ts';

export abstract class WorldEffects extends WorldState {
  /** The stream pump, the guest's step and released hints (world.ts). */
  protected abstract schedulePump(atNs: number): void;
  protected abstract stepGuest(nowNs: number): void;
  protected abstract applyReleased(hints: readonly GatedHint[], nowNs: number): void;

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
  protected startPressure(nowNs: number): void {
    const rule = this.scenario.pressure;
    if (rule === null || (this.endReason !== null && nowNs >= this.settledAtNs())) return;
    this.guestRunner.startPressure(pressureWorkload(rule, this.machine.guest), nowNs);
    if (this.guestRunner.side === 'destination') this.stepSoon(nowNs);
  }

  /** The destination's ring pages are present: its devices finish loading. */
  protected activateDestinationDevices(nowNs: number): void {
    const error = this.machine.devices.activateDestination();
    if (error === null) return;
    this.deviceError = error;
    this.trace.mark(nowNs, 'destination', `device load: ${error}`);
  }

  /** Runs a guest step at `nowNs` (a woken vCPU does not wait for the next tick). */
  private stepSoon(nowNs: number): void {
    this.scheduler.at(nowNs, (now) => this.stepGuest(now), 'wake');
  }
}
