/**
 * The stale-page races of issue [10] as faults of the full simulator (scenario `faults`,
 * docs/scenarios.md). Each race is switched on in the component where it lives, and
 * `behave-as` says whose rules the host side follows:
 *
 * | race              | qemu-7.2 (the faulty behaviour)                                   | livemig (the same injection, livemig's guards on)          |
 * |-------------------|-------------------------------------------------------------------|------------------------------------------------------------|
 * | shrinker-reuse    | guest: the Linux driver's shrinker frees blocks whose hint is     | guest: the same reuse; host: an exact log (GET clears),    |
 * |                   | still queued (always so in the guest model); dirty log: KVM       | a hint never touches the dirty log                         |
 * |                   | manual protect, the hint CLEARs its chunk's fetched bits          |                                                            |
 * | late-hint         | device → engine: every second hint reaches migration only after   | the same delay; the engine drops a hint unless the device  |
 * |                   | the next sync merged the log, and is applied                      | is in START of the hint's own command id                   |
 * | wide-clear        | engine: a hint clears the dirty log of every clear chunk it       | a hint clears the migration bitmap only                    |
 * |                   | touches (2^18 pages: all of a small guest), every bit             |                                                            |
 * | done-during-alloc | device: DONE right after the first hint of each round, while the  | the same DONEs, status and delay; the engine drops the     |
 * |                   | driver still allocates (it then frees its blocks, queued ones     | hints (not START of their id)                              |
 * |                   | included); hints are handed over in any status, late as above     |                                                            |
 * | tcg-dirty         | dirty log: TCG's TLB dirty state is not reset by the sync (QEMU   | the TLB model with the reset (QEMU ≥ 9.0, QEMU's slow      |
 * |                   | < 9.0 fast path); a TLB flush happens at each guest tick outside  | path)                                                      |
 * |                   | a hint round (kernel threads borrow the mm: no flush in a round)  |                                                            |
 *
 * The guest's driver (src/guest/drivers/free-page-hint-worker.ts) is Linux 6.1's in both modes:
 * it frees queued blocks on shrink and on DONE. livemig cannot change the guest.
 *
 * Pure: no node:*, timers or Math.random.
 */
import { FaultDirtyLog, type DirtyLogFaults } from '../memory/fault-dirty-log.ts';
import type { FaultBehaviour, StaleRaceFault } from './scenario/scenario.ts';

/** QEMU's clear_bitmap_shift default: one CLEAR chunk is 2^18 pages (1 GiB). */
export const CLEAR_CHUNK_PAGES = 1 << 18;

/** What a scenario's `faults` switches on. */
export interface StaleFaultSwitches {
  /** The dirty log's faults (a FaultDirtyLog), or null for livemig's exact DirtyLog. */
  readonly log: DirtyLogFaults | null;
  /** How an applied hint clears the dirty log. */
  readonly hintClear: 'none' | 'masked' | 'unmasked';
  /** The source balloon device's faults (BalloonDevice.hintFaults). */
  readonly device: { readonly anyStatus: boolean; readonly doneMidRound: boolean };
  /** Every second hint reaches migration only after the next sync. */
  readonly lateHints: boolean;
  /** livemig's guard: a hint is applied only while the device is in START of its command id. */
  readonly staleIdGuard: boolean;
}

/** The switches of `races` under `behaveAs` (null when nothing is switched on). */
export function staleFaultSwitches(behaveAs: FaultBehaviour, races: readonly StaleRaceFault[]): StaleFaultSwitches | null {
  if (races.length === 0) return null;
  const on = new Set(races);
  const qemu = behaveAs === 'qemu-7.2';
  const done = on.has('done-during-alloc');
  const tcg = on.has('tcg-dirty');
  const manualProtect = qemu && on.has('shrinker-reuse');
  const wide = qemu && on.has('wide-clear');
  return {
    log: tcg || manualProtect || wide ? { tcgTlb: tcg, staleTlb: tcg && qemu, manualProtect, chunkPages: CLEAR_CHUNK_PAGES } : null,
    hintClear: wide ? 'unmasked' : manualProtect ? 'masked' : 'none',
    device: { anyStatus: done, doneMidRound: done },
    lateHints: done || on.has('late-hint'),
    staleIdGuard: !qemu,
  };
}

/** A hint on its way to the source engine. */
export interface HeldHint {
  readonly startPage: number;
  readonly pageCount: number;
  readonly cmdId: number;
  /** The source's sync count when it was held: released once a later sync happened. */
  readonly syncCount: number;
}

/** The run-time side of the switches: the faulty log, held hints, the TLB flushes. */
export class StaleFaultHost {
  readonly switches: StaleFaultSwitches;
  /** The guest's dirty log when the switches need a faulty one. */
  readonly log: FaultDirtyLog | null;
  private readonly held: HeldHint[] = [];
  private hintsSeen = 0;
  /** Hints delayed past a sync, and hints the guard dropped. */
  hintsHeld = 0;
  hintsDropped = 0;

  constructor(switches: StaleFaultSwitches, pageCount: number) {
    this.switches = switches;
    this.log = switches.log === null ? null : new FaultDirtyLog(pageCount, switches.log);
  }

  /** A guest tick: outside a hint round the vCPU's TLB is flushed (a context switch). */
  onGuestTick(inHintRound: boolean): void {
    if (!inHintRound) this.log?.flushTlb();
  }

  /** Whether this hint is held (late-hint); `syncCount` is the source's now. */
  hold(hint: Omit<HeldHint, 'syncCount'>, syncCount: number): boolean {
    if (!this.switches.lateHints || this.hintsSeen++ % 2 === 0) return false;
    this.held.push({ ...hint, syncCount });
    this.hintsHeld++;
    return true;
  }

  /** The held hints a sync has passed since they were held (removed from the list). */
  release(syncCount: number): HeldHint[] {
    if (this.held.length === 0 || this.held[0].syncCount >= syncCount) return [];
    const out: HeldHint[] = [];
    let keep = 0;
    for (const h of this.held) {
      if (h.syncCount < syncCount) out.push(h);
      else this.held[keep++] = h;
    }
    this.held.length = keep;
    return out;
  }

  /** Whether livemig's guard drops a hint of `cmdId` (`accepts`: the device is in START of that id). */
  drops(cmdId: number, accepts: (cmdId: number) => boolean): boolean {
    if (!this.switches.staleIdGuard || accepts(cmdId)) return false;
    this.hintsDropped++;
    return true;
  }

  /** A hint of [startPage, startPage + pageCount) is applied: the dirty log part. */
  onHintApplied(startPage: number, pageCount: number): void {
    const how = this.switches.hintClear;
    if (how !== 'none') this.log?.clearForHint(startPage, startPage + pageCount, how);
  }
}
