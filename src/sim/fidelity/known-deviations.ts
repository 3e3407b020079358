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
  readonly check: 'spread' | 'host-state' | { readonly tolerance: number };
}

/**
 * The host's memory (sixth round, docs/fidelity.md): the lab's machine hands free memory back
 * to its hypervisor, so a destination whose RAM lands on such memory pays about 4.4 ms more per
 * 2 MiB it writes (the probe, calibration-host.ts). The scenarios model a warm host; the host
 * suites measured the same cases cold and warm. A run of the committed suites could land on
 * either, or on a mix.
 */
const HOST_MEMORY =
  'the lab host\'s memory: on a host that hands free memory back to its hypervisor a destination pays about 4.4 ms more for each 2 MiB of RAM ' +
  'it writes first (measured: npm run lab -- --host-probe, and the host suites); the scenario models a warm host, and the lab runs of this ' +
  'case landed on cold memory, warm memory or a mix. Checked: the lab median lies between the simulator\'s warm and cold predictions (±15%; ' +
  'cold: the scenario with host.destination-fault set to the probe\'s cold less warm)';

export const KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  {
    caseId: 'm1024-idle-1g-hint-off-ioa0',
    figure: 'total-time',
    check: 'host-state',
    reason: `${HOST_MEMORY}: runs 310, 283, 204 ms; the same migration took 209-210 ms twice in the main suite (warm, the simulator 180 ms) and 329-352 ms in the cold-host suite (the simulator 428 ms cold)`,
  },
  {
    caseId: 'm1024-idle-1g-hint-on-ioa0',
    figure: 'total-time',
    check: 'host-state',
    reason: `${HOST_MEMORY}: runs 222, 256, 203 ms against 145 ms warm and 344 ms cold. Also: the simulated hinter, fast and starting with the migration, hints 760 MB ` +
      'ahead of the scan; the lab guests skipped 671, 179 and 60 MB (hints in at different iteration boundaries, which QEMU 7.2\'s code does not decide; fifth round)',
  },
  {
    caseId: 'm2048-idle-1g-hint-on',
    figure: 'total-time',
    check: 'host-state',
    reason: `${HOST_MEMORY}: runs 652, 502, 627 ms against 469 ms warm and 824 ms cold; the cold-host suite measured 562 ms (sixth round). ` +
      'The fifth round\'s guess (host faults while the guest zeroes never-touched memory) was the right family, on the wrong side: the destination',
  },
];

/**
 * QEMU checks for convergence once per iteration, and an iteration lasts 51 ms (MAX_WAIT) unless
 * the pass ends or the rate limit stops it first (QEMU's own trace, testdata/guest-lab/
 * trace-warm.jsonl); the lab scenarios run the same iterations (ninth round). Where the pass ends
 * within a few ms of a check, runs of one case split between outcomes.
 */
const CHECK_PHASE =
  'whether the first pass ends before or after a convergence check (the first 100 ms bandwidth window, or a check with the threshold ' +
  'just above the pending bytes) decides the sync count and whether the top of RAM goes in the downtime; QEMU\'s trace of the same case ' +
  '(trace-warm.jsonl) shows both outcomes across runs, and the simulator, with one layout and one pace, lands on one side';

/**
 * The thirteenth round's refit (docs/fidelity.md): with the alloc guest's freed blocks hinted
 * top-down, QEMU's first iterations ask for a faster link (2.20 GB/s against 1.97), and the fit
 * pays for it with a dearer zero page (184 ns against 165): two idle cases at 1 GiB/s, each within
 * a few % of the rule before, cross it.
 */
const REFIT_13 =
  'the thirteenth round\'s refit (a faster link for QEMU\'s first iterations of the alloc guest, a dearer zero page; the loss fell from ' +
  '2.731 to 2.361) moved this idle case across the rule';

/** The warm-host suite's deviations (testdata/guest-lab/warm-host.jsonl against scenarios/lab/warm-host). */
export const WARM_HOST_KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  {
    caseId: 'm1024-idle-1g-hint-off-ioa0', figure: 'dirty-sync-count', check: 'spread',
    reason: `${CHECK_PHASE}: runs 3, 2, 3 syncs (the traced runs 3, 2, 2); the simulator's pass ends before its first window closes, so it completes with 2`,
  },
  {
    caseId: 'm1024-idle-1g-hint-on-ioa0', figure: 'total-time', check: { tolerance: 0.2 },
    reason: `${REFIT_13}: runs 96, 88, 90 ms, the simulator 76 ms (79 ms before, -12.2%); the same bytes in 2 syncs`,
  },
  {
    caseId: 'm2048-idle-1g-hint-off', figure: 'total-time', check: { tolerance: 0.2 },
    reason: `${REFIT_13}: runs 130, 132, 125, 142, 140, 131 ms, the simulator 153 ms (151 ms before, +14.8%). QEMU\'s trace of it ` +
      '(trace-warm.jsonl) and the simulator\'s checks agree to within a few ms up to the decision to complete; then QEMU\'s downtime ' +
      'is 1-2 ms and the simulator\'s is the fitted 10 ms switchover, which the alloc guest\'s end game holds there (docs/fidelity.md, ' +
      'thirteenth round)',
  },
  {
    caseId: 'm2048-idle-128m-hint-off', figure: 'dirty-sync-count', check: 'spread',
    reason: `${CHECK_PHASE}: runs 4, 4, 3 syncs (traced: 4, 4, 4); in the trace the sync at 603 ms leaves 40,972,288 B pending against a ` +
      'threshold of 40,277,061 B (the 176 pages the idle guest dirtied meanwhile tip it over), so QEMU iterates once more; the simulated idle ' +
      'guest dirties nothing, and the simulator has 3 (the main suite: 3, 3, 3)',
  },
];

