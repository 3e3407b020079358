/**
 * The simulator's convergence checks, in the shape of QEMU's own trace (format/qemu-trace.ts),
 * so that a lab case can be read side by side: when each check came, what was pending against
 * which threshold, and where the simulator decided to complete. `npm run lab -- --checks ID`
 * and `livemig sim --checks` print them.
 *
 * The checks and syncs are read from the source engine's counters after every step (SourceCounters
 * convergenceChecks, dirtySyncs and the last one's figures, through watched-engines.ts, so the run is the
 * same with or without them); times are milliseconds since `migrate`.
 */
import type { QemuTraceEvent } from '../../format/qemu-trace.ts';
import { assert } from '../../lib/assert.ts';
import { REAL_ENGINES } from '../engines.ts';
import type { EngineFactory, SourcePort } from '../engine-ports.ts';
import { runScenario } from '../runner.ts';
import type { Scenario } from '../scenario/scenario.ts';
import { watchSource } from '../watched-engines.ts';

const NS_PER_MS = 1e6;

/**
 * `base` with its source's checks recorded into `events`: each iteration that ended on its time
 * (`big-wait`, with option iterationNsMin), each dirty sync (`sync`, the pages dirty this sync
 * period, as QEMU's migration_bitmap_sync_end counts them), each check (`pending`), and
 * `low-pending` where it completed.
 */
export function recordChecks(base: EngineFactory): { readonly engines: EngineFactory; readonly events: QemuTraceEvent[] } {
  const events: QemuTraceEvent[] = [];
  let port: SourcePort | null = null;
  let startNs = 0;
  let seen = 0;
  let syncsSeen = 0;
  let bigWaitsSeen = 0;
  const engines = watchSource(base, {
    built: (p, _machine, scenario) => {
      port = p;
      startNs = scenario.migrationStartNs;
    },
    stepped: (nowNs) => {
      const c = port?.counters();
      if (c === undefined) return;
      const tMs = Math.round(((nowNs - startNs) / NS_PER_MS) * 10) / 10;
      // An iteration ends on its time at the pump that checks next, before that pump's sync and check.
      if (c.bigWaits !== bigWaitsSeen) {
        bigWaitsSeen = c.bigWaits;
        events.push([tMs, 'big-wait', c.lastBigWaitMs, c.lastBigWaitPages]);
      }
      // A step runs at most one sync (before its check, iterate.ts, or the completion's), so each is seen.
      assert(c.dirtySyncs - syncsSeen <= 1, `${c.dirtySyncs - syncsSeen} dirty syncs in one step at ${tMs} ms`);
      if (c.dirtySyncs !== syncsSeen) {
        syncsSeen = c.dirtySyncs;
        events.push([tMs, 'sync', c.lastSyncPeriodDirtyPages]);
      }
      if (c.convergenceChecks === seen) return;
      seen = c.convergenceChecks;
      events.push([tMs, 'pending', c.lastCheckPendingBytes, c.lastCheckThresholdBytes]);
      if (c.lastCheckDecision === 'complete') events.push([tMs, 'low-pending', c.lastCheckPendingBytes]);
    },
  });
  return { engines, events };
}

/** Runs `scenario` (with `seed`, default the scenario's) and returns its precopy convergence checks. */
export function simulatedChecks(scenario: Scenario, seed?: number): QemuTraceEvent[] {
  const { engines, events } = recordChecks(REAL_ENGINES);
  runScenario(scenario, { engines, seed });
  return events;
}
