/**
 * The dashboard server's one run at a time: a live simulation in a worker thread
 * (sim-worker.ts), a real run (`livemig start` in a child process), or a trace replayed at a
 * chosen pace. Either way its events go to every
 * connected page (`broadcast`) and into the server's RunViewBuilder, so a page that connects
 * later gets the run so far. Starting a run stops the one before; `cancel` stops it too.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DashboardEvents, RunInfo, RunSummary } from './api-types.ts';
import { RunViewBuilder } from './run-view.ts';
import type { SimWorkerData, SimWorkerMessage } from './sim-worker.ts';
import { isMapMoment, parseTrace, TraceReducer, type TraceLine } from './trace-model.ts';
import { fnv1a64Hex } from '../sim/trace.ts';

/** Replay tick, and the least wall time between two rebuilt page maps. */
const REPLAY_TICK_MS = 50;
const REPLAY_MAP_MS = 150;

const BOOTSTRAP = `
import { workerData } from 'node:worker_threads';
const { register } = await import(workerData.tsxUrl);
register();
const { simWorkerMain } = await import(workerData.moduleUrl);
simWorkerMain();
`;

type Broadcast = <K extends keyof DashboardEvents>(name: K, ...args: Parameters<DashboardEvents[K]>) => void;

export class RunManager {
  readonly view = new RunViewBuilder();
  private nextId = 1;
  private stopCurrent: (() => void) | null = null;
  private readonly emit: Broadcast;

  constructor(broadcast: Broadcast) {
    this.emit = (name, ...args) => {
      (this.view[name] as (...a: unknown[]) => void)(...args);
      broadcast(name, ...args);
    };
  }

  /** Whether a run or replay is going. */
  get busy(): boolean {
    return this.stopCurrent !== null;
  }

  /**
   * The lifecycle a simulated and a real run share: the run becomes the current one (Stop and a
   * new run end it through `kill`), the first `runStarted` resolves the promise, and a failure
   * before it rejects; after it, a failure ends the run with a stopped summary.
   */
  private liveRun(kill: () => void): { promise: Promise<RunInfo>; active: () => boolean; event: (name: keyof DashboardEvents, args: readonly unknown[]) => void; end: () => void; fail: (why: Error) => void } {
    let ended = false;
    let started = false;
    let settle: { resolve: (info: RunInfo) => void; reject: (error: Error) => void } | null = null;
    const promise = new Promise<RunInfo>((resolve, reject) => (settle = { resolve, reject }));
    const end = (): void => {
      ended = true;
      if (this.stopCurrent === stop) this.stopCurrent = null;
    };
    const stop = (): void => {
      if (ended) return;
      end();
      kill();
      this.emit('finished', stoppedSummary(this.lastTNs(), 'stopped from the dashboard'));
    };
    this.stopCurrent = stop;
    return {
      promise,
      active: () => !ended,
      end,
      event: (name, args) => {
        if (ended) return;
        if (name === 'runStarted') {
          started = true;
          settle!.resolve(args[0] as RunInfo);
        }
        (this.emit as (n: string, ...a: unknown[]) => void)(name, ...args);
      },
      fail: (why) => {
        if (ended) return;
        end();
        if (!started) settle!.reject(why);
        else this.emit('finished', stoppedSummary(this.lastTNs(), why.message));
      },
    };
  }

  private lastTNs(): number {
    return this.view.view()?.samples.at(-1)?.tNs ?? 0;
  }

