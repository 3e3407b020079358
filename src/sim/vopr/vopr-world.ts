/**
 * The VOPR's world: the real SourceEngine and DestEngine over the simulated link (link.ts) on
 * the seeded scheduler, a tiny incrementer guest (QEMU's qtest idea: one page after the other
 * gets its counter bumped), and a supervisor that does what an operator's tooling would: retry
 * a failed precopy on a fresh destination, and recover a paused postcopy on a fresh connection
 * (DestEngine.migrateRecover + onChannelReplaced, SourceEngine.resume).
 *
 *   0 .. SAFETY_NS               faults of the plan fire (vopr-faults.ts; vopr-fire.ts)
 *   SAFETY_NS                    liveness: bandwidth restored, no more faults
 *   .. SAFETY_NS + LIVENESS_NS   the migration must have completed, or ended in an expected
 *                                outcome (a crash lost the guest), or the seed fails
 *
 * Guest memory is compact (one version per page); the incrementer's "byte 0" of a page is its
 * version minus its initial version, mod 256. The guest runs on exactly one side; a
 * destination guest faults on pages not received yet and waits for page-ready.
 *
 * What it deliberately doesn't do: devices, free page hinting, virtio-mem, preempt channels
 * (the scenario world covers those; this world is about faults and recovery).
 */
import { defaultCapabilities, type MigrationCapabilities } from '../../core/capabilities.ts';
import { DestEngine } from '../../core/dest/dest-engine.ts';
import type { Effect, StepResult } from '../../core/engine-types.ts';
import { SourceEngine } from '../../core/source/source-engine.ts';
import { wireBytesOf } from '../../core/source/source-types.ts';
import { isFinalStatus } from '../../core/status.ts';
import { Bitmap } from '../../lib/bitmap.ts';
import { Prng } from '../../lib/prng.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { DirtyLog } from '../../memory/dirty-log.ts';
import { RamBlockList } from '../../memory/ram-block.ts';
import { ReceivedMap } from '../../memory/received-map.ts';
import { Link } from '../link.ts';
import { Scheduler, type ScheduledEvent } from '../scheduler.ts';
import { Fnv1a64 } from '../trace.ts';
import { LIVENESS_NS, SAFETY_NS, type VoprPlan } from './vopr-faults.ts';

import {
  ATTEMPTS_MAX,
  DroppingBacking,
  MS,
  PAGE_BYTES,
  POSTCOPY_PUMP_BYTES_MAX,
  POSTCOPY_QUEUE_BYTES_MAX,
  PRECOPY_ITERATION_NS,
  RECOVERIES_MAX,
  SETTLE_NS,
  VOPR_PARAMETERS,
  type Attempt,
  type Connection,
  type VoprOutcome,
  type VoprWorldOptions,
} from './vopr-world-types.ts';

export { ATTEMPTS_MAX, RECOVERIES_MAX, VOPR_PARAMETERS, type Attempt, type Connection, type VoprOutcome, type VoprWorldOptions } from './vopr-world-types.ts';

export class VoprWorld {
  readonly plan: VoprPlan;
  readonly scheduler: Scheduler;
  readonly sourceStore: CompactBacking;
  /** Each page's version before the run (the incrementer's zero). */
  readonly baseVersions: Uint32Array;
  readonly attempts: Attempt[] = [];
  /** Fired faults and supervisor actions, one a line (printed with a failing seed). */
  readonly faultLog: string[] = [];
  /** Things that must never happen, as sentences. */
  readonly violations: string[] = [];
  readonly lines: string[] = [];
  outcome: VoprOutcome | null = null;
  endNs = -1;
  /** Where the guest is and whether it runs; the incrementer's cursor (walk index = page). */
  guestSide: 'source' | 'destination' = 'source';
  guestRunning = true;
  cursor = 0;
  /** Destination guest: the page its vCPU waits for (-1: none), pages it wrote, first-write mismatches. */
  waitingPage = -1;
  faults = 0;
  writtenAfterResume: Bitmap;
  firstWriteMismatch: Bitmap;
  /** Liveness phase reached: faults healed. */
  healed = false;
  bandwidthFraction = 1;
  /** Set by the cancel-at-switch fault: cancel at the next precopy stop-guest. */
  cancelAtSwitch = false;
  /** The source emitted run-guest while the guest ran at the destination (a split brain: a violation). */
  sourceRestartedGuest = false;
  /** Failures after the handover where the source kept the guest stopped and the operator ran `cont`. */
  operatorConts = 0;
  private readonly log: DirtyLog;
  private readonly blocks: RamBlockList;
  private readonly hash = new Fnv1a64();
  private readonly options: VoprWorldOptions;
  private readonly victim: number;
  private connections = 0;
  private pumpEvent: ScheduledEvent | null = null;

