/**
 * Firing the plan's faults into a VoprWorld (vopr-world.ts): each fault acts on whatever
 * attempt and connection are live when it fires, and says in the fault log what it hit.
 * QMP commands at bad moments must be refused with a typed error carrying QEMU's text
 * (expected texts below, copied from QEMU 7.2's migration.c / savevm.c); anything else is a
 * violation.
 */
import { DestError, RECOVERY_TEXTS } from '../../core/dest/dest-errors.ts';
import { MIGRATE_PAUSE_NOT_POSTCOPY_TEXT, RESUME_NOT_PAUSED_TEXT } from '../../core/source/recovery.ts';
import { POSTCOPY_NOT_STARTED_TEXT } from '../../core/source/source-step.ts';
import { SourceError } from '../../core/source/source-types.ts';
import { isFinalStatus } from '../../core/status.ts';
import { SAFETY_NS, type Fault } from './vopr-faults.ts';
import { VOPR_PARAMETERS, type Attempt, type VoprWorld } from './vopr-world.ts';

/** QEMU 7.2's texts, as QMP returns them. */
export const QEMU_TEXTS = {
  pause: 'migrate-pause is currently only supported during postcopy-active state',
  resume: 'Cannot resume if there is no paused migration',
  recover: 'Migrate recover can only be run when postcopy is paused.',
  postcopyNotStarted: 'Postcopy must be started after migration has been started',
} as const;

/** Schedules every fault of the world's plan. */
export function fireFaults(world: VoprWorld): void {
  for (const f of world.plan.faults) world.scheduler.at(f.atNs, (now) => fire(world, f, now), `fault:${f.kind}`);
}

function fire(world: VoprWorld, f: Fault, nowNs: number): void {
  if (world.outcome !== null || world.healed) return;
  const a = world.attempt;
  if (a === null) return world.note(nowNs, `${f.kind}: no migration`);
  switch (f.kind) {
    case 'cut': {
      const conn = a.conn;
      if (conn === null || conn.dead) return world.note(nowNs, 'cut: no live connection');
      world.note(nowNs, `cut ${f.direction} of connection ${conn.id} (source ${a.source.status})`);
      (f.direction === 'stream' ? conn.link.stream : conn.link.returnPath).cutNow(nowNs);
      world.scheduler.at(nowNs + f.lagNs, (now) => world.connectionLost(a, conn, `connection reset (${f.direction} cut)`, now), 'cut-lag');
      return;
    }
    case 'stall': {
      const conn = a.conn;
      if (conn === null || conn.dead) return world.note(nowNs, 'stall: no live connection');
      const until = Math.min(nowNs + f.durationNs, SAFETY_NS);
      if (until <= nowNs) return;
      world.note(nowNs, `stall ${f.direction} of connection ${conn.id} until ${until}`);
      (f.direction === 'stream' ? conn.link.stream : conn.link.returnPath).stall(nowNs, until);
      return;
    }
    case 'bandwidth': {
      world.bandwidthFraction = f.fraction;
      const conn = a.conn;
      world.note(nowNs, `bandwidth x${f.fraction}`);
      if (conn !== null && !conn.dead) conn.link.stream.setBandwidthAt(nowNs, world.plan.bandwidthBytesPerSec * f.fraction);
      return;
    }
    case 'crash':
      return f.side === 'destination' ? crashDestination(world, a, nowNs) : crashSource(world, a, nowNs);
    case 'qmp':
      return misuse(world, a, f.command, nowNs);
  }
}

function crashDestination(world: VoprWorld, a: Attempt, nowNs: number): void {
  if (!a.destAlive) return world.note(nowNs, 'crash destination: already gone');
  world.note(nowNs, `crash destination (source ${a.source.status}, destination ${a.dest.status}, guest at ${world.guestSide})`);
  const guestWasThere = world.guestSide === 'destination';
  const postcopy = a.source.status.startsWith('postcopy');
  a.destAlive = false;
  if (a.conn !== null) world.connectionLost(a, a.conn, 'destination crashed', nowNs);
  if (guestWasThere || postcopy) {
    // The destination ran the guest, or held its newest state next to the source's: gone.
    world.guestRunning = false;
    world.end(nowNs, { kind: 'guest-lost', why: `destination crashed ${guestWasThere ? 'while running the guest' : 'in postcopy'}` });
  }
}

function crashSource(world: VoprWorld, a: Attempt, nowNs: number): void {
  if (!a.sourceAlive) return world.note(nowNs, 'crash source: already gone');
  world.note(nowNs, `crash source (source ${a.source.status}, destination ${a.dest.status}, guest at ${world.guestSide})`);
  a.sourceAlive = false;
  const missing = a.destAlive ? a.dest.missingPages() : -1;
  if (a.conn !== null && !a.conn.dead) {
    a.conn.dead = true;
    a.conn.link.stream.cutNow(nowNs);
    a.conn.link.returnPath.cutNow(nowNs);
    if (a.destAlive && !isFinalStatus(a.dest.status)) world.applyDest(a, a.dest.onChannelClosed('main', nowNs).effects, nowNs);
  }
  if (world.guestSide === 'source') {
    world.guestRunning = false;
    return world.end(nowNs, { kind: 'guest-lost', why: 'source crashed while the guest ran (or was stopped) there' });
  }
  if (a.dest.status === 'completed') return world.end(nowNs, { kind: 'destination-completed-only', why: 'the source crashed after the destination completed' });
  if (missing > 0) {
    world.guestRunning = false;
    return world.end(nowNs, { kind: 'guest-lost', why: `source crashed holding the only copy of ${missing} pages` });
  }
  world.end(nowNs, { kind: 'source-crashed-guest-survives', why: 'the destination had every page; the migration cannot finish' });
}

