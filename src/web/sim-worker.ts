/**
 * The dashboard's live run, in a worker thread of the server process: the simulator runs
 * synchronously for seconds to minutes, so it gets its own thread, and the observer's events
 * (observer.ts, live pacing) stream to the server as messages while it runs.
 *
 * Messages to the parent: `{ event, args }` for each DashboardEvents call, then `{ done: true }`,
 * or `{ error }` when the scenario cannot be run.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { loadScenario, parseOverride, ScenarioError } from '../sim/scenario/scenario.ts';
import type { DashboardEvents } from './api-types.ts';
import { RunObserver, runObserved } from './observer.ts';

/** What the server hands the worker. */
export interface SimWorkerData {
  readonly runId: number;
  readonly scenarioText: string;
  readonly file: string;
  readonly seed: number | null;
  readonly overrides: readonly string[];
}

/** A message from the worker. */
export type SimWorkerMessage =
  | { readonly event: keyof DashboardEvents; readonly args: readonly unknown[] }
  | { readonly done: true }
  | { readonly error: string };

function post(message: SimWorkerMessage): void {
  parentPort?.postMessage(message);
}

/** The worker's body (the bootstrap imports this module and calls it). */
export function simWorkerMain(): void {
  const data = workerData as SimWorkerData;
  const sink: DashboardEvents = {
    runStarted: (...args) => post({ event: 'runStarted', args }),
    progress: (...args) => post({ event: 'progress', args }),
    pageMap: (...args) => post({ event: 'pageMap', args }),
    finished: (...args) => post({ event: 'finished', args }),
  };
  try {
    const overrides = data.overrides.map((text) => {
      const o = parseOverride(text);
      if (o === null) throw new ScenarioError([`--set: '${text}' is not key=value`]);
      return o;
    });
    const scenario = loadScenario(data.scenarioText, overrides);
    const observer = new RunObserver({ pacing: 'live', sink, runId: data.runId, kind: 'live', overrides: data.overrides, wallNowMs: () => performance.now() });
    runObserved(scenario, data.seed ?? undefined, observer);
    post({ done: true });
  } catch (error) {
    post({ error: `${data.file}: ${error instanceof Error ? error.message : String(error)}` });
  }
}