  constructor(plan: VoprPlan, options: VoprWorldOptions = {}) {
    this.plan = plan;
    this.options = options;
    this.scheduler = new Scheduler({ seed: plan.seed });
    const n = plan.pageCount;
    const rng = new Prng(plan.seed ^ 0x1417);
    this.sourceStore = new CompactBacking(n);
    this.baseVersions = new Uint32Array(n);
    for (let p = 0; p < n; p++) {
      const v = rng.int(0, 3); // Some zero pages (version 0), some data.
      if (v > 0) this.sourceStore.setVersion(p, v);
      this.baseVersions[p] = v;
    }
    this.victim = rng.int(0, n - 1);
    this.log = new DirtyLog(n);
    this.blocks = RamBlockList.single('pc.ram', n * PAGE_BYTES);
    this.writtenAfterResume = new Bitmap(n);
    this.firstWriteMismatch = new Bitmap(n);
  }

  get attempt(): Attempt | null {
    return this.attempts.length === 0 ? null : this.attempts[this.attempts.length - 1];
  }

  /** The run's trace hash (FNV-1a 64 over every trace line). */
  get traceHash(): string {
    return this.hash.digestHex();
  }

  /** One trace line at `nowNs`. */
  trace(nowNs: number, text: string): void {
    const line = `${nowNs} ${text}`;
    this.hash.updateString(line);
    this.hash.updateByte(10);
    if (this.options.keepLines === true) this.lines.push(line);
  }

  /** A fault or supervisor action: traced and kept for the report. */
  note(nowNs: number, text: string): void {
    this.faultLog.push(`${(nowNs / MS).toFixed(3)}ms ${text}`);
    this.trace(nowNs, `note ${text}`);
  }

  violate(nowNs: number, text: string): void {
    this.violations.push(`${(nowNs / MS).toFixed(3)}ms ${text}`);
    this.trace(nowNs, `violation ${text}`);
  }

  /** Runs the seed to its end; `fire` schedules the plan's faults (vopr-fire.ts). */
  run(fire: (world: VoprWorld) => void): void {
    const s = this.scheduler;
    s.at(0, (now) => this.onTick(now), 'tick');
    s.at(0, (now) => this.startAttempt(now), 'migrate');
    fire(this);
    s.at(SAFETY_NS, (now) => this.heal(now), 'liveness');
    const deadline = SAFETY_NS + LIVENESS_NS;
    s.runUntil(() => (this.endNs >= 0 && s.nowNs >= this.endNs + SETTLE_NS) || s.nowNs > deadline, 50_000_000);
    if (this.outcome === null) {
      const a = this.attempt;
      this.violate(s.nowNs, `liveness: no end by ${deadline / MS}ms (source ${a?.source.status}, destination ${a?.dest.status})`);
    }
    this.trace(s.nowNs, `end ${this.outcome?.kind ?? 'none'} cursor ${this.cursor} faults ${this.faults}`);
  }

  /** Ends the seed with `outcome` (the first one counts). */
  end(nowNs: number, outcome: VoprOutcome): void {
    if (this.outcome !== null) return;
    this.outcome = outcome;
    this.endNs = nowNs;
    this.trace(nowNs, `outcome ${outcome.kind}${'why' in outcome ? `: ${outcome.why}` : ''}`);
  }

