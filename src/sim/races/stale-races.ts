/**
 * The race explorer's stale-page races (issue [10]): each candidate race of free page hinting
 * as a switchable fault of the stale world (src/sim/stale/stale-world.ts), swept over seeds in
 * two modes:
 *
 *   qemu-7.2  the device and the dirty log behave as QEMU 7.2 does (hints gated only by the
 *             START status, KVM manual-protect or TCG log as the race needs), with the race's
 *             fault switched on: each race must reproduce stale pages here
 *   livemig   the same seeds and the same guest (a guest-side fault such as the shrinker's
 *             reuse stays on: livemig cannot change the guest), with livemig's hinting rules:
 *             hints clear only the migration bitmap, the current id's queued hints are applied
 *             before the next sync merges the log, stale ids are dropped, and the dirty log is
 *             exact. Zero stale pages on every seed.
 *
 * The stale world is a compact model of the parts that matter (page versions, dirty log,
 * migration bitmap, free page queue, the device's command-id machine, the Linux driver's rounds,
 * shrinker and DONE); it is not the full simulator the policy sweep (race-sweep.ts) runs.
 *
 * Pure and deterministic; tallies of disjoint seed ranges merge.
 */
import { emptyStaleCounts, mergeStaleCounts, sweepFaults, type StaleCounts } from '../stale/stale-sweep.ts';
import { LIVEMIG_FAULTS, type StaleFaults } from '../stale/stale-world.ts';

const QEMU_KVM: StaleFaults = { ...LIVEMIG_FAULTS, gate: 'qemu', log: 'manual-protect', dirtyLogClear: 'chunk-masked' };
const QEMU_TCG: StaleFaults = { ...LIVEMIG_FAULTS, gate: 'qemu' };

export interface StaleRace {
  /** One line: what goes wrong. */
  readonly what: string;
  /** The world in qemu-7.2 mode. */
  readonly qemu: StaleFaults;
  /** Guest-side faults kept in livemig mode. */
  readonly guest: Partial<StaleFaults>;
}

/** The races, by name (the explorer's table rows). */
export const STALE_RACES = {
  'shrinker-reuse': {
    what: 'the shrinker frees blocks whose hint is still queued; under KVM manual-protect the hint\'s CLEAR_DIRTY_LOG then drops the reuser\'s writes made since the last GET (seed 691)',
    qemu: { ...QEMU_KVM, shrinkerReuseInFlight: true },
    guest: { shrinkerReuseInFlight: true },
  },
  'late-hint': {
    what: 'a hint applied after the next sync merged the log clears the bit of a page reused and written since (with shrinker reuse)',
    qemu: { ...QEMU_TCG, shrinkerReuseInFlight: true, lateHintAfterSync: true },
    guest: { shrinkerReuseInFlight: true },
  },
  'wide-clear': {
    what: 'a hint clears the dirty log of every clear_bmap chunk it touches, every bit (not masked by the last GET)',
    qemu: { ...QEMU_TCG, dirtyLogClear: 'chunk-unmasked' },
    guest: {},
  },
  'done-during-alloc': {
    what: 'DONE reaches the driver mid-round; it frees every held block, queued hints included, and the device still applies them',
    qemu: { ...QEMU_TCG, doneDuringAlloc: true, lateHintAfterSync: true },
    guest: { doneDuringAlloc: true },
  },
  'tcg-dirty': {
    what: 'QEMU < 9.0 under TCG: the sync clears migration dirty bits without resetting the TLB dirty state (fixed by 03bfc2188f)',
    qemu: { ...QEMU_TCG, shrinkerReuseInFlight: true, tcgTlbStaleDirty: true },
    guest: { shrinkerReuseInFlight: true },
  },
} as const satisfies Record<string, StaleRace>;
export type StaleRaceName = keyof typeof STALE_RACES;
export const STALE_RACE_NAMES = Object.keys(STALE_RACES) as StaleRaceName[];
export const STALE_RACE_MODES = ['qemu-7.2', 'livemig'] as const;
export type StaleRaceMode = (typeof STALE_RACE_MODES)[number];

