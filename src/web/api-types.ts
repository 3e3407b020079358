/**
 * The one contract between the dashboard server and its page, in the manner of Vitest's
 * `api/types.ts`: `DashboardHandlers` is what the page may call, `DashboardEvents` what the
 * server pushes. The same data types describe a run in every view: the live dashboard (a run
 * in the server process, or a trace replayed by the server), and the static HTML report
 * (`livemig sim --report`, `livemig report TRACE`), which embeds a finished `RunView`.
 *
 * Times are virtual nanoseconds since the guest booted (the trace's `t`); views show them
 * relative to `migrate` (the source's first status change). Byte counts are plain numbers.
 *
 * Types only (and a few constants): imported by node code and bundled into the browser code.
 */

/** Query parameter and cookie that carry the dashboard token. */
export const TOKEN_PARAM = 'token';
export const TOKEN_COOKIE = 'livemig_token';
/** The WebSocket endpoint. */
export const WS_PATH = '/ws';

/**
 * Page states of the page-state map, in encoding order. A page is in the first state that
 * applies: unplugged (virtio-mem), missing (the guest runs on the destination and the page
 * has not arrived), dirty (still to be sent), hinted (a free page hint cleared it and it was
 * not sent), sent (on the destination). Pages in none of these are `untouched`, the map's
 * background (before `migrate`, or, for a map rebuilt from a trace, not known).
 */
export const PAGE_STATES = ['sent', 'dirty', 'hinted', 'unplugged', 'missing'] as const;
export type PageState = (typeof PAGE_STATES)[number];
export const UNTOUCHED = 'untouched';

/** The largest number of bins of a page-state map. */
export const PAGE_MAP_BINS_MAX = 4096;

/** One scenario file the dashboard can run. */
export interface ScenarioInfo {
  /** File name under the scenarios directory, e.g. `hot-set-converges.yaml`. */
  readonly file: string;
  readonly name: string;
  readonly description: string;
}

/** Where a run's data comes from. */
export type RunKind = 'live' | 'replay' | 'report';

export interface RunInfo {
  /** Increases with every run the server starts; 0 in reports. */
  readonly id: number;
  readonly kind: RunKind;
  readonly scenario: string;
  readonly description: string;
  readonly seed: number;
  readonly pageCount: number;
  /** `--set` overrides of a live run, as typed. */
  readonly overrides: readonly string[];
  /** What the page-state map can show: every state (`world`) or what a trace holds (`trace`). */
  readonly pageMapOrigin: 'world' | 'trace';
}

/** A sample of the source's query-migrate, taken while the run goes. */
export interface ProgressSample {
  readonly tNs: number;
  readonly status: string;
  readonly remainingBytes: number;
  readonly transferredBytes: number;
  /** ram.dirty-pages-rate × page size (updated at each sync). */
  readonly dirtyBytesPerSec: number;
  /** ram.mbps (the last bandwidth window). */
  readonly mbps: number;
  /**
   * Pages the guest newly dirtied since `migrate`, summed from its dirty log between samples
   * (null when not watched: a trace, or a guest too large to count at every sample).
   */
  readonly dirtiedPages: number | null;
}

/** One dirty bitmap sync (the trace's `iteration` record; `livemig sim`'s progress row). */
export interface IterationRow {
  readonly n: number;
  readonly tNs: number;
  readonly transferredBytes: number;
  readonly remainingBytes: number;
  readonly dirtyBytesPerSec: number;
  readonly mbps: number;
}

export type Side = 'source' | 'destination';

export interface StatusChange {
  readonly tNs: number;
  readonly side: Side;
  readonly from: string;
  readonly to: string;
}

/** A point event on the timeline: the guest stops or runs, a QMP event, a rare branch, DONE. */
export interface TimelineMark {
  readonly tNs: number;
  readonly side: Side;
  readonly kind: 'guest' | 'event' | 'mark' | 'done' | 'notifier';
  readonly text: string;
  /** Repeats folded into this mark (the same side, kind and text in a row), and the last one's time. */
  readonly count?: number;
  readonly lastTNs?: number;
}

/**
 * The page-state map at one moment: `bins` bins of `binPages` pages (the last may be short).
 * `fractions` is base64 of bins × PAGE_STATES.length bytes: byte [b × 5 + s] is the share of
 * bin b's pages in state s, 0..255. `totals` counts pages per state exactly.
 */
export interface PageMapSnapshot {
  readonly tNs: number;
  readonly pageCount: number;
  readonly binPages: number;
  readonly bins: number;
  readonly fractions: string;
  readonly totals: Readonly<Record<PageState, number>>;
  /** What prompted it: a status change, a sync, the end, or time passing. */
  readonly reason: string;
}

