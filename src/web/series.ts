/**
 * The chart series of a run view, computed once for every renderer (uPlot in the page, the
 * SVG export): time in ms since `migrate`, remaining MiB, throughput (from the transferred
 * bytes between samples) and query-migrate's mbps, and the dirty rate. A view without
 * samples (a trace) uses its iteration rows. Also the status phases of the timeline.
 *
 * Pure: shared by node code and the browser bundle.
 */
import { MiB, NS_PER_MS, NS_PER_S, TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { RunView, Side } from './api-types.ts';
import { migrationStartNs } from './run-view.ts';

/** Rates are taken over at least this much virtual time (QEMU's rate-limit period). */
export const RATE_WINDOW_NS = 100 * NS_PER_MS;

export interface RunSeries {
  /** ms since `migrate`. */
  readonly t: number[];
  readonly remainingMiB: number[];
  /** Mbit/s of transferred bytes over the last RATE_WINDOW_NS or less (null until a window has passed). */
  readonly throughputMbps: (number | null)[];
  /** query-migrate's ram.mbps. */
  readonly qmpMbps: (number | null)[];
  /** query-migrate's dirty-pages-rate, MiB/s (updated about once a second, as QEMU does). */
  readonly dirtyMiBs: (number | null)[];
  /** Pages newly dirtied in the guest's dirty log, MiB/s over the window (null without samples of it). */
  readonly dirtyLogMiBs: (number | null)[];
}

interface Point {
  readonly tNs: number;
  readonly remainingBytes: number;
  readonly transferredBytes: number;
  readonly dirtyBytesPerSec: number;
  readonly mbps: number;
  readonly dirtiedPages: number | null;
}

/** The series of a view (empty arrays before any progress). */
export function seriesOf(view: RunView): RunSeries {
  const start = migrationStartNs(view) ?? 0;
  const raw: readonly Point[] = view.samples.length > 0
    ? view.samples
    : view.iterations.map((r) => ({ tNs: r.tNs, remainingBytes: r.remainingBytes, transferredBytes: r.transferredBytes, dirtyBytesPerSec: r.dirtyBytesPerSec, mbps: r.mbps, dirtiedPages: null }));
  const points = raw.filter((p, i) => i === 0 || p.tNs > raw[i - 1].tNs);
  const s: RunSeries = { t: [], remainingMiB: [], throughputMbps: [], qmpMbps: [], dirtyMiBs: [], dirtyLogMiBs: [] };
  let from = 0;
  // Samples are dense: rates need a whole window (a tenth of the run for a short one).
  // A trace's points (one per sync or status change) are sparse: any gap will do.
  const spanNs = points.length > 1 ? points[points.length - 1].tNs - points[0].tNs : 0;
  const windowNs = view.info.pageMapOrigin === 'world' ? Math.min(RATE_WINDOW_NS, spanNs / 10) : 0;
  points.forEach((p, i) => {
    while (from < i - 1 && p.tNs - points[from + 1].tNs >= windowNs) from++;
    const base = i === 0 || p.tNs - points[from].tNs < windowNs ? null : points[from];
    const seconds = base === null ? 0 : (p.tNs - base.tNs) / NS_PER_S;
    s.t.push((p.tNs - start) / NS_PER_MS);
    s.remainingMiB.push(p.remainingBytes / MiB);
    s.throughputMbps.push(base === null ? null : ((p.transferredBytes - base.transferredBytes) * 8) / seconds / 1e6);
    s.qmpMbps.push(p.mbps);
    s.dirtyMiBs.push(p.dirtyBytesPerSec / MiB);
    s.dirtyLogMiBs.push(base === null || p.dirtiedPages === null || base.dirtiedPages === null ? null : ((p.dirtiedPages - base.dirtiedPages) * TARGET_PAGE_SIZE) / seconds / MiB);
  });
  // A trace has a point per sync only; its completion adds the last one: nothing remains.
  const completed = view.statuses.find((c) => c.side === 'source' && c.to === 'completed');
  const lastNs = points.at(-1)?.tNs ?? -1;
  if (view.info.pageMapOrigin === 'trace' && completed !== undefined && completed.tNs > lastNs) {
    s.t.push((completed.tNs - start) / NS_PER_MS);
    s.remainingMiB.push(0);
    s.throughputMbps.push(null);
    s.qmpMbps.push(null);
    s.dirtyMiBs.push(null);
    s.dirtyLogMiBs.push(null);
  }
  return s;
}

/** A span of one side's status on the timeline, ms since `migrate`. */
export interface StatusPhase {
  readonly side: Side;
  readonly status: string;
  readonly fromMs: number;
  readonly toMs: number;
}

/** The end of the timeline, ms since `migrate`. */
export function timelineEndMs(view: RunView): number {
  const start = migrationStartNs(view) ?? 0;
  const lastNs = Math.max(
    view.summary?.endNs ?? 0,
    view.pageMaps.at(-1)?.tNs ?? 0,
    view.samples.at(-1)?.tNs ?? 0,
    view.statuses.at(-1)?.tNs ?? 0,
    view.marks.at(-1)?.tNs ?? 0,
  );
  return Math.max(1, (lastNs - start) / NS_PER_MS);
}

/** Status phases of both sides, from their first change to the end of the timeline. */
export function statusPhases(view: RunView): StatusPhase[] {
  const start = migrationStartNs(view) ?? 0;
  const end = timelineEndMs(view);
  const phases: StatusPhase[] = [];
  for (const side of ['source', 'destination'] as const) {
    const changes = view.statuses.filter((c) => c.side === side);
    changes.forEach((c, i) => {
      const next = changes[i + 1];
      phases.push({ side, status: c.to, fromMs: (c.tNs - start) / NS_PER_MS, toMs: next === undefined ? end : (next.tNs - start) / NS_PER_MS });
    });
  }
  return phases;
}

/** Colours of the statuses on the timeline. */
export const STATUS_COLORS: Readonly<Record<string, string>> = {
  setup: '#9aa5b1',
  active: '#3d7edb',
  'pre-switchover': '#7a5cc4',
  device: '#7a5cc4',
  'postcopy-active': '#e08a1e',
  'postcopy-paused': '#c0392b',
  'postcopy-recover': '#c0392b',
  cancelling: '#c0392b',
  completed: '#2e9e5b',
  cancelled: '#8e8e8e',
  failed: '#c0392b',
  none: '#dfe3e8',
};

export function statusColor(status: string): string {
  return STATUS_COLORS[status] ?? '#b0b7c0';
}

/** Latency bins as labelled bars (only the range that has counts, at least 1 µs … 1 ms). */
export function latencyBars(view: RunView): { labels: string[]; counts: number[] } {
  const h = view.latency;
  let last = h.counts.length - 1;
  while (last > 10 && h.counts[last] === 0) last--;
  const labels: string[] = [];
  const counts: number[] = [];
  for (let i = 0; i <= last; i++) {
    const bound = i < h.boundsNs.length ? h.boundsNs[i] : null;
    labels.push(bound === null ? `>${shortNs(h.boundsNs[h.boundsNs.length - 1])}` : `≤${shortNs(bound)}`);
    counts.push(h.counts[i]);
  }
  return { labels, counts };
}

/** 1000 → "1µs", 2048000 → "2ms". */
export function shortNs(ns: number): string {
  if (ns >= NS_PER_S) return `${+(ns / NS_PER_S).toPrecision(3)}s`;
  if (ns >= NS_PER_MS) return `${+(ns / NS_PER_MS).toPrecision(3)}ms`;
  return `${+(ns / 1000).toPrecision(3)}µs`;
}
