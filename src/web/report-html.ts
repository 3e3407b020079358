/**
 * Self-contained HTML reports: one file with uPlot, the report page's code and the run data
 * (gzip, base64) inlined, so it opens anywhere without a network. Made from a simulator run
 * watched by an observer (`livemig sim --report`), from a recorded trace
 * (`livemig report TRACE`), or from several labelled runs (`livemig compare --report`).
 *
 * Reports keep at most REPORT_MAPS_MAX page maps per run, so a committed report stays small.
 */
import { gzipSync } from 'node:zlib';
import type { CompareEntry, ReportData, RunView } from './api-types.ts';
import { clientBundle, uplotCss } from './bundle.ts';
import { reportHtml } from './page-html.ts';
import { RunObserver } from './observer.ts';
import { frozenView, RunViewBuilder } from './run-view.ts';

/** Page maps kept per run in a report: the first, the last, and evenly spaced ones between. */
export const REPORT_MAPS_MAX = 16;

/** A view trimmed for a report. */
export function reportView(view: RunView): RunView {
  const maps = view.pageMaps;
  if (maps.length <= REPORT_MAPS_MAX) return frozenView(view);
  const picked = new Set<number>();
  for (let i = 0; i < REPORT_MAPS_MAX; i++) picked.add(Math.round((i * (maps.length - 1)) / (REPORT_MAPS_MAX - 1)));
  return { ...frozenView(view), pageMaps: [...picked].sort((a, b) => a - b).map((i) => maps[i]) };
}

/** Report data of one or more runs and an optional comparison. */
export function reportData(title: string, generatedBy: string, runs: readonly RunView[], compare: readonly CompareEntry[] | null = null, clock: 'virtual' | 'wall' = 'virtual'): ReportData {
  return { title, generatedBy, runs: runs.map(reportView), compare, clock };
}

/** The data as the page reads it: gzip'd JSON in base64. */
export function encodeReportData(data: ReportData): string {
  return gzipSync(Buffer.from(JSON.stringify(data)), { level: 9 }).toString('base64');
}

/** The whole HTML file. */
export function renderReport(data: ReportData): string {
  const script = clientBundle('report');
  const footer = `Made by ${data.generatedBy}. Self-contained (uPlot and the data are inlined). ${data.clock === 'wall' ? 'Times are wall-clock time of a real run.' : "Times are the simulator's virtual time."}`;
  return reportHtml(data.title, footer, uplotCss(), script, encodeReportData(data));
}

/** Watches a simulator run for a report: pass `observer` to runObserved, then call `data`. */
export class ReportRecorder {
  readonly builder = new RunViewBuilder();
  readonly observer: RunObserver;

  constructor(keepTraceLines: boolean) {
    this.observer = new RunObserver({ pacing: 'report', sink: this.builder, kind: 'report' }, keepTraceLines);
  }

  /** The run's view (after the run). */
  view(): RunView {
    const view = this.builder.view();
    if (view === null) throw new Error('the run produced no trace (it was not built)');
    return view;
  }
}