/** Page-request latency: the destination guest faulted on a missing page until it was placed. */
export interface LatencyHistogram {
  /** Upper bounds of the bins, ns (the last bin is open: everything above the previous bound). */
  readonly boundsNs: readonly number[];
  readonly counts: readonly number[];
  /** Faults traced, and of those, placed pages traced with their wait. */
  readonly faults: number;
  readonly waits: number;
  readonly maxNs: number;
  readonly sumNs: number;
}

export interface Verdict {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** The end of a run. `ok` and the invariants are null for a replayed trace (it holds no verdicts). */
export interface RunSummary {
  readonly status: string;
  readonly endReason: string;
  readonly endNs: number;
  readonly ok: boolean | null;
  /** Headline figures as label → text, in display order. */
  readonly figures: readonly (readonly [string, string])[];
  readonly invariants: readonly Verdict[] | null;
  readonly traceHash: string | null;
  readonly error: string | null;
}

/** Everything a view shows about one run; built from events (RunViewBuilder). */
export interface RunView {
  readonly info: RunInfo;
  readonly samples: readonly ProgressSample[];
  readonly iterations: readonly IterationRow[];
  readonly statuses: readonly StatusChange[];
  readonly marks: readonly TimelineMark[];
  readonly pageMaps: readonly PageMapSnapshot[];
  readonly latency: LatencyHistogram;
  readonly summary: RunSummary | null;
}

/** One bar group of a policy comparison (`livemig compare --report`). */
export interface CompareEntry {
  readonly label: string;
  readonly status: string;
  readonly ok: boolean | null;
  readonly totalTimeMs: number | null;
  readonly downtimeMs: number | null;
  readonly transferredBytes: number;
  readonly maxStallMs: number;
  readonly postcopyRequests: number;
}

/** What a static HTML report embeds. */
export interface ReportData {
  readonly title: string;
  /** `livemig …` command line that made it, for the footer. */
  readonly generatedBy: string;
  readonly runs: readonly RunView[];
  readonly compare: readonly CompareEntry[] | null;
  /** What the times are: the simulator's virtual time (default) or wall time of a real run. */
  readonly clock?: 'virtual' | 'wall';
}

/** A batch of progress, pushed at most a few times a second. */
export interface ProgressBatch {
  readonly samples: readonly ProgressSample[];
  readonly iterations: readonly IterationRow[];
  readonly statuses: readonly StatusChange[];
  readonly marks: readonly TimelineMark[];
  /** The whole histogram so far, when it changed. */
  readonly latency: LatencyHistogram | null;
}

export interface StartRunRequest {
  /** A file of ServerHello.scenarios. */
  readonly scenario: string;
  readonly seed?: number;
  /** `--set key=value` overrides. */
  readonly overrides?: readonly string[];
}

export interface RealRunRequest {
  /** Guest RAM of each of the two VMs, QEMU spelling (`256M`, `2G`); 64M..4G. */
  readonly memory: string;
}

export interface ReplayRequest {
  /** The trace given to `livemig dashboard --trace` (null), or trace text the user picked. */
  readonly text: string | null;
  readonly label?: string;
  /** Wall seconds the replay should take (default 8; 0 shows it at once). */
  readonly seconds?: number;
}

export interface ServerHello {
  readonly version: string;
  readonly scenarios: readonly ScenarioInfo[];
  /** The file name given with --trace, if any. */
  readonly traceFile: string | null;
  /** The current or last run, as far as it went. */
  readonly current: RunView | null;
}

/** What the page may call; every call resolves with the return value or rejects with the error text. */
export interface DashboardHandlers {
  hello(): ServerHello;
  startRun(request: StartRunRequest): RunInfo;
  /** A real run: `livemig start` (two livemig VMs migrating over loopback TCP). */
  startRealRun(request: RealRunRequest): RunInfo;
  replay(request: ReplayRequest): RunInfo;
  /** Stops the current run or replay; false when nothing runs. */
  cancel(): boolean;
}

/** What the server pushes to every connected page. */
export interface DashboardEvents {
  runStarted(info: RunInfo): void;
  progress(batch: ProgressBatch): void;
  pageMap(snapshot: PageMapSnapshot): void;
  finished(summary: RunSummary): void;
}

/** Frames on the WebSocket (JSON text). */
export type WireMessage =
  | { readonly t: 'call'; readonly id: number; readonly method: string; readonly args: readonly unknown[] }
  | { readonly t: 'result'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'result'; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly t: 'event'; readonly name: string; readonly args: readonly unknown[] };
