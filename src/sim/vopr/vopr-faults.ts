/**
 * The VOPR's fault plan: everything a seed decides before its world runs, drawn from one Prng
 * so the seed alone reproduces it (style anchors §1: seed → logged swarm options). The plan is
 * printed with a failing seed, one fault a line.
 *
 * Fault kinds (all fire inside the safety phase, [0, SAFETY_NS)):
 *
 * | kind        | what happens                                                                  |
 * |-------------|-------------------------------------------------------------------------------|
 * | cut         | one direction (stream or return path) of the live connection drops what it     |
 * |             | carries; the other direction follows `lagNs` later and both engines are told  |
 * | stall       | one direction moves nothing for a while (moves the stream and the return path  |
 * |             | against each other; each stays FIFO, as TCP keeps it)                          |
 * | bandwidth   | the stream collapses to a fraction of its rate until the liveness phase         |
 * | crash       | the destination or the source process dies (its engine is gone)                |
 * | qmp         | a command at a bad moment: cancel at the switch, start-postcopy twice,           |
 * |             | set-parameters while active, migrate-pause / resume / migrate-recover outside   |
 * |             | postcopy                                                                       |
 *
 * What it deliberately doesn't do: byte-level loss or corruption (TCP hides them), faults in
 * the liveness phase (it exists to show the system converges once faults heal).
 */
import { Prng } from '../../lib/prng.ts';

/** The phase with faults, ns of virtual time. */
export const SAFETY_NS = 300_000_000;
/** After the safety phase: the migration must end within this, ns. */
export const LIVENESS_NS = 3_000_000_000;

export type Direction = 'stream' | 'return-path';
export type QmpMisuse = 'cancel-at-switch' | 'start-postcopy-twice' | 'set-parameters-active' | 'pause-outside-postcopy' | 'resume-not-paused' | 'recover-not-paused';

/** One planned fault; `atNs` is virtual time from the start of the run. */
export type Fault =
  | { readonly kind: 'cut'; readonly atNs: number; readonly direction: Direction; readonly lagNs: number }
  | { readonly kind: 'stall'; readonly atNs: number; readonly direction: Direction; readonly durationNs: number }
  | { readonly kind: 'bandwidth'; readonly atNs: number; readonly fraction: number }
  | { readonly kind: 'crash'; readonly atNs: number; readonly side: 'source' | 'destination' }
  | { readonly kind: 'qmp'; readonly atNs: number; readonly command: QmpMisuse };

/** What one seed chose. */
export interface VoprPlan {
  readonly seed: number;
  /** Guest RAM, pages of 4 KiB. */
  readonly pageCount: number;
  /** Guest step, ns, and pages the incrementer writes per step. */
  readonly tickNs: number;
  readonly pagesPerTick: number;
  /** Link: stream rate, bytes/s; one-way latencies of the two directions, ns. */
  readonly bandwidthBytesPerSec: number;
  readonly streamLatencyNs: number;
  readonly returnLatencyNs: number;
  /** migrate-start-postcopy this long after `migrate`, or null (precopy only). */
  readonly postcopyAfterNs: number | null;
  /** From a failure or pause to the retry or recovery, ns. */
  readonly retryDelayNs: number;
  readonly faults: readonly Fault[];
}

const MS = 1_000_000;
const US = 1_000;

/** The plan of `seed` (pure: the same seed gives the same plan). */
export function drawPlan(seed: number): VoprPlan {
  const rng = new Prng(seed ^ 0x0b0e_5eed);
  const pageCount = rng.pick([2048, 3072, 4096]); // 8 to 16 MiB
  const faults: Fault[] = [];
  const count = rng.int(0, 4);
  for (let i = 0; i < count; i++) faults.push(drawFault(rng));
  faults.sort((a, b) => a.atNs - b.atNs);
  return {
    seed,
    pageCount,
    tickNs: rng.pick([100, 200, 500]) * US,
    pagesPerTick: rng.int(1, 4),
    bandwidthBytesPerSec: rng.pick([60, 125, 250]) * 1_000_000,
    streamLatencyNs: rng.int(20, 2000) * US,
    returnLatencyNs: rng.int(20, 2000) * US,
    postcopyAfterNs: rng.chance(0.5) ? rng.int(0, 80) * MS : null,
    retryDelayNs: rng.int(1, 20) * MS,
    faults,
  };
}

function drawFault(rng: Prng): Fault {
  const atNs = rng.int(0, SAFETY_NS / US - 1) * US;
  const direction: Direction = rng.chance(0.5) ? 'stream' : 'return-path';
  const r = rng.float();
  if (r < 0.35) return { kind: 'cut', atNs, direction, lagNs: rng.int(0, 3000) * US };
  if (r < 0.55) return { kind: 'stall', atNs, direction, durationNs: rng.int(1, 150) * MS };
  if (r < 0.7) return { kind: 'bandwidth', atNs, fraction: rng.pick([0.001, 0.01, 0.1]) };
  if (r < 0.8) return { kind: 'crash', atNs, side: rng.chance(0.75) ? 'destination' : 'source' };
  const commands: readonly QmpMisuse[] = ['cancel-at-switch', 'start-postcopy-twice', 'set-parameters-active', 'pause-outside-postcopy', 'resume-not-paused', 'recover-not-paused'];
  return { kind: 'qmp', atNs, command: rng.pick(commands) };
}

/** One line per fault, for the failure report. */
export function formatFault(f: Fault): string {
  const at = `${(f.atNs / MS).toFixed(3)}ms`;
  switch (f.kind) {
    case 'cut':
      return `${at} cut ${f.direction} (other direction ${(f.lagNs / MS).toFixed(3)}ms later)`;
    case 'stall':
      return `${at} stall ${f.direction} for ${(f.durationNs / MS).toFixed(3)}ms`;
    case 'bandwidth':
      return `${at} stream bandwidth x${f.fraction} until liveness`;
    case 'crash':
      return `${at} crash ${f.side}`;
    case 'qmp':
      return `${at} qmp ${f.command}`;
  }
}

/** The whole plan as text lines. */
export function formatPlan(plan: VoprPlan): string[] {
  const head = `seed ${plan.seed}: ${plan.pageCount} pages, tick ${plan.tickNs / US}us x${plan.pagesPerTick}, `
    + `stream ${plan.bandwidthBytesPerSec / 1e6} MB/s, latency ${plan.streamLatencyNs / US}/${plan.returnLatencyNs / US}us, `
    + `postcopy ${plan.postcopyAfterNs === null ? 'never' : `at +${plan.postcopyAfterNs / MS}ms`}, retry after ${plan.retryDelayNs / MS}ms`;
  return [head, ...plan.faults.map((f) => `  ${formatFault(f)}`)];
}
