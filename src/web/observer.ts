/**
 * Watching a simulator run as it goes, without changing it: the observer wraps the engine
 * factory (sim/engine-ports.ts), so it sees the machine and the source port, and the trace
 * writer, so it sees every record. From those it emits DashboardEvents: progress samples of
 * the source's query-migrate, the trace's statuses, syncs, marks and page waits (through
 * trace-model.ts's reducer), and page-state maps read from the world's bitmaps: received on
 * the destination, the source's migration bitmap, hinted pages, unplugged memory.
 *
 * Only reads: the run's trace hash is the same with or without an observer (observer.test.ts).
 *
 * Two pacings: `report` is deterministic (samples and maps by virtual time, the interval
 * doubling as they pile up, plus one map at every status change, sync and the end); `live`
 * flushes batches and maps by wall time, for the dashboard's worker.
 */
import { Bitmap } from '../lib/bitmap.ts';
import { NS_PER_MS } from '../lib/units.ts';
import { REAL_ENGINES, SourceEngineAdapter } from '../sim/engines.ts';
import type { EngineFactory, SourcePort } from '../sim/engine-ports.ts';
import type { Machine } from '../sim/machine.ts';
import { runScenario } from '../sim/runner.ts';
import type { Scenario } from '../sim/scenario/scenario.ts';
import { TraceWriter, type TraceRecord } from '../sim/trace.ts';
import { watchSource } from '../sim/watched-engines.ts';
import type { SimRunResult } from '../sim/world-report.ts';
import type { DashboardEvents, ProgressSample, RunKind } from './api-types.ts';
import { snapshotOf } from './page-map.ts';
import { summaryOfResult } from './result-summary.ts';
import { isMapMoment, TraceReducer, type TraceLine } from './trace-model.ts';

/** Samples after which the sampling interval doubles. */
const SAMPLES_PER_INTERVAL = 512;
/** Timed maps (report pacing) after which their interval doubles. */
const TIMED_MAPS_PER_INTERVAL = 12;
/** Guests larger than this (128 GiB) are not dirty-log counted at every sample (1 million words each). */
const DIRTY_LOG_COUNT_PAGES_MAX = 2 ** 25;
/** Live pacing: wall time between batches, and the least between maps. */
const LIVE_FLUSH_MS = 100;
const LIVE_MAP_MS = 200;

export interface ObserverOptions {
  readonly pacing: 'live' | 'report';
  /** Receives the events (a RunViewBuilder, or the worker's post). */
  readonly sink: DashboardEvents;
  readonly runId?: number;
  readonly kind?: RunKind;
  readonly overrides?: readonly string[];
  /** Wall clock in ms (live pacing only). */
  readonly wallNowMs?: () => number;
}

/** A trace writer that hands each record to a listener after writing it. */
class ObservedTraceWriter extends TraceWriter {
  constructor(keepLines: boolean, private readonly listener: (record: TraceRecord) => void) {
    super({ keepLines });
  }

  override write(record: TraceRecord): void {
    super.write(record);
    this.listener(record);
  }
}

export class RunObserver {
  readonly trace: TraceWriter;
  private readonly reducer = new TraceReducer();
  private machine: Machine | null = null;
  private scenario: Scenario | null = null;
  private source: SourcePort | null = null;
  private unplugged: Bitmap | null | undefined = undefined;
  private started = false;
  private samples: ProgressSample[] = [];
  private sampleIntervalNs = NS_PER_MS;
  private nextSampleNs = 0;
  private samplesAtInterval = 0;
  private mapIntervalNs = NS_PER_MS;
  private nextMapNs = 0;
  private mapsAtInterval = 0;
  private lastFlushMs = 0;
  private lastMapMs = 0;
  private mapCostMs = 0;
  private dirtied = 0;
  private lastLogCount = 0;

  constructor(private readonly options: ObserverOptions, keepTraceLines = false) {
    this.trace = new ObservedTraceWriter(keepTraceLines, (record) => this.onRecord(record as unknown as TraceLine));
  }

  /** The engine factory to run with: `base`, watched. */
  engines(base: EngineFactory = REAL_ENGINES): EngineFactory {
    return watchSource(base, {
      built: (port, machine, scenario) => {
        this.machine = machine;
        this.scenario = scenario;
        this.source = port;
      },
      stepped: (nowNs) => this.onStep(nowNs),
    });
  }

  private onRecord(r: TraceLine): void {
    this.reducer.apply(r, false);
    if (r.ev === 'run') {
      this.started = true;
      const info = this.reducer.info(this.options.runId ?? 0, this.options.kind ?? 'report', this.scenario?.description ?? '', 'world');
      this.options.sink.runStarted({ ...info, overrides: this.options.overrides ?? [] });
      return;
    }
    if (r.ev === 'status' && r.side === 'source') this.sample(r.t);
    if (isMapMoment(r)) this.snapshot(r.t, r.ev === 'status' ? `${String(r.side)} ${String(r.to)}` : r.ev);
  }