/** The stale world's faults for `race` in `mode`. */
export function staleRaceFaults(race: StaleRaceName, mode: StaleRaceMode): StaleFaults {
  const r: StaleRace = STALE_RACES[race];
  return mode === 'qemu-7.2' ? r.qemu : { ...LIVEMIG_FAULTS, ...r.guest };
}

export interface StaleRaceTally {
  readonly firstSeed: number;
  readonly seedCount: number;
  readonly initOnAlloc: boolean;
  /** 'full': the full simulator (stale-full.ts); absent: the small stale world. */
  readonly world?: 'full';
  readonly cells: Partial<Record<`${StaleRaceName}/${StaleRaceMode}`, StaleCounts>>;
}

export interface StaleSweepOptions {
  readonly firstSeed: number;
  readonly seedCount: number;
  readonly races?: readonly StaleRaceName[];
  readonly modes?: readonly StaleRaceMode[];
  /** Linux init_on_alloc=1 (Debian's default, the lab's main setup). Default true. */
  readonly initOnAlloc?: boolean;
}

/** Sweeps races × modes over the seeds. */
export function sweepStaleRaces(o: StaleSweepOptions): StaleRaceTally {
  const initOnAlloc = o.initOnAlloc ?? true;
  const tally: StaleRaceTally = { firstSeed: o.firstSeed, seedCount: o.seedCount, initOnAlloc, cells: {} };
  for (const race of o.races ?? STALE_RACE_NAMES) {
    for (const mode of o.modes ?? STALE_RACE_MODES) {
      tally.cells[`${race}/${mode}`] = sweepFaults(staleRaceFaults(race, mode), o.firstSeed, o.seedCount, { hinting: true, initOnAlloc });
    }
  }
  return tally;
}

/** Merges tallies of disjoint seed ranges. */
export function mergeStaleTallies(tallies: readonly StaleRaceTally[]): StaleRaceTally {
  const out: StaleRaceTally = {
    firstSeed: Math.min(...tallies.map((t) => t.firstSeed)),
    seedCount: tallies.reduce((n, t) => n + t.seedCount, 0),
    initOnAlloc: tallies[0]?.initOnAlloc ?? true,
    ...(tallies[0]?.world === 'full' ? { world: 'full' as const } : {}),
    cells: {},
  };
  for (const t of tallies) {
    for (const [key, c] of Object.entries(t.cells) as Array<[keyof StaleRaceTally['cells'], StaleCounts]>) {
      mergeStaleCounts((out.cells[key] ??= emptyStaleCounts()), c);
    }
  }
  return out;
}

const HEADER = ['race', 'mode', 'seeds', 'runs with stale pages', 'stale pages', 'kernel area', 'in hinted blocks', 'other', 'first seeds'];

function rows(t: StaleRaceTally): string[][] {
  return (Object.entries(t.cells) as Array<[string, StaleCounts]>).map(([key, c]) => {
    const [race, mode] = key.split('/');
    return [race, mode, String(c.seeds), String(c.seedsWithStale), String(c.stale), String(c.staleKernel), String(c.staleInHinted), String(c.staleOther), c.examples.join(',') || '-'];
  });
}

/** The race × mode table as padded text. */
export function staleRaceTableText(t: StaleRaceTally): string {
  const all = [HEADER, ...rows(t)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const lines = all.map((r) => r.map((c, i) => (i < 2 || i === 8 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd());
  return `stale-page races${t.world === 'full' ? ' (full simulator)' : ''}, seeds ${t.firstSeed}..${t.firstSeed + t.seedCount - 1}, init_on_alloc=${t.initOnAlloc ? 1 : 0}\n${lines.join('\n')}\n`;
}

/** The same table in Markdown. */
export function staleRaceTableMarkdown(t: StaleRaceTally): string {
  const sep = HEADER.map((_, i) => (i < 2 || i === 8 ? '---' : '---:'));
  return `${[HEADER, sep, ...rows(t)].map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`;
}