  // ---- attempts, connections, recovery -----------------------------------------------------

  startAttempt(nowNs: number): void {
    if (this.outcome !== null || !this.guestRunning || this.guestSide !== 'source') return;
    if (this.attempts.length >= ATTEMPTS_MAX) return this.end(nowNs, { kind: 'failed-cleanly', why: `${ATTEMPTS_MAX} attempts failed` });
    const caps: MigrationCapabilities = { ...defaultCapabilities(), 'postcopy-ram': true, 'return-path': true };
    const parameters = VOPR_PARAMETERS;
    const log = this.log;
    const source = new SourceEngine({
      ram: { blocks: this.blocks, store: this.sourceStore, syncDirtyLog: (into) => into.syncFrom(log) },
      hooks: { precopyNotify: () => undefined, skipPages: () => null, saveDevices: () => [] },
      capabilities: caps,
      parameters,
      payloadMode: 'version',
    });
    const n = this.plan.pageCount;
    const destStore = this.options.dropPageOnDestination === true ? new DroppingBacking(n, this.victim) : new CompactBacking(n);
    const received = new ReceivedMap(n);
    const dest = new DestEngine({
      ram: { blocks: this.blocks, store: destStore, received },
      hooks: { loadDevice: () => null, postcopyNotify: () => null, localZeroPages: () => null },
      vcpuCount: 1,
      capabilities: caps,
      payloadMode: 'version',
    });
    const attempt: Attempt = {
      index: this.attempts.length, source, dest, destStore, received, conn: null, sourceAlive: true, destAlive: true,
      recoveries: 0, sourceStatuses: [], destStatuses: [],
    };
    this.attempts.push(attempt);
    attempt.conn = this.connect(attempt);
    this.trace(nowNs, `migrate attempt ${attempt.index}`);
    this.applySource(attempt, source.start(nowNs), nowNs);
    const after = this.plan.postcopyAfterNs;
    if (after !== null) {
      this.scheduler.at(nowNs + after, (now) => {
        if (this.attempt !== attempt || !attempt.sourceAlive || isFinalStatus(source.status)) return;
        const r = source.startPostcopy(now);
        this.trace(now, `migrate-start-postcopy ${r.error?.message ?? 'ok'}`);
        this.applySource(attempt, r, now);
      }, 'postcopy');
    }
    this.schedulePump(nowNs);
  }

  private connect(attempt: Attempt): Connection {
    const p = this.plan;
    const rate = p.bandwidthBytesPerSec * this.bandwidthFraction;
    const link = new Link<Uint8Array, Uint8Array>(this.scheduler, `c${this.connections}`, {
      stream: { bandwidthBytesPerSec: rate, latencyNs: p.streamLatencyNs },
      returnPath: { bandwidthBytesPerSec: rate, latencyNs: p.returnLatencyNs },
    });
    const conn: Connection = { id: this.connections++, link, dead: false };
    link.stream.connect({
      deliver: (bytes, _size, now) => {
        if (conn.dead || !attempt.destAlive) return;
        this.applyDest(attempt, attempt.dest.onBytes('main', bytes, now).effects, now);
      },
    });
    link.returnPath.connect({
      deliver: (bytes, _size, now) => {
        if (conn.dead || !attempt.sourceAlive || isFinalStatus(attempt.source.status)) return;
        this.applySource(attempt, attempt.source.onReturnPath(now, bytes), now);
        this.schedulePump(now);
      },
    });
    return conn;
  }

  /** The connection is gone (a cut, a crash, a close): both live ends hear of it, once. */
  connectionLost(attempt: Attempt, conn: Connection, reason: string, nowNs: number): void {
    if (conn.dead) return;
    conn.dead = true;
    conn.link.stream.cutNow(nowNs);
    conn.link.returnPath.cutNow(nowNs);
    this.trace(nowNs, `connection ${conn.id} lost: ${reason}`);
    if (attempt.sourceAlive && !isFinalStatus(attempt.source.status)) this.applySource(attempt, attempt.source.channelError(nowNs, reason), nowNs);
    if (attempt.destAlive && !isFinalStatus(attempt.dest.status)) this.applyDest(attempt, attempt.dest.onChannelClosed('main', nowNs).effects, nowNs);
    this.afterLoss(attempt, nowNs);
  }

