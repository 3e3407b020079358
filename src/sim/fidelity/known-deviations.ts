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

/** KASLR moves the kernel's data at every boot: where the last dirty bytes sit differs per run. */
const LAYOUT =
  'the convergence check lands before or after the last data at the top of RAM depending on where the kernel put its data at boot (KASLR); ' +
  'the simulated guest has one layout (boot data spread evenly through the lower half of RAM, a data region at the top)';

/**
 * The host's memory (sixth round, docs/fidelity.md): the lab's machine hands free memory back
 * to its hypervisor, so a destination whose RAM lands on such memory pays about 3 ms more per
 * 2 MiB it writes. The scenarios model a warm host; the cold-host suite measured the same cases
 * cold. A run of the committed suites could land on either, or on a mix.
 */
const HOST_MEMORY =
  'the lab host\'s memory: on a host that hands free memory back to its hypervisor a destination pays about 3 ms more for each 2 MiB of RAM ' +
  'it writes first (measured: npm run lab -- --host-probe, and the cold-host suite); the scenario models a warm host, and the lab runs of this ' +
  'case landed on cold memory, warm memory or a mix. Checked: the lab median lies between the simulator\'s warm and cold predictions (±15%)';

export const KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  { caseId: 'm1024-idle-1g-hint-off', figure: 'downtime', check: 'spread', reason: `${LAYOUT}; lab runs 28, 3, 3 ms, the simulator 34 ms (like the first run: it converges with the top region unsent)` },
  {
    caseId: 'm1024-idle-1g-hint-off-ioa0',
    figure: 'total-time',
    check: 'host-state',
    reason: `${HOST_MEMORY}: runs 310, 283, 204 ms; the same migration took 209-210 ms twice in the main suite (warm, the simulator 196 ms) and 328-346 ms in the cold-host suite (the simulator 319 ms cold)`,
  },
  {
    caseId: 'm1024-idle-1g-hint-on-ioa0',
    figure: 'total-time',
    check: 'host-state',
    reason: `${HOST_MEMORY}: runs 222, 256, 203 ms against 161 ms warm and 264 ms cold. Also: the simulated hinter, fast and starting with the migration, hints 760 MB ` +
      'ahead of the scan; the lab guests skipped 671, 179 and 60 MB (hints in at different iteration boundaries, which QEMU 7.2\'s code does not decide; fifth round)',
  },
  {
    caseId: 'm2048-idle-1g-hint-on',
    figure: 'total-time',
    check: 'host-state',
    reason: `${HOST_MEMORY}: runs 652, 502, 627 ms against 493 ms warm and 628 ms cold; the cold-host suite measured 562 ms (sixth round). ` +
      'The fifth round\'s guess (host faults while the guest zeroes never-touched memory) was the right family, on the wrong side: the destination',
  },
];

/** The cold-host suite's deviations (testdata/guest-lab/cold-host.jsonl against scenarios/lab/cold-host). */
const GUEST_SPEED =
  'this machine is faster than the lab\'s: it ran the guest 1.83x faster (uptime at /init 1.53 s against 2.80 s, testdata/guest-lab/cold-host.host.json) ' +
  'and its stream reaches the 1 GiB/s cap when warm (testdata/guest-lab/warm-host.jsonl), while the cold-host scenarios keep the lab machine\'s ' +
  'calibration (stream, scan costs, the hint driver\'s pace); dividing the pace by 1.83 moves these predictions by under 6%, and a faster stream ' +
  'brings the 128 MiB/s ones within 12% (sixth round), but this machine has no calibration of its own yet';

/** The cold-host suite's deviations (testdata/guest-lab/cold-host.jsonl against scenarios/lab/cold-host). */
export const COLD_HOST_KNOWN_DEVIATIONS: readonly KnownDeviation[] = [
  { caseId: 'm1024-alloc-1g-hint-on', figure: 'dirty-sync-count', check: { tolerance: 0.5 }, reason: `${GUEST_SPEED}: runs 4, 5, 4 syncs, the simulator 6 (the main suite: 6, 5, 6)` },
  { caseId: 'm1024-idle-128m-hint-on', figure: 'total-time', check: { tolerance: 0.25 }, reason: `${GUEST_SPEED}: runs 678, 650, 651 ms (the main suite: 741, 710, 910), the simulator 796 ms` },
  { caseId: 'm1024-idle-128m-hint-on', figure: 'dirty-sync-count', check: { tolerance: 0.25 }, reason: `${GUEST_SPEED}: runs 4, 4, 4 syncs (the main suite: 5, 5, 5), the simulator 5` },
  { caseId: 'm2048-alloc-1g-hint-on', figure: 'total-time', check: { tolerance: 0.3 }, reason: `${GUEST_SPEED}: runs 1231, 1082, 1165 ms, the simulator 1442 ms` },
  { caseId: 'm2048-alloc-1g-hint-on', figure: 'transferred', check: { tolerance: 0.2 }, reason: `${GUEST_SPEED}: runs 283, 245, 251 MiB, the simulator 293 MiB` },
  { caseId: 'm2048-alloc-1g-hint-on', figure: 'dirty-sync-count', check: { tolerance: 0.25 }, reason: `${GUEST_SPEED}: runs 6, 5, 5 syncs, the simulator 6` },
  { caseId: 'm2048-alloc-128m-hint-on', figure: 'total-time', check: { tolerance: 0.3 }, reason: `${GUEST_SPEED}: runs 1569, 1560, 1658 ms (the main suite: 1993, 2019, 2005), the simulator 1944 ms` },
  { caseId: 'm2048-idle-128m-hint-on', figure: 'total-time', check: { tolerance: 0.25 }, reason: `${GUEST_SPEED}: runs 874, 867, 854 ms (the main suite: 1041, 912, 950), the simulator 1020 ms` },
  {
    caseId: 'm2048-idle-128m-hint-off',
    figure: 'dirty-sync-count',
    check: { tolerance: 0.34 },
    reason: 'runs 4, 4, 4 syncs where the main suite had 3, 3, 3 and the simulator has 3 (cold or warm): one more pass at 128 MiB/s that the model does not give; not explained',
  },
];

/** The entry for a case's figure in `list` (default: the committed suites'), if any. */
export function knownDeviation(caseId: string, figure: FigureVerdict['name'], list: readonly KnownDeviation[] = KNOWN_DEVIATIONS): KnownDeviation | undefined {
  return list.find((d) => d.caseId === caseId && d.figure === figure);
}
