/**
 * Watching a run's source engine without changing it: an engine factory that hands out the
 * base factory's source port wrapped so that `stepped` runs after each tick and pump. The
 * dashboard's observer (web/observer.ts) and the CLI's progress bar (cli/sim.ts) use it; they
 * only read, so the trace is the same with or without a watch.
 */
import type { StepResult } from '../core/engine-types.ts';
import type { EngineFactory, SourcePort } from './engine-ports.ts';
import type { Machine } from './machine.ts';
import type { Scenario } from './scenario/scenario.ts';

export interface SourceWatch {
  /** The source port was built for this machine and scenario (the unwrapped port). */
  built?(port: SourcePort, machine: Machine, scenario: Scenario): void;
  /** After each source tick and pump, at `nowNs`. */
  stepped(nowNs: number): void;
}

/** `base` with its source ports watched. */
export function watchSource(base: EngineFactory, watch: SourceWatch): EngineFactory {
  return {
    source: (machine, scenario, hooks) => {
      const port = base.source(machine, scenario, hooks);
      watch.built?.(port, machine, scenario);
      return watched(port, watch);
    },
    destination: (machine, scenario) => base.destination(machine, scenario),
  };
}

/**
 * The port with tick and pump reported after they run. A proxy, so every other member
 * (including ones added to SourcePort later) reaches the port unchanged.
 */
function watched(port: SourcePort, watch: SourceWatch): SourcePort {
  const after = (result: StepResult, nowNs: number): StepResult => {
    watch.stepped(nowNs);
    return result;
  };
  const tick = (now: number): StepResult => after(port.tick(now), now);
  const pump = (budget: number, now: number): StepResult => after(port.pump(budget, now), now);
  return new Proxy(port, {
    get: (target, key) => {
      if (key === 'tick') return tick;
      if (key === 'pump') return pump;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