  /** After each source tick and pump. */
  private onStep(nowNs: number): void {
    if (nowNs >= this.nextSampleNs) this.sample(nowNs);
    if (this.options.pacing === 'report') {
      if (nowNs >= this.nextMapNs) {
        this.snapshot(nowNs, 'time');
        this.nextMapNs = nowNs + this.mapIntervalNs;
        if (++this.mapsAtInterval >= TIMED_MAPS_PER_INTERVAL) {
          this.mapIntervalNs *= 2;
          this.mapsAtInterval = 0;
        }
      }
      return;
    }
    const wall = this.wallNow();
    if (wall - this.lastMapMs >= Math.max(LIVE_MAP_MS, 10 * this.mapCostMs)) this.snapshot(nowNs, 'time');
    if (wall - this.lastFlushMs >= LIVE_FLUSH_MS) this.flush();
  }

  private wallNow(): number {
    return this.options.wallNowMs?.() ?? 0;
  }

  private sample(nowNs: number): void {
    const port = this.source;
    if (port === null || port.status === 'none') return;
    const info = port.queryMigrate(nowNs);
    const ram = info.ram;
    if (ram === undefined) return;
    this.samples.push({
      tNs: nowNs,
      status: info.status ?? 'none',
      remainingBytes: ram.remaining,
      transferredBytes: ram.transferred,
      dirtyBytesPerSec: ram['dirty-pages-rate'] * ram['page-size'],
      mbps: ram.mbps,
      dirtiedPages: this.countDirtied(),
    });
    this.nextSampleNs = nowNs + this.sampleIntervalNs;
    if (++this.samplesAtInterval >= SAMPLES_PER_INTERVAL) {
      this.sampleIntervalNs *= 2;
      this.samplesAtInterval = 0;
    }
  }

  /**
   * Pages newly dirtied since `migrate`: the dirty log's growth since the last sample (a sync
   * empties the log, so a smaller count starts over).
   */
  private countDirtied(): number | null {
    const machine = this.machine;
    if (machine === null || machine.pageCount > DIRTY_LOG_COUNT_PAGES_MAX) return null;
    const count = machine.guest.memory.log.count();
    this.dirtied += count >= this.lastLogCount ? count - this.lastLogCount : count;
    this.lastLogCount = count;
    return this.dirtied;
  }

  /** The page-state map of the world now. */
  private snapshot(nowNs: number, reason: string): void {
    const machine = this.machine;
    if (machine === null || !this.started) return;
    const t0 = this.wallNow();
    const dirty = this.source instanceof SourceEngineAdapter && this.reducer.migrating ? this.source.engine.migrationBitmap.bits.words : null;
    const onDestination = this.reducer.guestSide === 'destination';
    this.options.sink.pageMap(snapshotOf({
      pageCount: machine.pageCount,
      received: machine.received.bits.words,
      dirty,
      hinted: this.reducer.hinted?.words ?? null,
      unplugged: this.unpluggedWords(machine),
      missing: onDestination,
    }, nowNs, reason));
    this.lastMapMs = this.wallNow();
    this.mapCostMs = this.lastMapMs - t0;
  }

  /** Unplugged pages, known once the migration started (virtio-mem is busy meanwhile). */
  private unpluggedWords(machine: Machine): Uint32Array | null {
    if (this.unplugged !== undefined) return this.unplugged?.words ?? null;
    const table = machine.devices.unpluggedPages();
    if (!this.reducer.migrating) return null;
    if (table === null || table.isEmpty()) {
      this.unplugged = null;
      return null;
    }
    const bits = new Bitmap(machine.pageCount);
    for (const r of table) bits.setRange(r.start, Math.min(r.end, machine.pageCount));
    this.unplugged = bits;
    return bits.words;
  }

  /** Hands out what piled up since the last flush. */
  flush(): void {
    const batch = this.reducer.takeBatch(this.samples);
    this.samples = [];
    this.lastFlushMs = this.wallNow();
    if (batch !== null && this.started) this.options.sink.progress(batch);
  }

  /** The run ended: the last batch and the summary (the last sample was taken at the final status). */
  finish(result: SimRunResult): void {
    if (!this.started) return;
    this.flush();
    this.options.sink.finished(summaryOfResult(result));
  }
}

/** Runs a scenario watched by an observer; the result is the same as runScenario's. */
export function runObserved(scenario: Scenario, seed: number | undefined, observer: RunObserver, base: EngineFactory = REAL_ENGINES): SimRunResult {
  const result = runScenario(scenario, { seed, trace: observer.trace, engines: observer.engines(base) });
  observer.finish(result);
  return result;
}
