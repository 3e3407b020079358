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
  'the convergence check lands before or after the last data at the top of RAM depending on where the kernel put its data at boot (KASLR); ' +
  'the simulated guest has one layout (boot data spread evenly through the lower half of RAM, a data region at the top)';

/** The same migration measured 6 times across two suites: bimodal, 204-210 or 283-310 ms. */
const IDLE_1G_NOISE =
  'lab run-to-run spread: the idle 1 GiB guest at 1 GiB/s without hinting took 296, 209, 210 ms (main) and 310, 283, 204 ms ' +
  '(init_on_alloc=0, which changes nothing without hinting) for the same bytes; the samples at 0.26 s show the slow runs had scanned ' +
  '86-99% of RAM where the fast ones had finished, and a slower scan misses a convergence check (one per ram_save_iterate, about ' +
  '50 ms) and pays one more; no single prediction is within ±15% of both medians (210 and 283 ms): the simulator gives 196 ms';

export const KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  { caseId: 'm1024-idle-1g-hint-off', figure: 'downtime', check: 'spread', reason: `${LAYOUT}; lab runs 28, 3, 3 ms, the simulator 34 ms (like the first run: it converges with the top region unsent)` },
  { caseId: 'm1024-idle-1g-hint-off-ioa0', figure: 'total-time', check: 'spread', reason: IDLE_1G_NOISE },
  {
    caseId: 'm1024-idle-1g-hint-on-ioa0',
    figure: 'total-time',
    check: { tolerance: 0.35 },
    reason: `${IDLE_1G_NOISE}. With hinting (no zeroing) the simulated hinter, fast and starting with the migration, hints 760 MB ` +
      'ahead of the scan and the migration takes 161 ms; the lab guests skipped 671, 179 and 60 MB (hints in at the first, about the second ' +
      'and about the third iteration boundary) and took 222, 203 and 256 ms: the time does not follow the skip. Holding the simulated hints ' +
      'for 1, 2 or 3 boundaries gives 174, 204, 215 ms, but QEMU 7.2\'s code does not decide which boundary (fifth round, docs/fidelity.md)',
  },
  {
    caseId: 'm2048-idle-1g-hint-on',
    figure: 'total-time',
    check: 'spread',
    reason: 'the lab runs took 652, 502, 627 ms; zeroing never-touched memory (host page faults, THP) slows the 2 GiB guest\'s host more than ' +
      'the even 2/3 share of the host model gives (the first pass ran at about 0.55 of its hint-off speed, the model gives 0.67); counting the ' +
      'balloon iothread, which polls the free page vq while hinting, as a fourth busy thread gives only 504 ms and breaks another case (fifth round)',
  },
];

/** The entry for a case's figure, if any. */
export function knownDeviation(caseId: string, figure: FigureVerdict['name']): KnownDeviation | undefined {
  return KNOWN_DEVIATIONS.find((d) => d.caseId === caseId && d.figure === figure);
}