function misuse(world: VoprWorld, a: Attempt, command: string, nowNs: number): void {
  const src = a.source;
  const expectRefusal = (what: string, error: Error | null, text: string, typed: boolean): void => {
    if (error === null) return world.violate(nowNs, `${what} accepted in source ${src.status} / destination ${a.dest.status}`);
    if (!typed) world.violate(nowNs, `${what}: untyped error ${error.name}`);
    if (error.message !== text) world.violate(nowNs, `${what}: text '${error.message}', QEMU says '${text}'`);
    world.note(nowNs, `qmp ${what} refused: ${error.message}`);
  };
  if (!a.sourceAlive) return world.note(nowNs, `qmp ${command}: source gone`);
  switch (command) {
    case 'cancel-at-switch':
      world.cancelAtSwitch = true;
      return world.note(nowNs, 'qmp migrate_cancel armed for the next switch');
    case 'start-postcopy-twice': {
      const first = src.startPostcopy(nowNs);
      world.applySource(a, first, nowNs);
      const second = src.startPostcopy(nowNs);
      world.applySource(a, second, nowNs);
      // QEMU only sets a flag: twice is accepted, both times, once a migration exists.
      const texts = [first.error?.message ?? 'ok', second.error?.message ?? 'ok'];
      for (const r of [first, second]) {
        if (r.error !== null && !(r.error instanceof SourceError)) world.violate(nowNs, 'start-postcopy: untyped error');
        if (r.error !== null && r.error.message !== POSTCOPY_NOT_STARTED_TEXT) world.violate(nowNs, `start-postcopy: unexpected '${r.error.message}'`);
      }
      world.schedulePump(nowNs);
      return world.note(nowNs, `qmp migrate-start-postcopy twice: ${texts.join(', ')}`);
    }
    case 'set-parameters-active': {
      if (isFinalStatus(src.status)) return world.note(nowNs, 'qmp migrate-set-parameters: no active migration');
      const rate = Math.floor(world.plan.bandwidthBytesPerSec / 2);
      world.applySource(a, src.setParameters(nowNs, { ...VOPR_PARAMETERS, maxBandwidthBytesPerSec: rate, maxPostcopyBandwidthBytesPerSec: 0 }), nowNs);
      world.schedulePump(nowNs);
      return world.note(nowNs, `qmp migrate-set-parameters max-bandwidth=${rate} in ${src.status}`);
    }
    case 'pause-outside-postcopy': {
      if (src.status === 'postcopy-active') {
        // Inside postcopy it is a legal pause: both sides pause, the operator recovers.
        const r = src.migratePause(nowNs);
        world.note(nowNs, `qmp migrate-pause in postcopy-active: ${r.error?.message ?? 'paused'}`);
        world.applySource(a, r, nowNs);
        if (a.conn !== null) world.connectionLost(a, a.conn, 'migrate-pause', nowNs);
        return world.afterLoss(a, nowNs);
      }
      expectRefusal('migrate-pause (source)', src.migratePause(nowNs).error, MIGRATE_PAUSE_NOT_POSTCOPY_TEXT, true);
      if (a.destAlive && a.dest.status !== 'postcopy-active') {
        const r = a.dest.migratePause(nowNs);
        expectRefusal('migrate-pause (destination)', r.error, RECOVERY_TEXTS.pauseNotPostcopy, r.error instanceof DestError);
      }
      if (MIGRATE_PAUSE_NOT_POSTCOPY_TEXT !== QEMU_TEXTS.pause) world.violate(nowNs, 'migrate-pause text differs from QEMU');
      return;
    }
    case 'resume-not-paused':
      if (src.status === 'postcopy-paused') return world.note(nowNs, 'qmp migrate resume: paused, left to the operator');
      expectRefusal('migrate resume', src.resume(nowNs).error, QEMU_TEXTS.resume, true);
      if (RESUME_NOT_PAUSED_TEXT !== QEMU_TEXTS.resume) world.violate(nowNs, 'resume text differs from QEMU');
      return;
    case 'recover-not-paused': {
      if (!a.destAlive || a.dest.status === 'postcopy-paused') return world.note(nowNs, 'qmp migrate-recover: left to the operator');
      const r = a.dest.migrateRecover(nowNs);
      return expectRefusal('migrate-recover', r.error, QEMU_TEXTS.recover, r.error instanceof DestError);
    }
  }
}

