/**
 * The simulator's convergence checks, in the shape of QEMU's own trace (format/qemu-trace.ts),
 * so that a lab case can be read side by side: when each check came, what was pending against
 * which threshold, and where the simulator decided to complete. `npm run lab -- --checks ID`
 * prints both.
 *
 * The checks are read from the source engine's counters after every pump (SourceCounters
 * convergenceChecks and the last check's figures); times are milliseconds since `migrate`.
 */
import type { QemuTraceEvent } from '../../format/qemu-trace.ts';
import { REAL_ENGINES } from '../engines.ts';
import type { EngineFactory, SourcePort } from '../engine-ports.ts';
import { runScenario } from '../runner.ts';
import type { Scenario } from '../scenario/scenario.ts';

const NS_PER_MS = 1e6;

/**
 * Runs `scenario` (with `seed`, default the scenario's) and returns its precopy convergence
 * checks (`pending`, then `low-pending` where it completed).
 */
export function simulatedChecks(scenario: Scenario, seed?: number): QemuTraceEvent[] {
  const events: QemuTraceEvent[] = [];
  let startNs = -1;
  let seen = 0;
  const record = (port: SourcePort, nowNs: number): void => {
    const c = port.counters();
    if (c.convergenceChecks === seen) return;
    seen = c.convergenceChecks;
    const tMs = Math.round((nowNs - startNs) / NS_PER_MS * 10) / 10;
    events.push([tMs, 'pending', c.lastCheckPendingBytes, c.lastCheckThresholdBytes]);
    if (c.lastCheckDecision === 'complete') events.push([tMs, 'low-pending', c.lastCheckPendingBytes]);
  };
  const engines: EngineFactory = {
    source(machine, s, hooks) {
      const port = REAL_ENGINES.source(machine, s, hooks);
      return new Proxy(port, {
        get: (target, key) => {
          if (key === 'start') {
            return (nowNs: number) => {
              startNs = nowNs;
              return target.start(nowNs);
            };
          }
          if (key === 'pump') {
            return (budget: number, nowNs: number) => {
              const result = target.pump(budget, nowNs);
              record(target, nowNs);
              return result;
            };
          }
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
    destination: (machine, s) => REAL_ENGINES.destination(machine, s),
  };
  runScenario(scenario, { engines, seed });
  return events;
}
