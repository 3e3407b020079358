/**
 * Folding dashboard events into a RunView: the server keeps one per run (so a page that
 * connects late gets the run so far), the page keeps one as its store, and a report is the
 * view of a finished run. Also the latency histogram the trace's page-ready waits fill, and
 * the bounds every view keeps: progress samples are thinned to at most SAMPLES_MAX, page maps
 * to at most PAGE_MAPS_MAX.
 *
 * Pure: shared by node code and the browser bundle.
 */
import type {
  DashboardEvents,
  LatencyHistogram,
  PageMapSnapshot,
  ProgressBatch,
  ProgressSample,
  RunInfo,
  RunSummary,
  RunView,
  IterationRow,
  StatusChange,
  TimelineMark,
} from './api-types.ts';

/** Samples a view keeps; past it every other sample is dropped. */
export const SAMPLES_MAX = 2048;
/** Page maps a view keeps; past it the older half is thinned. */
export const PAGE_MAPS_MAX = 64;
/** Marks a view keeps (a long run's notifier marks are many). */
export const MARKS_MAX = 2000;

/** Latency bin bounds: 1 µs × 2^k up to about 8.6 s, then the open last bin. */
export const LATENCY_BOUNDS_NS: readonly number[] = Array.from({ length: 24 }, (_, k) => 1000 * 2 ** k);

export function emptyLatency(): LatencyHistogram {
  return { boundsNs: LATENCY_BOUNDS_NS, counts: new Array(LATENCY_BOUNDS_NS.length + 1).fill(0), faults: 0, waits: 0, maxNs: 0, sumNs: 0 };
}

/** A histogram being filled. */
export class LatencyRecorder {
  private readonly counts = new Array<number>(LATENCY_BOUNDS_NS.length + 1).fill(0);
  faults = 0;
  waits = 0;
  maxNs = 0;
  sumNs = 0;
  /** Whether it changed since the last `take`. */
  changed = false;

  fault(): void {
    this.faults++;
    this.changed = true;
  }

  wait(ns: number): void {
    let bin = 0;
    while (bin < LATENCY_BOUNDS_NS.length && ns > LATENCY_BOUNDS_NS[bin]) bin++;
    this.counts[bin]++;
    this.waits++;
    this.maxNs = Math.max(this.maxNs, ns);
    this.sumNs += ns;
    this.changed = true;
  }

  /** The histogram now; clears `changed`. */
  take(): LatencyHistogram {
    this.changed = false;
    return { boundsNs: LATENCY_BOUNDS_NS, counts: [...this.counts], faults: this.faults, waits: this.waits, maxNs: this.maxNs, sumNs: this.sumNs };
  }
}

/** The wait below which `fraction` of the waits fall (upper bound of that bin), or null. */
export function latencyQuantileNs(h: LatencyHistogram, fraction: number): number | null {
  if (h.waits === 0) return null;
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i];
    if (seen >= fraction * h.waits) return i < h.boundsNs.length ? Math.min(h.boundsNs[i], h.maxNs) : h.maxNs;
  }
  return h.maxNs;
}

/** When `migrate` was issued: the source's first status change (null before). */
export function migrationStartNs(view: Pick<RunView, 'statuses'>): number | null {
  const first = view.statuses.find((s) => s.side === 'source');
  return first === undefined ? null : first.tNs;
}

/** Builds a RunView from events; implements DashboardEvents so it can be fed directly. */
export class RunViewBuilder implements DashboardEvents {
  private infoValue: RunInfo | null = null;
  private readonly samplesList: ProgressSample[] = [];
  private readonly iterationsList: IterationRow[] = [];
  private readonly statusesList: StatusChange[] = [];
  private readonly marksList: TimelineMark[] = [];
  private pageMapsList: PageMapSnapshot[] = [];
  private latencyValue: LatencyHistogram = emptyLatency();
  private summaryValue: RunSummary | null = null;
  /** Bumped on every change (views redraw when it moves). */
  version = 0;

  runStarted(info: RunInfo): void {
    this.infoValue = info;
    this.samplesList.length = 0;
    this.iterationsList.length = 0;
    this.statusesList.length = 0;
    this.marksList.length = 0;
    this.pageMapsList = [];
    this.latencyValue = emptyLatency();
    this.summaryValue = null;
    this.version++;
  }

  progress(batch: ProgressBatch): void {
    for (const s of batch.samples) this.samplesList.push(s);
    if (this.samplesList.length > SAMPLES_MAX) {
      const kept = this.samplesList.filter((_, i) => i % 2 === 0 || i === this.samplesList.length - 1);
      this.samplesList.length = 0;
      this.samplesList.push(...kept);
    }
    this.iterationsList.push(...batch.iterations);
    this.statusesList.push(...batch.statuses);
    for (const m of batch.marks) this.addMark(m);
    if (batch.latency !== null) this.latencyValue = batch.latency;
    this.version++;
  }

  /** Keeps a mark, folding a repeat of the last one into it. */
  private addMark(m: TimelineMark): void {
    const last = this.marksList.at(-1);
    if (last !== undefined && last.side === m.side && last.kind === m.kind && last.text === m.text) {
      this.marksList[this.marksList.length - 1] = { ...last, count: (last.count ?? 1) + (m.count ?? 1), lastTNs: m.lastTNs ?? m.tNs };
      return;
    }
    if (this.marksList.length < MARKS_MAX) this.marksList.push(m);
  }

  pageMap(snapshot: PageMapSnapshot): void {
    this.pageMapsList.push(snapshot);
    if (this.pageMapsList.length > PAGE_MAPS_MAX) {
      const half = this.pageMapsList.length >> 1;
      this.pageMapsList = [...this.pageMapsList.slice(0, half).filter((_, i) => i % 2 === 0), ...this.pageMapsList.slice(half)];
    }
    this.version++;
  }

  finished(summary: RunSummary): void {
    this.summaryValue = summary;
    this.version++;
  }

  /** Whether a run has started. */
  get started(): boolean {
    return this.infoValue !== null;
  }

  /** The view so far (shares arrays with the builder; copy before keeping). */
  view(): RunView | null {
    if (this.infoValue === null) return null;
    return {
      info: this.infoValue,
      samples: this.samplesList,
      iterations: this.iterationsList,
      statuses: this.statusesList,
      marks: this.marksList,
      pageMaps: this.pageMapsList,
      latency: this.latencyValue,
      summary: this.summaryValue,
    };
  }

  /** Replaces the state with a whole view (a page joining a run in progress). */
  load(view: RunView): void {
    this.runStarted(view.info);
    this.progress({ samples: view.samples, iterations: view.iterations, statuses: view.statuses, marks: view.marks, latency: view.latency });
    for (const m of view.pageMaps) this.pageMap(m);
    if (view.summary !== null) this.finished(view.summary);
  }
}

/** A copy of a view that later events do not change. */
export function frozenView(view: RunView): RunView {
  return {
    ...view,
    samples: [...view.samples],
    iterations: [...view.iterations],
    statuses: [...view.statuses],
    marks: [...view.marks],
    pageMaps: [...view.pageMaps],
  };
}
