/**
 * Per-thread scheduler figures of this process, from Linux's /proc/self/task/TID/schedstat
 * (ns on a CPU, ns runnable but waiting on a run queue, time slices) and status (involuntary
 * context switches). The postcopy latency bench reports them per VM process, so a latency
 * tail can be set against how long each thread waited for a CPU. Empty where /proc has no
 * schedstat (another OS, or a kernel without CONFIG_SCHEDSTATS).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ThreadSched {
  readonly tid: number;
  /** The thread's name (`comm`): `node` for the main thread; Node names its workers' and pool threads. */
  readonly name: string;
  readonly cpuNs: number;
  readonly runQueueWaitNs: number;
  readonly slices: number;
  readonly involuntarySwitches: number;
}

/** The threads of this process now; `names` renames some (by tid), the main thread is `main`. */
export function threadSched(names: ReadonlyMap<number, string> = new Map()): ThreadSched[] {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return [];
  }
  const out: ThreadSched[] = [];
  for (const tid of tids) {
    try {
      const [cpuNs, runQueueWaitNs, slices] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      const name = Number(tid) === process.pid ? 'main' : names.get(Number(tid)) ?? readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      const involuntarySwitches = Number(/nonvoluntary_ctxt_switches:\s*(\d+)/.exec(status)?.[1] ?? 0);
      out.push({ tid: Number(tid), name, cpuNs, runQueueWaitNs, slices, involuntarySwitches });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** What each thread alive at `after` did since `before` (threads born since count from 0). */
export function schedDelta(before: readonly ThreadSched[], after: readonly ThreadSched[]): ThreadSched[] {
  const byTid = new Map(before.map((t) => [t.tid, t]));
  return after.map((t) => {
    const b = byTid.get(t.tid);
    if (b === undefined) return t;
    return { ...t, cpuNs: t.cpuNs - b.cpuNs, runQueueWaitNs: t.runQueueWaitNs - b.runQueueWaitNs, slices: t.slices - b.slices, involuntarySwitches: t.involuntarySwitches - b.involuntarySwitches };
  });
}

/** One line per thread that ran: name, CPU ms, run-queue wait ms, mean wait per slice. */
export function formatSched(threads: readonly ThreadSched[]): string {
  return threads
    .filter((t) => t.cpuNs > 1e6)
    .sort((a, b) => b.cpuNs - a.cpuNs)
    .map((t) => `${t.name} cpu ${(t.cpuNs / 1e6).toFixed(0)} ms, waited ${(t.runQueueWaitNs / 1e6).toFixed(0)} ms for a CPU over ${t.slices} slices (${(t.runQueueWaitNs / Math.max(1, t.slices) / 1e6).toFixed(2)} ms each), ${t.involuntarySwitches} preempted`)
    .join('; ');
}
