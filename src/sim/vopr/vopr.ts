/**
 * The VOPR (style anchors §1): a seed draws a fault plan (vopr-faults.ts), a world runs it
 * (vopr-world.ts, safety phase then liveness phase), and every invariant of DESIGN §4 is
 * judged over the end state, plus the world's own rules (no split brain, a failed precopy
 * leaves the guest running at the source, QMP misuse refused with QEMU's texts, liveness).
 * A failing seed prints its plan and fault log; the same seed and commit give the same trace
 * hash, byte for byte.
 *
 * Invariants 3 (stall bound), 4 (hint recovery) and 5 (unplugged memory) are reported as not
 * applicable, with the reason: this world has no balloon or virtio-mem, and link faults make
 * a link-derived stall bound meaningless.
 *
 * @example
 * const r = runVoprSeed(42);
 * if (!r.ok) console.log(formatFailure(r).join('\n'));
 */
import { checkMemoryEquality } from '../checkers/memory-equality.ts';
import { checkPostcopyPlacement } from '../checkers/postcopy-placement.ts';
import { checkStatusAndQueues } from '../checkers/status-and-queues.ts';
import { checkIncrementerOracle } from '../checkers/incrementer.ts';
import { HINT_RECOVERY } from '../checkers/hint-recovery.ts';
import { STALL_BOUND } from '../checkers/stall-bound.ts';
import { UNPLUGGED_MEMORY } from '../checkers/unplugged.ts';
import { notApplicable, type InvariantVerdict } from '../checkers/verdict.ts';
import { drawPlan, formatPlan, type VoprPlan } from './vopr-faults.ts';
import { fireFaults } from './vopr-fire.ts';
import { VoprWorld, type VoprOutcome, type VoprWorldOptions } from './vopr-world.ts';
import type { PageStore } from '../../memory/page-store.ts';

/** What one seed gave. */
export interface VoprSeedResult {
  readonly seed: number;
  readonly plan: VoprPlan;
  readonly outcome: VoprOutcome | null;
  readonly verdicts: readonly InvariantVerdict[];
  /** World rules broken (split brain, liveness, QMP texts, ...). */
  readonly violations: readonly string[];
  readonly faultLog: readonly string[];
  readonly attempts: number;
  readonly recoveries: number;
  /** Failures after EOF where the source kept the guest stopped and the operator ran `cont`. */
  readonly operatorConts: number;
  readonly postcopy: boolean;
  readonly traceHash: string;
  readonly lines: readonly string[];
  readonly endNs: number;
  readonly ok: boolean;
}

const NOTHING: { has(p: number): boolean } = { has: () => false };

/** Runs one seed (pure: the same seed and options give the same result and trace hash). */
export function runVoprSeed(seed: number, options: VoprWorldOptions = {}): VoprSeedResult {
  const plan = drawPlan(seed);
  const world = new VoprWorld(plan, options);
  world.run(fireFaults);
  const verdicts = judge(world);
  const violations = [...world.violations];
  const attempts = world.attempts;
  return {
    seed,
    plan,
    outcome: world.outcome,
    verdicts,
    violations,
    faultLog: world.faultLog,
    attempts: attempts.length,
    recoveries: attempts.reduce((n, a) => n + a.recoveries, 0),
    operatorConts: world.operatorConts,
    postcopy: attempts.some((a) => a.sourceStatuses.some((s) => s.to === 'postcopy-active')),
    traceHash: world.traceHash,
    lines: world.lines,
    endNs: world.scheduler.nowNs,
    ok: violations.length === 0 && verdicts.every((v) => v.ok),
  };
}