  /** Starts a live run; resolves with its info once the world is built (or rejects with why it cannot run). */
  startLive(file: string, scenarioText: string, seed: number | null, overrides: readonly string[]): Promise<RunInfo> {
    this.cancel();
    const runId = this.nextId++;
    const data: SimWorkerData & { tsxUrl: string; moduleUrl: string } = {
      runId, scenarioText, file, seed, overrides,
      tsxUrl: import.meta.resolve('tsx/esm/api'),
      moduleUrl: new URL('./sim-worker.ts', import.meta.url).href,
    };
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(BOOTSTRAP)}`), { workerData: data, name: `sim-run-${runId}` });
    const run = this.liveRun(() => void worker.terminate());
    worker.on('message', (message: SimWorkerMessage) => {
      if ('event' in message) run.event(message.event, message.args);
      else if ('error' in message) run.fail(new Error(message.error));
      else {
        run.end();
        void worker.terminate();
      }
    });
    worker.on('error', (error) => run.fail(new Error(`the run's worker failed: ${error.message}`)));
    worker.on('exit', (code) => run.fail(new Error(`the run's worker exited (code ${code}) before the run ended`)));
    return run.promise;
  }

  /**
   * Starts a real run: `livemig start --memory MEMORY --events` in a child process (two livemig
   * VMs on loopback TCP, their vCPU threads and sockets kept out of the server's process). Its
   * stdout carries the run's events as JSON lines; stderr is kept for the error text.
   */
  startReal(memory: string): Promise<RunInfo> {
    this.cancel();
    const runId = this.nextId++;
    const bin = fileURLToPath(new URL('../../bin/livemig.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'start', '--memory', memory, '--events'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run = this.liveRun(() => child.kill('SIGTERM'));
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      stderr = (stderr + text).slice(-4096);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      let message: { event: keyof DashboardEvents; args: unknown[] };
      try {
        message = JSON.parse(line) as typeof message;
      } catch {
        return;
      }
      const args = message.event === 'runStarted' ? [{ ...(message.args[0] as RunInfo), id: runId, kind: 'live' }] : message.args;
      run.event(message.event, args);
      if (message.event === 'finished') run.end(); // the child closes its VMs and exits
    });
    child.on('error', (error) => run.fail(new Error(`livemig start failed: ${error.message}`)));
    child.on('close', (code) => {
      const last = stderr.trim().split('\n').at(-1) ?? '';
      run.fail(new Error(`livemig start exited with code ${code}${last === '' ? '' : `: ${last}`}`));
    });
    return run.promise;
  }

  /** Replays a trace over `seconds` of wall time (0: at once). */
  replay(text: string, label: string, seconds: number): RunInfo {
    this.cancel();
    const { lines, errors } = parseTrace(text);
    const runIndex = lines.findIndex((l) => l.ev === 'run');
    if (runIndex < 0) throw new Error(`not a livemig trace${errors.length > 0 ? `: ${errors[0]}` : ': no run record'}`);
    const reducer = new TraceReducer();
    reducer.apply(lines[runIndex], true);
    const info = reducer.info(this.nextId++, 'replay', label, 'trace');
    this.emit('runStarted', info);
    const firstStatus = lines.find((l) => l.ev === 'status')?.t ?? lines[runIndex].t;
    const lastT = lines.at(-1)?.t ?? firstStatus;
    const t0 = Math.max(0, firstStatus - (lastT - firstStatus) * 0.05);
    const spanNs = Math.max(1, lastT - t0);
    let next = runIndex + 1;
    let lastMapWall = -Infinity;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const began = Date.now();
    const step = (): void => {
      const elapsed = Date.now() - began;
      const until = seconds <= 0 ? Infinity : t0 + (elapsed / (seconds * 1000)) * spanNs;
      let moment: TraceLine | null = null;
      for (; next < lines.length && lines[next].t <= until; next++) {
        reducer.apply(lines[next], true);
        if (isMapMoment(lines[next])) moment = lines[next];
      }
      const batch = reducer.takeBatch();
      if (batch !== null) this.emit('progress', batch);
      const now = Date.now();
      if (moment !== null || now - lastMapWall >= REPLAY_MAP_MS || next >= lines.length) {
        const snap = reducer.traceSnapshot(Math.min(until, lastT), moment?.ev ?? 'time');
        if (snap !== null) this.emit('pageMap', snap);
        lastMapWall = now;
      }
      if (next >= lines.length) {
        this.stopCurrent = null;
        this.emit('finished', reducer.summary(fnv1a64Hex(text)));
        return;
      }
      timer = setTimeout(step, REPLAY_TICK_MS);
    };
    this.stopCurrent = () => {
      if (timer !== null) clearTimeout(timer);
      this.stopCurrent = null;
      this.emit('finished', stoppedSummary(reducer.lastTNs, 'replay stopped from the dashboard'));
    };
    step();
    return info;
  }

  /** Stops the current run or replay; false when none. */
  cancel(): boolean {
    const stop = this.stopCurrent;
    if (stop === null) return false;
    stop();
    return true;
  }
}

function stoppedSummary(endNs: number, why: string): RunSummary {
  return { status: 'stopped', endReason: why, endNs, ok: null, figures: [['status', 'stopped'], ['why', why]], invariants: null, traceHash: null, error: why };
}
