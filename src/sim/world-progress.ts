/**
 * The per-iteration progress of a run, in the spirit of QEMU's guestperf reports: one row per
 * dirty bitmap sync of the source (dirty-sync-count), taken from the source's query-migrate,
 * plus the `sync` and `iteration` trace records.
 */
import type { MigrationInfoQmp } from '../core/stats.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { TraceEvents } from './trace-events.ts';

/** One row of the progress table. */
export interface ProgressRow {
  /** dirty-sync-count at this row. */
  readonly iteration: number;
  /** Virtual time, ns. */
  readonly timeNs: number;
  /** Source status then. */
  readonly status: string;
  /** ram.transferred, bytes. */
  readonly transferredBytes: number;
  /** ram.remaining, bytes. */
  readonly remainingBytes: number;
  /** ram.dirty-pages-rate × page size, bytes/s. */
  readonly dirtyBytesPerSec: number;
  /** ram.mbps (last bandwidth window). */
  readonly mbps: number;
}

export class WorldProgress {
  /** Rows, one per sync. */
  readonly rows: ProgressRow[] = [];
  /** The source's dirty-sync-count as last sampled. */
  syncCount = 0;
  /** The last query-migrate sampled. */
  last: MigrationInfoQmp | null = null;

  constructor(private readonly trace: TraceEvents) {}

  /** Samples a source query-migrate; adds a row when dirty-sync-count grew. */
  sample(info: MigrationInfoQmp, nowNs: number): void {
    this.last = info;
    const ram = info.ram;
    if (ram === undefined) return;
    const count = ram['dirty-sync-count'];
    if (count <= this.syncCount) return;
    this.syncCount = count;
    const row: ProgressRow = {
      iteration: count,
      timeNs: nowNs,
      status: info.status ?? 'none',
      transferredBytes: ram.transferred,
      remainingBytes: ram.remaining,
      dirtyBytesPerSec: ram['dirty-pages-rate'] * TARGET_PAGE_SIZE,
      mbps: ram.mbps,
    };
    this.rows.push(row);
    this.trace.sync(nowNs, count, ram.remaining);
    this.trace.iteration(nowNs, count, ram.transferred, ram.remaining, row.dirtyBytesPerSec, ram.mbps);
  }
}
