/**
 * Watching a real-mode migration (two LivemigVm in this process, as `livemig start` runs them)
 * for the same views a simulated run gets: progress samples of the source's query-migrate, each
 * side's status changes, one iteration row per dirty bitmap sync, and page-state maps read from
 * the VMs' own bitmaps: the destination's received map, the source's migration bitmap and the
 * pages the guest hinted free. Times are wall-clock nanoseconds from `start()`.
 *
 * It only reads. `poll()` is called by the shell (every 100 ms in `livemig start`); a map is
 * taken at every status change and sync and at most every MAP_INTERVAL_NS otherwise.
 */
import { Bitmap } from '../lib/bitmap.ts';
import type { LivemigVm } from '../host/vm.ts';
import type { DashboardEvents, IterationRow, ProgressSample, RunSummary, StatusChange, Verdict } from './api-types.ts';
import { snapshotOf } from './page-map.ts';
import { ramFigures } from './result-summary.ts';

/** Least wall time between two timed page maps. */
const MAP_INTERVAL_NS = 250_000_000;

export interface RealRunInfo {
  /** What ran, for the view's title (`livemig start`). */
  readonly name: string;
  readonly description: string;
  readonly seed: number;
}

export class RealRunObserver {
  private readonly t0Ns = process.hrtime.bigint();
  private sourceStatus = 'none';
  private destinationStatus = 'none';
  private syncs = 0;
  private lastMapNs = -Infinity;
  private lastPollNs = 0;
  private hinted: Bitmap | null = null;
  private hintedCount = -1;

  constructor(
    private readonly sink: DashboardEvents,
    private readonly source: LivemigVm,
    private readonly destination: LivemigVm,
    private readonly info: RealRunInfo,
  ) {}

  private nowNs(): number {
    return Number(process.hrtime.bigint() - this.t0Ns);
  }

  private get pageCount(): number {
    return this.source.machine.backing.pageCount;
  }

  /** The run starts (before `migrate`). */
  start(): void {
    this.sink.runStarted({
      id: 0, kind: 'report', scenario: this.info.name, description: this.info.description, seed: this.info.seed,
      pageCount: this.pageCount, overrides: [], pageMapOrigin: 'world',
    });
    this.poll();
  }

  /** One look at both VMs: a sample, status changes, a sync row, maybe a map. */
  poll(): void {
    const t = this.nowNs();
    this.lastPollNs = t;
    const info = this.source.queryMigrate();
    const ram = info.ram;
    const statuses: StatusChange[] = [];
    const sourceStatus = this.source.outgoing?.status ?? 'none';
    const destinationStatus = this.destination.incoming?.status ?? 'none';
    if (sourceStatus !== this.sourceStatus) statuses.push({ tNs: t, side: 'source', from: this.sourceStatus, to: sourceStatus });
    if (destinationStatus !== this.destinationStatus) statuses.push({ tNs: t, side: 'destination', from: this.destinationStatus, to: destinationStatus });
    this.sourceStatus = sourceStatus;
    this.destinationStatus = destinationStatus;
    const samples: ProgressSample[] = [];
    const iterations: IterationRow[] = [];
    if (ram !== undefined) {
      const dirtyBytesPerSec = ram['dirty-pages-rate'] * ram['page-size'];
      samples.push({ tNs: t, status: info.status ?? 'none', remainingBytes: ram.remaining, transferredBytes: ram.transferred, dirtyBytesPerSec, mbps: ram.mbps, dirtiedPages: null });
      const syncs = ram['dirty-sync-count'];
      if (syncs > this.syncs) {
        iterations.push({ n: syncs, tNs: t, transferredBytes: ram.transferred, remainingBytes: ram.remaining, dirtyBytesPerSec, mbps: ram.mbps });
        this.syncs = syncs;
      }
    }
    if (samples.length + iterations.length + statuses.length > 0) this.sink.progress({ samples, iterations, statuses, marks: [], latency: null });
    const moment = statuses.length > 0 || iterations.length > 0;
    if (moment || t - this.lastMapNs >= MAP_INTERVAL_NS) this.snapshot(t, statuses.length > 0 ? `${statuses[0].side} ${statuses[0].to}` : iterations.length > 0 ? 'sync' : 'time');
  }

  /** The guest's hinted pages as a bitmap (rebuilt when the table grew). */
  private hintedWords(): Uint32Array | null {
    const table = this.source.hintedPages;
    const count = table.total();
    if (count === 0) return null;
    if (this.hinted === null || count !== this.hintedCount) {
      const bits = new Bitmap(this.pageCount);
      for (const r of table) bits.setRange(r.start, Math.min(r.end, this.pageCount));
      this.hinted = bits;
      this.hintedCount = count;
    }
    return this.hinted.words;
  }

  private snapshot(t: number, reason: string): void {
    const outgoing = this.source.outgoing;
    const migrating = outgoing !== null && (outgoing.status === 'active' || outgoing.status === 'postcopy-active' || outgoing.status === 'device');
    const guestOnDestination = this.destinationStatus === 'postcopy-active';
    this.sink.pageMap(snapshotOf({
      pageCount: this.pageCount,
      received: this.destination.machine.received.bits.words,
      dirty: migrating ? outgoing.engine.migrationBitmap.bits.words : null,
      hinted: this.hintedWords(),
      unplugged: null,
      missing: guestOnDestination,
    }, t, reason));
    this.lastMapNs = t;
  }

  /**
   * The run ended: the last map and the summary with the shell's verdicts. Call `poll()` when
   * both sides reached their final status; the verdicts may take a while to compute after that,
   * and that time is not part of the run.
   */
  finish(verdicts: readonly Verdict[], error: string | null): void {
    this.snapshot(this.lastPollNs, 'end');
    const info = this.source.queryMigrate();
    const ram = info.ram;
    const figures: [string, string][] = [
      ['status', info.status ?? 'none'],
      ['total-time', info['total-time'] === undefined ? '-' : `${info['total-time']} ms`],
      ['downtime', info.downtime === undefined ? '-' : `${info.downtime} ms`],
    ];
    if (ram !== undefined) figures.push(...ramFigures(ram), ['throughput', `${ram.mbps.toFixed(0)} Mbit/s`]);
    const hinted = this.source.outgoing?.engine.counters().hintedPages ?? 0;
    if (hinted > 0) figures.push(['hinted pages', hinted.toLocaleString('en-US')]);
    const summary: RunSummary = {
      status: info.status ?? 'none',
      endReason: info.status ?? 'none',
      endNs: this.lastPollNs,
      ok: verdicts.every((v) => v.ok),
      figures,
      invariants: verdicts.map((v) => ({ name: v.name, ok: v.ok, detail: v.detail })),
      traceHash: null,
      error,
    };
    this.sink.finished(summary);
  }
}
