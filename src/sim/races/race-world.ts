/**
 * The small world of one race-explorer seed: free page hinting × postcopy with the timings that
 * matter moved across each other's boundaries. Every choice comes from the seed alone, so the
 * five policies run the same world and a failing seed can be replayed.
 *
 * What the seed moves (and why it matters):
 *
 * | knob                          | moves                                                      |
 * |-------------------------------|------------------------------------------------------------|
 * | guest tick, migrate offset    | when the guest's hint round runs against BEFORE/AFTER_BITMAP_SYNC (sub-tick offset of `migrate`) |
 * | hint batch, hint pace         | how many 4 MiB blocks one round reports per guest step, or how long each takes on the guest's clock (a round then overlaps pumps, syncs and the switch) |
 * | kick delay                    | how late the host's iothread takes the hints (0: in the kick); hints still queued when the source goes postcopy-active are taken in that window |
 * | stop latency                  | from the source's decision (completion, switch) to vm_stop: the guest runs on, a round requested by the last sync hints after the source went postcopy-active |
 * | postcopy switch               | `at` a time, or after 1 or 2 syncs, or never (precopy)      |
 * | pressure: size, start, hold   | a memory-hungry phase before the switch (the guest writes just-hinted blocks the shrinker gave back; freed again after a hold, new blocks for the next round to hint) or after it (the destination writes hinted, never-sent pages) |
 * | workload, memory, link        | how much is in use, free but written, or free and zero; how fast it goes |
 *
 * Also moved: downtime-limit (mostly 1 ms when a switch is requested, so precopy keeps
 * iterating and the switch happens; sometimes 20 or 300 ms, so the postcopy END section is
 * large and requests must be served while it is written; always 300 ms without a switch, so
 * precopy converges).
 *
 * Fixed: compact backing (one version per page), 4 MiB reserved kernel memory, time limit 5 s,
 * settle 10 ms plus two hint blocks' time. Guests are 32 to 64 MiB, so a run takes
 * milliseconds.
 */
import { Prng } from '../../lib/prng.ts';
import type { FreePageHintPostcopyPolicy } from '../../devices/balloon/postcopy-policy.ts';
import { resolveScenario, type Scenario } from '../scenario/scenario.ts';
import { scenarioDocumentSchema } from '../scenario/schema.ts';

/** Guest memory the kernel keeps (never hinted), MiB. */
const RESERVED_MIB = 4;
const US = 1_000;
const MS = 1_000_000;

/** What one seed chose, in the units the scenario file uses; for reports and replays. */
export interface RaceKnobs {
  readonly memoryMiB: number;
  readonly tickUs: number;
  /** The scenario's workload document. */
  readonly workload: Readonly<Record<string, string | number>>;
  /** `migrate` after boot, ns (a whole number of ms plus a sub-tick offset). */
  readonly migrateAtNs: number;
  readonly hintBatch: number;
  /** Guest time per hint block (the driver's round on the guest's clock), µs; 0: `hintBatch` per step. */
  readonly hintPaceUs: number;
  readonly kickDelayUs: number;
  /** From the source's decision to stop the guest to the stop (the guest still hints meanwhile). */
  readonly stopLatencyUs: number;
  /** `{at: ns}` after migrate, `{afterSyncs: n}`, or null (no switch). */
  readonly postcopySwitch: { readonly atNs: number } | { readonly afterSyncs: number } | null;
  /** Size, hold (null: kept) and start (`afterResumeNs`, or `atNs` after migrate) of the pressure phase, or null. */
  readonly pressure: { readonly sizeMiB: number; readonly holdMs: number | null; readonly afterResumeNs?: number; readonly atNs?: number } | null;
  readonly bandwidthMbit: number;
  readonly latencyUs: number;
  readonly maxBandwidthMiB: number;
  /** downtime-limit, ms: small makes precopy keep iterating (and postcopy switch), 300 converges. */
  readonly downtimeLimitMs: number;
}

