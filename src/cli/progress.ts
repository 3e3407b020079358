/**
 * The one progress bar of the CLI (`livemig start` on a real migration, `livemig sim` on a
 * simulated one): a bar over the RAM already handled, the status, the iteration (dirty-sync
 * count), the bytes remaining, the rate and the ETA, all read from query-migrate. The rate is
 * query-migrate's own `mbps` (QEMU's throughput over the last closed bandwidth window, as `info
 * migrate` shows it), so before the first window closes there is none, and no ETA: an average
 * over the setup's first tenths of a second would promise an ETA the run does not keep.
 *
 *   [##########....................] active          pass 2  remaining   681.2 MiB    879 MB/s  ETA 0.8 s  at 0.5 s
 *
 * `elapsedS` and the rate are on the migration's own clock: wall time for a real run, virtual
 * time for a simulated one (then the ETA is in simulated seconds too).
 *
 * On a terminal the line is redrawn in place (`\r`) at most every REDRAW_MS of wall time and
 * ended with a newline by `finish`. Elsewhere it is quiet, unless `lineEveryMs` asks for a
 * plain line that often (`livemig start` does, for logs of long runs).
 */
import { formatBytes } from '../lib/units.ts';
import type { MigrationInfoQmp } from '../core/stats.ts';
import type { CliIo } from './io.ts';

/** What one progress line shows. */
export interface ProgressSample {
  readonly status: string;
  /** Dirty bitmap syncs so far (QEMU's passes). */
  readonly pass: number;
  readonly remainingBytes: number;
  readonly totalBytes: number;
  readonly transferredBytes: number;
  /** query-migrate's mbps (the last closed bandwidth window), bytes/s; 0 before the first. */
  readonly throughputBytesPerSec: number;
  /** Time since `migrate`, s, on the migration's clock. */
  readonly elapsedS: number;
}

const BAR_WIDTH = 30;
/** Least wall time between two redraws on a terminal. */
export const REDRAW_MS = 100;

/** The sample of a query-migrate reply (before the first RAM statistics: all of RAM remains). */
export function progressSampleOf(info: MigrationInfoQmp, totalBytes: number, elapsedS: number): ProgressSample {
  const ram = info.ram;
  return {
    status: info.status ?? 'setup',
    pass: ram?.['dirty-sync-count'] ?? 0,
    remainingBytes: ram?.remaining ?? totalBytes,
    totalBytes,
    transferredBytes: ram?.transferred ?? 0,
    throughputBytesPerSec: ((ram?.mbps ?? 0) * 1e6) / 8,
    elapsedS,
  };
}

/** One progress line (no newline). Rate = query-migrate's throughput; ETA = remaining / rate. */
export function progressLine(s: ProgressSample): string {
  const done = s.totalBytes > 0 ? Math.max(0, Math.min(1, 1 - s.remainingBytes / s.totalBytes)) : 1;
  const filled = Math.round(done * BAR_WIDTH);
  const rate = s.throughputBytesPerSec;
  const etaS = s.remainingBytes === 0 ? 0 : rate > 0 ? s.remainingBytes / rate : NaN;
  const rateText = rate > 0 ? (rate / 1e6).toFixed(0) : '-';
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${s.status.padEnd(15)} ` +
    `pass ${s.pass}  remaining ${formatBytes(s.remainingBytes).padStart(10)}  ` +
    `${rateText.padStart(5)} MB/s  ETA ${Number.isFinite(etaS) ? `${etaS.toFixed(1)} s` : '-'}  at ${s.elapsedS.toFixed(1)} s`;
}

export interface ProgressBarOptions {
  /** Redraw in place (a terminal). */
  readonly tty: boolean;
  /** Not a terminal: a plain line this often (wall ms), or null for none (default). */
  readonly lineEveryMs?: number | null;
  /** Wall clock, ms. */
  readonly wallNowMs: () => number;
}

export class ProgressBar {
  private lastDrawMs = -Infinity;

  constructor(private readonly io: CliIo, private readonly options: ProgressBarOptions) {}

  /** Whether `update` can print anything at all (callers may skip building samples). */
  get active(): boolean {
    return this.options.tty || (this.options.lineEveryMs ?? null) !== null;
  }

  /**
   * Draws the sample `take` returns if enough wall time passed since the last line; `take` is
   * not called otherwise (a query-migrate per simulator step would cost).
   */
  update(take: () => ProgressSample): void {
    const { tty, lineEveryMs = null, wallNowMs } = this.options;
    const now = wallNowMs();
    const every = tty ? REDRAW_MS : lineEveryMs;
    if (every === null || now - this.lastDrawMs < every) return;
    this.lastDrawMs = now;
    this.draw(take());
  }

  /** The last sample; on a terminal the line is ended so that what follows starts on its own. */
  finish(sample: ProgressSample): void {
    if (!this.options.tty) return;
    this.draw(sample);
    this.io.out('\n');
  }

  private draw(sample: ProgressSample): void {
    this.io.out(this.options.tty ? `\r${progressLine(sample)}` : `${progressLine(sample)}\n`);
  }
}