/** The cold-host suite's deviations (testdata/guest-lab/cold-host.jsonl against scenarios/lab/cold-host): a prediction from the warm fit. */
const COLD_PREDICTION =
  'the cold-host scenarios are the warm fit with the probe\'s cold first touch (calibration-host.ts), not fitted on these runs';

export const COLD_HOST_KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  {
    caseId: 'm1024-alloc-1g-hint-on', figure: 'dirty-sync-count', check: 'spread',
    reason: `${COLD_PREDICTION}: runs 4, 5, 4 syncs, the simulator 5 (since the twelfth round; 4 before): with the slower driver the fit ` +
      'took from QEMU\'s trace, a sync late in the second pass finds pages it zeroed not yet hinted, so a third pass runs',
  },
  {
    caseId: 'm1024-idle-1g-hint-on-ioa0', figure: 'total-time', check: { tolerance: 0.25 },
    reason: `${COLD_PREDICTION}: runs 276, 304, 330 ms (downtime 55, 95, 114 ms), the simulator 244 ms (downtime 31 ms); until the ` +
      'thirteenth round\'s refit, 277 ms (downtime 90 ms). Now the simulator checks once more before it completes (at 213 ms ' +
      'against 188), and leaves 44.6 MB for the downtime against 54.8 MB; the lab\'s downtimes say QEMU left more',
  },
  { caseId: 'm1024-idle-128m-hint-on', figure: 'total-time', check: 'spread', reason: `${COLD_PREDICTION}: runs 678, 650, 651 ms, the simulator 772 ms` },
  { caseId: 'm1024-idle-128m-hint-on', figure: 'dirty-sync-count', check: { tolerance: 0.25 }, reason: `${COLD_PREDICTION}: runs 4, 4, 4 syncs, the simulator 5 (the main suite: 5, 5, 5)` },
  {
    caseId: 'm2048-alloc-1g-hint-on', figure: 'total-time', check: { tolerance: 0.2 },
    reason: `${COLD_PREDICTION}: runs 1231, 1082, 1165 ms, the simulator 975 ms (878 ms until the thirteenth round); warm the same ` +
      'migration took 754 ms. QEMU\'s trace of it cold (trace-cold.jsonl): its first pass saved 4.3-7.5 thousand pages per 51 ms iteration, ' +
      'bound by the cold destination\'s 2 MiB faults on thinly spread data, and lasted 850 ms; the simulator\'s data is denser ' +
      '(whole 4 MiB blocks of boot data) and it ends that pass sooner',
  },
  { caseId: 'm2048-alloc-1g-hint-on', figure: 'dirty-sync-count', check: 'spread', reason: `${COLD_PREDICTION}: runs 6, 5, 5 syncs, the simulator 6 (twelfth round): the end game, as in the main suite` },
  { caseId: 'm2048-alloc-128m-hint-on', figure: 'dirty-sync-count', check: 'spread', reason: `${COLD_PREDICTION}: runs 5, 6, 5 syncs, the simulator 6 (twelfth round): the slower driver the fit took from QEMU\'s trace zeroes its last blocks as the pass ends` },
  {
    caseId: 'm2048-idle-128m-hint-on', figure: 'total-time', check: { tolerance: 0.2 },
    reason: `${COLD_PREDICTION}: runs 874, 867, 854 ms, the simulator 999 ms (979 ms before the thirteenth round, +12.9%): the cold ` +
      'first touch the model charges the source\'s driver; the same case warm took 1011 ms, so the lab\'s source memory is not cold the ' +
      'way the probe measures it (docs/fidelity.md, twelfth round)',
  },
  {
    caseId: 'm2048-idle-128m-hint-off', figure: 'dirty-sync-count', check: { tolerance: 0.34 },
    reason: 'runs 4, 4, 4 syncs, the simulator 3: the same extra iteration as in the warm suite (see there), on every cold run',
  },
];

/** The entry for a case's figure in `list` (default: the committed suites'), if any. */
export function knownDeviation(caseId: string, figure: FigureVerdict['name'], list: readonly KnownDeviation[] = KNOWN_DEVIATIONS): KnownDeviation | undefined {
  return list.find((d) => d.caseId === caseId && d.figure === figure);
}