/** The knobs of `seed` (the same for every policy). */
export function raceKnobs(seed: number): RaceKnobs {
  const rng = new Prng(seed ^ 0x5eed_cafe);
  const memoryMiB = rng.pick([32, 48, 64]);
  const tickUs = rng.pick([1000, 1000, 2000]);
  const usable = memoryMiB - RESERVED_MIB;
  const workload = pickWorkload(rng, usable);
  const migrateAtNs = rng.int(15, 45) * MS + rng.int(0, tickUs * US - 1);
  const hintBatch = rng.pick([1, 2, 4, 8, 16, 32, 64]);
  const kickDelayUs = rng.chance(0.5) ? 0 : rng.int(100, 3000);
  const s = rng.float();
  const postcopySwitch = s < 0.15
    ? null
    : s < 0.45
      ? { afterSyncs: rng.int(1, 2) }
      : { atNs: rng.chance(0.5) ? rng.int(200 * US, 10 * MS) : rng.int(10 * MS, 150 * MS) };
  const p = rng.float();
  const sizeMiB = Math.max(4, Math.floor(usable * (0.1 + 0.3 * rng.float())));
  // Before the switch, half of the phases free their memory again (new free 4 MiB blocks for
  // the next round to hint, possibly in the switch's window).
  const pressure = p < 0.15
    ? null
    : p < 0.6
      ? { sizeMiB, holdMs: null, afterResumeNs: rng.int(0, 10 * MS) }
      : { sizeMiB, holdMs: rng.chance(0.5) ? rng.int(0, 60) : null, atNs: rng.int(0, 60 * MS) };
  return {
    memoryMiB,
    tickUs,
    workload,
    migrateAtNs,
    hintBatch,
    kickDelayUs,
    postcopySwitch,
    pressure,
    bandwidthMbit: rng.pick([1000, 2500]),
    latencyUs: rng.int(10, 200),
    // Without a switch precopy must converge: the cap then outruns every workload's dirtying.
    maxBandwidthMiB: postcopySwitch === null ? 1024 : rng.pick([64, 128, 256, 1024]),
    stopLatencyUs: rng.chance(0.5) ? 0 : rng.int(100, 3000),
    // Linux zeroes each block it hints under init_on_alloc: 0.25 to 8 ms per 4 MiB block. Up
    // to 25 ms here: a round over a small world's few blocks then lasts as long, next to QEMU's
    // 50 ms iterations, as a round over a guest of gigabytes does.
    hintPaceUs: pickPace(rng),
    downtimeLimitMs: postcopySwitch === null ? 300 : rng.pick([1, 1, 1, 20, 300]),
  };
}

function pickWorkload(rng: Prng, usableMiB: number): Record<string, string | number> {
  switch (rng.pick([0, 0, 1, 1, 2])) {
    case 0:
      return { kind: 'alloc-then-free', rate: '4G', fill: round2(0.3 + 0.4 * rng.float()), hold: `${rng.int(0, 80)}ms` };
    case 1:
      return {
        kind: 'kernel-build',
        rate: `${rng.pick([64, 128, 256])}M`,
        used: `${Math.floor(usableMiB * (0.25 + 0.25 * rng.float()))}M`,
        lifetime: `${rng.int(50, 400)}ms`,
      };
    default:
      return { kind: 'random', rate: `${rng.pick([64, 256, 512])}M`, size: `${Math.floor(usableMiB * (0.2 + 0.3 * rng.float()))}M` };
  }
}

function pickPace(rng: Prng): number {
  const p = rng.float();
  return p < 0.4 ? 0 : p < 0.6 ? rng.int(250, 2000) : rng.int(2000, 25000);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The scenario document of `knobs` under `policy` (what `livemig sim` would read). */
export function raceDocument(knobs: RaceKnobs, policy: FreePageHintPostcopyPolicy, seed: number): Record<string, unknown> {
  const sw = knobs.postcopySwitch;
  const pr = knobs.pressure;
  return {
    name: `race-${seed}`,
    description: 'race explorer world (src/sim/races)',
    seed,
    'time-limit': '5s',
    // Long enough for the destination's driver to finish the block it is on and act on DONE.
    settle: `${10 + Math.ceil((2 * knobs.hintPaceUs) / 1000)}ms`,
    guest: { memory: `${knobs.memoryMiB}M`, backing: 'compact', tick: `${knobs.tickUs}us`, reserved: `${RESERVED_MIB}M` },
    workload: knobs.workload,
    devices: {
      balloon: {
        'free-page-hint': true,
        'free-page-hint-postcopy': policy,
        'hint-batch': knobs.hintBatch,
        'kick-delay': `${knobs.kickDelayUs}us`,
        ...(knobs.hintPaceUs > 0 ? { 'hint-pace': { block: `${knobs.hintPaceUs}us` } } : {}),
      },
    },
    link: { bandwidth: `${knobs.bandwidthMbit}Mbit/s`, latency: `${knobs.latencyUs}us`, 'scan-cost': '250ns' },
    capabilities: { 'postcopy-ram': true, 'return-path': true, 'postcopy-blocktime': true },
    parameters: { 'max-bandwidth': `${knobs.maxBandwidthMiB}M`, 'downtime-limit': knobs.downtimeLimitMs },
    migration: { start: `${knobs.migrateAtNs}ns`, 'stop-latency': `${knobs.stopLatencyUs}us` },
    switch: { postcopy: sw === null ? null : 'atNs' in sw ? { at: `${sw.atNs}ns` } : { 'after-syncs': sw.afterSyncs } },
    pressure: pr === null
      ? null
      : {
          size: `${pr.sizeMiB}M`,
          rate: '1G',
          hold: pr.holdMs === null ? null : `${pr.holdMs}ms`,
          start: pr.afterResumeNs !== undefined ? { 'after-resume': `${pr.afterResumeNs}ns` } : { at: `${pr.atNs ?? 0}ns` },
        },
    // `refuse` refuses at the start; every other policy is expected to complete.
    expect: { status: policy === 'refuse' ? 'failed' : 'completed' },
  };
}

/** The scenario of `seed` under `policy`. */
export function raceScenario(seed: number, policy: FreePageHintPostcopyPolicy): Scenario {
  return resolveScenario(scenarioDocumentSchema.parse(raceDocument(raceKnobs(seed), policy, seed)));
}