/** DESIGN §4's checkers over the world's end state. */
function judge(world: VoprWorld): InvariantVerdict[] {
  const a = world.attempt;
  const outcome = world.outcome;
  // A destination that completed while the source did not still runs the guest: judge it.
  const kind = outcome?.kind;
  const completed = (kind === 'completed' || kind === 'destination-completed-only') && a !== null;
  const lost = outcome === null || outcome.kind === 'guest-lost';
  const why = outcome === null ? 'the run did not end' : 'why' in outcome ? outcome.why : '';
  const verdicts: InvariantVerdict[] = [];
  verdicts.push(completed
    ? checkMemoryEquality({
      notApplicableReason: null,
      source: world.sourceStore,
      destination: a.destStore,
      writtenAfterResume: world.writtenAfterResume,
      firstWriteMismatch: world.firstWriteMismatch,
      allowedToDiffer: NOTHING,
    })
    : notApplicable('memory-equality', `no completed migration (${why})`));
  if (a !== null && a.destAlive && completed) {
    const stats = a.dest.stats();
    verdicts.push(checkPostcopyPlacement({
      postcopy: a.destStatuses.some((s) => s.to === 'postcopy-active'),
      duplicatePlacements: [],
      duplicatePlacementCount: stats.placedTwiceAttempts,
      faultCount: world.faults,
      unservedFaults: stats.outstandingFaults.map((f) => ({ pageIndex: f.pageIndex, faultNs: 0 })),
      missingAtPrecopyResume: (a.dest.missingPagesAtPrecopyRun ?? 0) > 0 ? a.dest.missingRanges() : a.dest.missingPagesAtPrecopyRun === null ? null : [],
      allowedToDiffer: NOTHING,
    }));
  } else {
    verdicts.push(notApplicable('postcopy-placement', `no completed migration (${why})`));
  }
  verdicts.push(notApplicable(STALL_BOUND, 'link faults (stalls, collapses, cuts) void a link-derived bound'));
  verdicts.push(notApplicable(HINT_RECOVERY, 'the VOPR guest has no balloon'));
  verdicts.push(notApplicable(UNPLUGGED_MEMORY, 'the VOPR guest has no virtio-mem'));
  verdicts.push(statusVerdict(world));
  verdicts.push(lost
    ? notApplicable('incrementer-oracle', `the guest is gone (${why})`)
    : incrementerVerdict(world));
  return verdicts;
}

/** Invariant 6 over every attempt, both sides. */
function statusVerdict(world: VoprWorld): InvariantVerdict {
  let last: InvariantVerdict | null = null;
  for (const a of world.attempts) {
    const v = checkStatusAndQueues({ source: a.sourceStatuses, destination: a.destStatuses, queues: [] });
    if (!v.ok) return { ...v, detail: `attempt ${a.index}: ${v.detail}` };
    last = v;
  }
  return last ?? notApplicable('status-and-queues', 'no migration');
}

/** Invariant 7 over the memory the guest runs on at the end. */
function incrementerVerdict(world: VoprWorld): InvariantVerdict {
  const a = world.attempt;
  const memory: PageStore & { pageVersion(p: number): number } = world.guestSide === 'destination' && a !== null ? a.destStore : world.sourceStore;
  const base = world.baseVersions;
  return checkIncrementerOracle({
    incrementer: {
      pageCount: world.plan.pageCount,
      pageAt: (i) => i,
      readByte0: (p) => (memory.pageVersion(p) - base[p]) & 0xff,
      cursor: world.cursor,
    },
  });
}

/** A failing seed, as printed: what to rerun, the plan, what fired, what broke. */
export function formatFailure(r: VoprSeedResult): string[] {
  const out = [`VOPR seed ${r.seed} FAILED (trace ${r.traceHash}); reproduce: npm run vopr -- --seed ${r.seed} --seeds 1 --verbose`];
  out.push(...formatPlan(r.plan));
  out.push('fault log:', ...r.faultLog.map((l) => `  ${l}`));
  out.push(`outcome: ${r.outcome === null ? 'none' : r.outcome.kind}`);
  for (const v of r.violations) out.push(`  violation: ${v}`);
  for (const v of r.verdicts) if (!v.ok) out.push(`  invariant ${v.name}: ${v.detail}`);
  return out;
}

/** Totals of a sweep. */
export interface VoprSummary {
  seeds: number;
  failed: number[];
  outcomes: Record<string, number>;
  postcopy: number;
  attemptsRetried: number;
  recoveries: number;
  operatorConts: number;
  faultsByKind: Record<string, number>;
}

export function emptySummary(): VoprSummary {
  return { seeds: 0, failed: [], outcomes: {}, postcopy: 0, attemptsRetried: 0, recoveries: 0, operatorConts: 0, faultsByKind: {} };
}

/** Adds one seed to `s`. */
export function addToSummary(s: VoprSummary, r: VoprSeedResult): void {
  s.seeds++;
  if (!r.ok) s.failed.push(r.seed);
  const kind = r.outcome?.kind ?? 'none';
  s.outcomes[kind] = (s.outcomes[kind] ?? 0) + 1;
  if (r.postcopy) s.postcopy++;
  s.attemptsRetried += Math.max(0, r.attempts - 1);
  s.recoveries += r.recoveries;
  s.operatorConts += r.operatorConts;
  for (const f of r.plan.faults) {
    const k = f.kind === 'qmp' ? `qmp:${f.command}` : f.kind === 'crash' ? `crash:${f.side}` : f.kind;
    s.faultsByKind[k] = (s.faultsByKind[k] ?? 0) + 1;
  }
}
