/**
 * What a recorded simulation trace (sim/trace-events.ts) says about a run, as dashboard
 * events: status changes and timeline marks, one iteration row and progress sample per
 * sync, the page-request latency histogram (fault → page-ready waits), and a page-state map
 * rebuilt from what the trace holds (hinted ranges; faulted pages, missing until placed; after
 * `completed`, every other page sent). The live observer (observer.ts) reuses the reducer for
 * the records of a run in progress and adds the world's own page map and samples.
 *
 * Pure: no node:*; trace hashing comes from sim/trace.ts.
 */
import { Bitmap } from '../lib/bitmap.ts';
import { fnv1a64Hex } from '../sim/trace.ts';
import { formatBytes, NS_PER_MS } from '../lib/units.ts';
import type { IterationRow, PageMapSnapshot, ProgressBatch, ProgressSample, RunInfo, RunKind, RunSummary, RunView, Side, StatusChange, TimelineMark } from './api-types.ts';
import { snapshotOf } from './page-map.ts';
import { LatencyRecorder, RunViewBuilder } from './run-view.ts';

/** One parsed trace line: every record has `t` and `ev`. */
export interface TraceLine {
  readonly t: number;
  readonly ev: string;
  readonly [key: string]: unknown;
}

/** Pages beyond which a trace's page map is not rebuilt (bitmaps of 64 MiB each). */
const TRACE_MAP_PAGES_MAX = 2 ** 29;

/** Parses JSON-lines trace text; bad lines are reported, not fatal. */
export function parseTrace(text: string): { lines: TraceLine[]; errors: string[] } {
  const lines: TraceLine[] = [];
  const errors: string[] = [];
  let n = 0;
  for (const raw of text.split('\n')) {
    n++;
    if (raw.trim() === '') continue;
    try {
      const value = JSON.parse(raw) as Record<string, unknown>;
      if (typeof value.t !== 'number' || typeof value.ev !== 'string') throw new Error('no t or ev');
      lines.push(value as TraceLine);
    } catch (error) {
      if (errors.length < 10) errors.push(`line ${n}: ${(error as Error).message}`);
    }
  }
  return { lines, errors };
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : String(v));

/** Folds trace records; hands out what changed as batches. */
export class TraceReducer {
  scenario = 'unnamed';
  seed = 0;
  pageCount = 0;
  backing = '';
  /** The source's status now. */
  sourceStatus = 'none';
  /** Which side the guest runs on. */
  guestSide: Side = 'source';
  /** Whether `migrate` was issued (hints count from then on). */
  migrating = false;
  end: { tNs: number; status: string; reason: string } | null = null;
  lastTNs = 0;
  readonly latency = new LatencyRecorder();
  /** Pages a hint cleared during the migration; faulted pages not yet placed; faulted pages placed. */
  hinted: Bitmap | null = null;
  waiting: Bitmap | null = null;
  placed: Bitmap | null = null;
  hintedPages = 0;
  requests = 0;
  syncs = 0;
  lastIteration: IterationRow | null = null;
  private pending = { iterations: [] as IterationRow[], statuses: [] as StatusChange[], marks: [] as TimelineMark[], samples: [] as ProgressSample[] };

  /** Applies one record. `withSamples`: make a progress sample of each iteration record (trace-only views). */
  apply(r: TraceLine, withSamples: boolean): void {
    this.lastTNs = r.t;
    switch (r.ev) {
      case 'run':
        this.scenario = str(r.scenario);
        this.seed = num(r.seed);
        this.pageCount = num(r.pages);
        this.backing = str(r.backing);
        return;
      case 'status': {
        const change: StatusChange = { tNs: r.t, side: str(r.side) as Side, from: str(r.from), to: str(r.to) };
        this.pending.statuses.push(change);
        if (change.side === 'source') {
          this.sourceStatus = change.to;
          this.migrating = true;
        }
        return;
      }
      case 'sync':
        this.syncs = num(r.count);
        return;
      case 'iteration': {
        const row: IterationRow = { n: num(r.n), tNs: r.t, transferredBytes: num(r.transferred), remainingBytes: num(r.remaining), dirtyBytesPerSec: num(r.dirtyRate), mbps: num(r.mbps) };
        this.lastIteration = row;
        this.pending.iterations.push(row);
        if (withSamples) this.pending.samples.push({ tNs: row.tNs, status: this.sourceStatus, remainingBytes: row.remainingBytes, transferredBytes: row.transferredBytes, dirtyBytesPerSec: row.dirtyBytesPerSec, mbps: row.mbps, dirtiedPages: null });
        return;
      }
      case 'hint': {
        if (!this.migrating || this.pageCount > TRACE_MAP_PAGES_MAX) return;
        const start = Math.max(0, num(r.page));
        const end = Math.min(this.pageCount, start + num(r.count));
        if (end <= start) return;
        this.hinted ??= new Bitmap(this.pageCount);
        this.hinted.setRange(start, end);
        this.hintedPages += end - start;
        return;
      }
      case 'request':
        this.requests++;
        return;
      case 'fault':
        this.latency.fault();
        this.markPage('waiting', num(r.page), true);
        return;
      case 'page-ready':
        this.latency.wait(num(r.waited));
        this.markPage('waiting', num(r.page), false);
        this.markPage('placed', num(r.page), true);
        return;
      case 'guest':
        if (str(r.action) === 'run') this.guestSide = str(r.side) as Side;
        this.pushMark({ tNs: r.t, side: str(r.side) as Side, kind: 'guest', text: `guest ${str(r.action)}` });
        return;
      case 'event':
      case 'mark':
        this.pushMark({ tNs: r.t, side: str(r.side) as Side, kind: r.ev as 'event' | 'mark', text: str(r.name) });
        return;
      case 'done':
        this.pushMark({ tNs: r.t, side: str(r.side) as Side, kind: 'done', text: `DONE acted on (${num(r.dones)})` });
        return;
      case 'notifier':
        this.pushMark({ tNs: r.t, side: 'source', kind: 'notifier', text: `precopy notifier ${str(r.reason)}` });
        return;
      case 'end':
        this.end = { tNs: r.t, status: str(r.status), reason: str(r.reason) };
        return;
      default:
        return;
    }
  }

