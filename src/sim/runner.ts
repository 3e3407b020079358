/**
 * One scenario run from start to verdict: build the machine and the world for a seed, run the
 * world to its end, run the checkers, collect the result. Pure and deterministic: the same
 * scenario, seed and commit give the same trace hash (DESIGN §3).
 *
 * @example
 * const result = runScenario(loadScenario(text, [parseOverride('guest.memory=64M')!]), { seed: 7 });
 * console.log(result.ok, result.traceHash);
 */
import { buildMachine, type Machine } from './machine.ts';
import { REAL_ENGINES } from './engines.ts';
import { ScenarioError, type Scenario } from './scenario/scenario.ts';
import { TraceWriter } from './trace.ts';
import { World, type EngineFactory } from './world.ts';
import { resultOf, type SimRunResult } from './world-report.ts';

export interface RunOptions {
  /** The run's seed; default the scenario's. */
  readonly seed?: number;
  /** Where the trace goes; default a hash-only writer. */
  readonly trace?: TraceWriter;
  /** The engines; default the real ones. */
  readonly engines?: EngineFactory;
  /** Called with the world once it has run (for sweeps that look past the result). */
  readonly inspect?: (world: World) => void;
}

/** Runs `scenario` and returns its result (see SimRunResult); ScenarioError when it cannot be built. */
export function runScenario(scenario: Scenario, options: RunOptions = {}): SimRunResult {
  const seed = options.seed ?? scenario.seed;
  const trace = options.trace ?? new TraceWriter({ keepLines: false });
  let world: World | null = null;
  let machine: Machine;
  try {
    machine = buildMachine(scenario, seed, (startPage, pageCount, cmdId) => world?.onHint(startPage, pageCount, cmdId));
    world = new World(scenario, machine, options.engines ?? REAL_ENGINES, trace, seed);
  } catch (error) {
    // A guest, device or engine that cannot be built from this scenario (a workload larger
    // than free memory, a capability the engine does not implement): the scenario is at fault.
    if (error instanceof Error && !(error instanceof TypeError) && !(error instanceof ReferenceError) && error.name !== 'AssertionError') {
      throw new ScenarioError([`cannot build the machine: ${error.message}`]);
    }
    throw error;
  }
  world.run();
  options.inspect?.(world);
  return resultOf(world, seed, trace);
}
