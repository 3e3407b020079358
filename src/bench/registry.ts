/**
 * The benchmark registry's shapes. A group is a named set of measurements that returns table
 * rows (table.ts); main.ts runs the groups it is asked for, in registry order, and prints
 * their rows. Adding a group (QEMU side by side, simulator scale, ...) means writing one
 * module that exports a BenchGroup and listing it in groups.ts.
 */
import type { BenchRow } from './table.ts';

/** What a group gets from the runner. */
export interface BenchContext {
  /** --quick: smaller sizes and fewer runs, for a fast look (figures are less stable). */
  readonly quick: boolean;
  /** Monotonic clock in nanoseconds. */
  readonly clockNs: () => number;
  /** Progress lines (to stderr, so that --json output stays clean). */
  readonly progress: (line: string) => void;
  /**
   * A row-less note: a figure the group could not measure here, and why. Printed after the
   * table and listed under `notes` in --json. Absent when a caller runs a group by hand.
   */
  readonly note?: (text: string) => void;
}

/**
 * Thrown by a group that can measure nothing on this machine (QEMU missing, ...). The run goes
 * on with the other groups; the reason is printed after the table and listed under `skipped`
 * in --json. Benchmarks are not tests: a missing tool is a note, not a crash.
 */
export class BenchSkipped extends Error {
  override name = 'BenchSkipped';
  constructor(readonly reason: string) {
    super(reason);
  }
}

export interface BenchGroup {
  /** Short name used by --only and in the table's group column. */
  readonly name: string;
  /** One line for --help and --list. */
  readonly description: string;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

/** Monotonic nanoseconds from process.hrtime. */
/**
 * How long every bench migration pair waits between its processes' start and `migrate`
 * (LIVEMIG_BENCH_SETTLE_MS, default 1000 ms): the same for QEMU → QEMU, QEMU → livemig and
 * livemig → livemig, so that no side's start-up (a QEMU still initialising, a livemig
 * destination prefaulting its RAM) is counted for one engine and not for the other.
 */
export function benchSettleMs(): number {
  return Number(process.env.LIVEMIG_BENCH_SETTLE_MS ?? 1000);
}

export function hrtimeNs(): number {
  return Number(process.hrtime.bigint());
}

/**
 * Times `fn` `runs` times after `warmups` untimed calls and returns each run's nanoseconds.
 * `before` (untimed) runs ahead of every call, e.g. to reset a buffer.
 */
export async function timeRuns(
  ctx: BenchContext,
  runs: number,
  fn: () => void | Promise<void>,
  options: { readonly warmups?: number; readonly before?: () => void } = {},
): Promise<number[]> {
  for (let i = 0; i < (options.warmups ?? 1); i++) {
    options.before?.();
    await fn();
  }
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    options.before?.();
    const start = ctx.clockNs();
    await fn();
    samples.push(ctx.clockNs() - start);
  }
  return samples;
}

/** Nanosecond samples → GB/s (1 GB = 1e9 bytes) of `bytes` per run. */
export function gbPerSecond(bytes: number, samplesNs: readonly number[]): number[] {
  return samplesNs.map((ns) => bytes / ns);
}