  /** Schedules what the operator does next: a recovery when both sides are paused. */
  afterLoss(attempt: Attempt, nowNs: number): void {
    if (attempt.source.status !== 'postcopy-paused' || this.outcome !== null) return;
    this.scheduler.at(nowNs + this.plan.retryDelayNs, (now) => this.recover(attempt, now), 'recover');
  }

  private recover(attempt: Attempt, nowNs: number): void {
    if (this.outcome !== null || this.attempt !== attempt || !attempt.sourceAlive || !attempt.destAlive) return;
    if (attempt.source.status !== 'postcopy-paused') return; // Recovered already.
    if (attempt.dest.status === 'failed' && this.guestSide === 'source') {
      return this.end(nowNs, { kind: 'guest-stranded', why: 'the source went postcopy-active, the destination failed before POSTCOPY_RUN' });
    }
    if (attempt.dest.status === 'completed' && this.guestSide === 'destination') {
      return this.end(nowNs, { kind: 'destination-completed-only', why: 'the connection broke after the destination finished, before SHUT' });
    }
    if (attempt.dest.status !== 'postcopy-paused') {
      return this.violate(nowNs, `recovery: source paused, destination ${attempt.dest.status}`);
    }
    if (attempt.recoveries >= RECOVERIES_MAX) return this.end(nowNs, { kind: 'failed-cleanly', why: `${RECOVERIES_MAX} recoveries` });
    attempt.recoveries++;
    this.note(nowNs, `recover attempt ${attempt.index} (#${attempt.recoveries}) on a fresh connection`);
    const r = attempt.dest.migrateRecover(nowNs);
    if (r.error !== null) return this.violate(nowNs, `migrate-recover refused: ${r.error.message}`);
    this.applyDest(attempt, r.effects, nowNs);
    attempt.conn = this.connect(attempt);
    const replaced = attempt.dest.onChannelReplaced('main', nowNs);
    if (!replaced.accepted) return this.violate(nowNs, 'the destination refused the recovery connection');
    this.applyDest(attempt, replaced.effects, nowNs);
    const resumed = attempt.source.resume(nowNs);
    if (resumed.error !== null) return this.violate(nowNs, `migrate resume refused: ${resumed.error.message}`);
    this.applySource(attempt, resumed, nowNs);
    this.schedulePump(nowNs);
  }

  /** The liveness phase: faults heal. */
  private heal(nowNs: number): void {
    this.healed = true;
    this.bandwidthFraction = 1;
    const a = this.attempt;
    // A migrate-set-parameters of the safety phase is undone: the operator's settings return.
    if (a !== null && a.sourceAlive && !isFinalStatus(a.source.status)) this.applySource(a, a.source.setParameters(nowNs, VOPR_PARAMETERS), nowNs);
    const conn = a?.conn;
    if (conn != null && !conn.dead) {
      conn.link.stream.setBandwidthAt(nowNs, this.plan.bandwidthBytesPerSec);
      conn.link.returnPath.setBandwidthAt(nowNs, this.plan.bandwidthBytesPerSec);
    }
    this.trace(nowNs, 'liveness: faults healed');
  }

  // ---- the guest ----------------------------------------------------------------------------

  private onTick(nowNs: number): void {
    const a = this.attempt;
    if (a !== null && a.sourceAlive && !isFinalStatus(a.source.status) && a.source.status !== 'none') {
      this.applySource(a, a.source.tick(nowNs), nowNs);
      this.schedulePump(nowNs);
    }
    if (this.guestRunning) this.stepGuest(nowNs);
    if (this.endNs < 0 || nowNs < this.endNs + SETTLE_NS) this.scheduler.at(nowNs + this.plan.tickNs, (now) => this.onTick(now), 'tick');
  }

