/**
 * Where the simulator misses the lab's median by more than the tolerance, and why. Each entry
 * names a case and a figure; the fidelity test then checks that figure against the lab's own
 * spread instead (compare.ts withinLabSpread) and fails if the entry has become stale (the
 * figure is within tolerance again: remove the entry). Everything not listed is held to the
 * strict rule. docs/fidelity.md explains the causes at length.
 */
import type { FigureVerdict } from './compare.ts';

export interface KnownDeviation {
  readonly caseId: string;
  readonly figure: FigureVerdict['name'];
  readonly reason: string;
  /**
   * The looser check: 'spread' (within the lab runs' spread, compare.ts withinLabSpread), or a
   * relative tolerance around the lab median for a figure even the spread does not cover.
   */
  readonly check: 'spread' | { readonly tolerance: number };
}

/** KASLR moves the kernel's data at every boot: where the last dirty bytes sit differs per run. */
const LAYOUT =
  'the convergence check lands before or after the last data at the top of RAM depending on where the kernel put it at boot (KASLR); ' +
  'the simulated guest has one fixed layout (boot data low, a data region at the top)';

/** The same migration measured 9 times across the suites spans 204-310 ms. */
const IDLE_1G_NOISE =
  'lab run-to-run spread: the idle 1 GiB guest at 1 GiB/s without effective hinting took 296, 209, 210 ms (main), 310, 283, 204 ms ' +
  '(init_on_alloc=0, hint off) and 222, 256, 203 ms (init_on_alloc=0, hint on) for the same bytes; the simulator predicts one value, ' +
  'near the main suite (198 ms) and below these medians';

export const KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  { caseId: 'm1024-idle-1g-hint-off', figure: 'downtime', check: 'spread', reason: `${LAYOUT}; lab runs 28, 3, 3 ms, the simulator 42 ms (like the first run)` },
  { caseId: 'm2048-idle-1g-hint-off', figure: 'downtime', check: 'spread', reason: `${LAYOUT}; lab runs 19, 54, 39 ms, the simulator 2 ms (it converges after sending the top)` },
  { caseId: 'm1024-idle-1g-hint-off-ioa0', figure: 'total-time', check: 'spread', reason: IDLE_1G_NOISE },
  {
    caseId: 'm1024-idle-1g-hint-on-ioa0',
    figure: 'total-time',
    check: { tolerance: 0.35 },
    reason: `${IDLE_1G_NOISE}. With hinting (no zeroing) the simulated scan also skips nearly all free memory: its boot data lies low, so ` +
      'the hinter gets a 100 ms head start and all its hints land ahead of the scan; the lab guests, whose boot data KASLR spreads out, ' +
      'had 60, 179 and 671 MB hinted ahead (samples), and took 203-256 ms, the simulator 155 ms',
  },
  {
    caseId: 'm2048-idle-1g-hint-on',
    figure: 'total-time',
    check: 'spread',
    reason: 'the lab runs took 652, 502, 627 ms; zeroing never-touched memory (host page faults, THP) slows the 2 GiB guest\'s host more than ' +
      'the even 2/3 share of the host model gives (the first pass ran at about 0.55 of its hint-off speed, the model gives 0.67)',
  },
  {
    caseId: 'm2048-idle-128m-hint-on',
    figure: 'total-time',
    check: 'spread',
    reason: 'the lab runs took 1041, 912, 950 ms; the simulator already spends 100 ms more than the lab on the hint-off run (824 against ' +
      '726 ms: its boot data is low and contiguous, so it scans 1.9 GB of zero pages last and converges one window later, with less data left ' +
      'for the downtime) and re-sends the zeroed blocks at the calibrated rescan cost',
  },
  {
    caseId: 'm1024-alloc-1g-hint-on-ioa0',
    figure: 'transferred',
    check: 'spread',
    reason: 'the unhintable free memory is taken from the init_on_alloc=1 runs (52.7 MiB, all of it filled by the alloc workload in the model); ' +
      'the init_on_alloc=0 guest sent only about 37 MiB of alloc data (lab runs 125.9, 127.1, 137.9 MiB)',
  },
];

/** The entry for a case's figure, if any. */
export function knownDeviation(caseId: string, figure: FigureVerdict['name']): KnownDeviation | undefined {
  return KNOWN_DEVIATIONS.find((d) => d.caseId === caseId && d.figure === figure);
}