  /** Queues a mark, folding a repeat of the last queued one into it. */
  private pushMark(m: TimelineMark): void {
    const marks = this.pending.marks;
    const last = marks.at(-1);
    if (last !== undefined && last.side === m.side && last.kind === m.kind && last.text === m.text) {
      marks[marks.length - 1] = { ...last, count: (last.count ?? 1) + 1, lastTNs: m.tNs };
      return;
    }
    marks.push(m);
  }

  private markPage(which: 'waiting' | 'placed', page: number, set: boolean): void {
    if (this.pageCount === 0 || this.pageCount > TRACE_MAP_PAGES_MAX || page < 0 || page >= this.pageCount) return;
    const map = (this[which] ??= new Bitmap(this.pageCount));
    if (set) map.set(page);
    else map.clear(page);
  }

  /** What changed since the last call (null when nothing did). */
  takeBatch(extraSamples: readonly ProgressSample[] = []): ProgressBatch | null {
    const p = this.pending;
    const latency = this.latency.changed ? this.latency.take() : null;
    if (p.iterations.length + p.statuses.length + p.marks.length + p.samples.length + extraSamples.length === 0 && latency === null) return null;
    const batch: ProgressBatch = { samples: [...p.samples, ...extraSamples].sort((a, b) => a.tNs - b.tNs), iterations: p.iterations, statuses: p.statuses, marks: p.marks, latency };
    this.pending = { iterations: [], statuses: [], marks: [], samples: [] };
    return batch;
  }

  /** The page map the trace supports: hinted, faulted-and-waiting (missing), placed or (after completion) sent. */
  traceSnapshot(tNs: number, reason: string): PageMapSnapshot | null {
    if (this.pageCount === 0 || this.pageCount > TRACE_MAP_PAGES_MAX) return null;
    let received = this.placed?.words ?? null;
    if (this.sourceStatus === 'completed') {
      const all = new Bitmap(this.pageCount);
      all.setAll();
      if (this.hinted !== null) for (let w = 0; w < all.words.length; w++) all.words[w] &= ~this.hinted.words[w];
      received = all.words;
    }
    return snapshotOf({ pageCount: this.pageCount, received, dirty: null, hinted: this.hinted?.words ?? null, unplugged: null, missing: this.waiting?.words ?? false }, tNs, reason);
  }

  info(id: number, kind: RunKind, description: string, pageMapOrigin: 'world' | 'trace'): RunInfo {
    return { id, kind, scenario: this.scenario, description, seed: this.seed, pageCount: this.pageCount, overrides: [], pageMapOrigin };
  }

  /** A summary from the trace alone (no verdicts: the trace does not hold them). */
  summary(traceHash: string | null): RunSummary {
    const end = this.end ?? { tNs: this.lastTNs, status: this.sourceStatus, reason: 'trace ended without an end record' };
    const h = this.latency.take();
    const figures: [string, string][] = [
      ['status', end.status],
      ['ended by', end.reason],
      ['dirty syncs', String(this.syncs)],
    ];
    if (this.lastIteration !== null) figures.push(['transferred by the last sync', formatBytes(this.lastIteration.transferredBytes)]);
    if (this.hintedPages > 0) figures.push(['hinted pages', this.hintedPages.toLocaleString('en-US')]);
    if (h.faults > 0) figures.push(['postcopy faults', String(h.faults)], ['longest page wait', `${(h.maxNs / NS_PER_MS).toFixed(3)} ms`]);
    if (this.requests > 0) figures.push(['page requests', String(this.requests)]);
    return { status: end.status, endReason: end.reason, endNs: end.tNs, ok: null, figures, invariants: null, traceHash, error: null };
  }
}

/** Whether a record is a moment worth a page-map snapshot of a trace (status, sync, end). */
export function isMapMoment(r: TraceLine): boolean {
  return r.ev === 'status' || r.ev === 'sync' || r.ev === 'end' || (r.ev === 'guest' && r.action === 'run');
}

/** The whole view of a recorded trace. */
export function runViewFromTrace(text: string, kind: RunKind = 'report', label = ''): { view: RunView; errors: string[] } {
  const { lines, errors } = parseTrace(text);
  const reducer = new TraceReducer();
  const builder = new RunViewBuilder();
  for (const line of lines) {
    reducer.apply(line, true);
    if (line.ev === 'run') builder.runStarted(reducer.info(0, kind, label, 'trace'));
    if (!builder.started) continue;
    if (isMapMoment(line)) {
      const snap = reducer.traceSnapshot(line.t, line.ev === 'status' ? `${str(line.side)} ${str(line.to)}` : line.ev);
      if (snap !== null) builder.pageMap(snap);
    }
  }
  if (!builder.started) throw new Error(errors.length > 0 ? `not a livemig trace: ${errors[0]}` : 'not a livemig trace: no run record');
  const batch = reducer.takeBatch();
  if (batch !== null) builder.progress(batch);
  builder.finished(reducer.summary(fnv1a64Hex(text)));
  return { view: builder.view() as RunView, errors };
}