  private stepGuest(nowNs: number): void {
    const n = this.plan.pageCount;
    for (let k = 0; k < this.plan.pagesPerTick; k++) {
      const page = this.cursor;
      if (this.guestSide === 'source') {
        this.sourceStore.bumpPage(page);
        this.log.markDirty(page);
      } else {
        const a = this.attempt as Attempt;
        if (this.waitingPage >= 0) return;
        if (!a.received.isReceived(page)) {
          this.faults++;
          const f = a.dest.onGuestFault(0, page, nowNs);
          this.applyDest(a, f.effects, nowNs);
          if (!f.present) {
            this.waitingPage = page;
            return;
          }
        }
        if (this.writtenAfterResume.testAndSet(page) && !a.destStore.pageEquals(this.sourceStore, page)) this.firstWriteMismatch.set(page);
        a.destStore.bumpPage(page);
      }
      this.cursor = (this.cursor + 1) % n;
    }
  }

  // ---- effects -------------------------------------------------------------------------------

  applySource(a: Attempt, result: StepResult, nowNs: number): void {
    let stopped = false;
    for (const e of result.effects) {
      if (e.kind === 'send') {
        const conn = a.conn;
        if (conn === null || conn.dead) continue; // Bytes for a connection that is gone.
        const sent = conn.link.stream.send(e.data, wireBytesOf(e));
        // Handled after this step's effects (their order must not interleave with the loss's).
        if (!sent.ok) this.scheduler.at(nowNs, (now) => this.connectionLost(a, conn, `source send: ${sent.error.message}`, now), 'send-failed');
      } else if (e.kind === 'status') {
        a.sourceStatuses.push({ from: e.from, to: e.to });
        this.trace(nowNs, `source ${a.index} ${e.from}>${e.to}`);
        if (isFinalStatus(e.to)) this.onSourceFinal(a, e.to, nowNs);
      } else if (e.kind === 'stop-guest') {
        if (this.guestSide === 'source') this.guestRunning = false;
        stopped = a.source.status !== 'postcopy-active';
        this.trace(nowNs, `source ${a.index} stop-guest`);
      } else if (e.kind === 'run-guest') {
        if (this.guestSide === 'source') this.guestRunning = true;
        else this.sourceRestartedGuest = true;
        this.trace(nowNs, `source ${a.index} run-guest`);
      } else {
        this.traceOther('source', e, nowNs);
      }
    }
    if (stopped && this.cancelAtSwitch && !isFinalStatus(a.source.status)) {
      this.cancelAtSwitch = false;
      this.note(nowNs, `qmp migrate_cancel at the switch (source ${a.source.status})`);
      this.applySource(a, a.source.cancel(nowNs), nowNs);
    }
  }

  private onSourceFinal(a: Attempt, to: string, nowNs: number): void {
    if (to === 'completed') return this.checkCompleted(a, nowNs);
    // Failed or cancelled: the connection is closed; the guest must run on at the source.
    if (a.conn !== null && !a.conn.dead) this.connectionLost(a, a.conn, `source ${to}`, nowNs);
    this.scheduler.at(nowNs, (now) => {
      if (this.outcome !== null || this.attempt !== a) return;
      if (this.sourceRestartedGuest) return this.violate(now, `split brain: source ${to} restarted the guest after the destination ran it`);
      if (this.guestSide === 'destination') {
        if (a.dest.status === 'completed') {
          return this.end(now, { kind: 'destination-completed-only', why: `source ${to} after the destination completed; the source kept the guest stopped` });
        }
        return this.violate(now, `source ${to} while the destination runs the guest in ${a.dest.status}`);
      }
      if (!this.guestRunning) {
        // The source sent EOF, so it kept the guest stopped; the destination did not run it
        // (it failed without EOF). The operator stops that destination and runs `cont`.
        this.operatorConts++;
        a.destAlive = false;
        this.note(now, `operator: source ${to} with the guest kept stopped, destination ${a.dest.status} never ran it: cont on the source`);
        this.guestRunning = true;
      }
      this.scheduler.at(now + this.plan.retryDelayNs, (t) => this.startAttempt(t), 'retry');
    }, 'after-failure');
  }

  private checkCompleted(a: Attempt, nowNs: number): void {
    this.scheduler.at(nowNs, () => {
      if (a.dest.status === 'completed' && this.guestSide === 'destination') this.end(this.scheduler.nowNs, { kind: 'completed' });
    }, 'completed');
  }

  applyDest(a: Attempt, effects: readonly Effect[], nowNs: number): void {
    for (const e of effects) {
      if (e.kind === 'send') {
        const conn = a.conn;
        if (conn === null || conn.dead) continue;
        const sent = conn.link.returnPath.send(e.data, e.data.length);
        if (!sent.ok) this.scheduler.at(nowNs, (now) => this.connectionLost(a, conn, `destination send: ${sent.error.message}`, now), 'send-failed');
      } else if (e.kind === 'status') {
        a.destStatuses.push({ from: e.from, to: e.to });
        this.trace(nowNs, `destination ${a.index} ${e.from}>${e.to}`);
        if ((e.to === 'failed' || e.to === 'postcopy-paused') && a.conn !== null && !a.conn.dead) {
          const conn = a.conn;
          this.scheduler.at(nowNs, (now) => this.connectionLost(a, conn, `destination ${e.to}`, now), 'dest-error');
        }
        if (e.to === 'completed' && a.source.status === 'completed') this.checkCompleted(a, nowNs);
      } else if (e.kind === 'run-guest') {
        if (this.guestRunning && this.guestSide === 'source') this.violate(nowNs, 'split brain: the destination starts the guest while it runs at the source');
        this.guestSide = 'destination';
        this.guestRunning = true;
        this.trace(nowNs, `destination ${a.index} run-guest`);
      } else if (e.kind === 'page-ready') {
        if (e.pageIndex === this.waitingPage) this.waitingPage = -1;
      } else {
        this.traceOther('destination', e, nowNs);
      }
    }
  }

  private traceOther(side: string, e: Effect, nowNs: number): void {
    if (e.kind === 'event' || e.kind === 'mark') this.trace(nowNs, `${side} ${e.kind} ${e.name}`);
  }

  // ---- pumping ---------------------------------------------------------------------------------

  schedulePump(atNs: number): void {
    const at = Math.max(atNs, this.scheduler.nowNs);
    if (this.pumpEvent !== null && this.pumpEvent.pending) {
      if (this.pumpEvent.timeNs <= at) return;
      this.scheduler.cancel(this.pumpEvent);
    }
    this.pumpEvent = this.scheduler.at(at, (now) => this.onPump(now), 'pump');
  }

  private onPump(nowNs: number): void {
    this.pumpEvent = null;
    const a = this.attempt;
    if (a === null || !a.sourceAlive || isFinalStatus(a.source.status) || a.conn === null || a.conn.dead) return;
    const ready = a.source.readiness(nowNs);
    if (ready.kind === 'idle') return;
    if (ready.kind === 'wait') return this.schedulePump(ready.untilNs);
    const stream = a.conn.link.stream;
    const bytesPerNs = this.plan.bandwidthBytesPerSec / 1e9;
    const backlogNs = stream.wireFreeAtNs() - nowNs;
    const postcopy = a.source.status.startsWith('postcopy');
    const queueNs = postcopy ? POSTCOPY_QUEUE_BYTES_MAX / bytesPerNs : MS;
    if (backlogNs > queueNs) return this.schedulePump(stream.wireFreeAtNs() - Math.floor(queueNs / 2));
    const budget = postcopy ? POSTCOPY_PUMP_BYTES_MAX : Math.floor(PRECOPY_ITERATION_NS * bytesPerNs);
    this.applySource(a, a.source.pump(nowNs, Math.max(budget, 2 * PAGE_BYTES)), nowNs);
    this.schedulePump(nowNs + 1);
  }
}
