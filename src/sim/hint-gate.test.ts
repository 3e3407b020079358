// The hint gate (hint-gate.ts) against the engine's own iterations: at 1 GiB/s, where QEMU's
// migration thread never sleeps, a hint that comes while an iteration runs waits for its end,
// and no hint is ever applied inside a running iteration. With `hint-apply: immediate` the same
// run applies hints inside iterations, so the check can tell the two apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { REAL_ENGINES } from './engines.ts';
import type { EngineFactory, SourcePort } from './engine-ports.ts';
import { runScenario } from './runner.ts';
import { loadScenario, ScenarioError } from './scenario/scenario.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const text = readFileSync(join(ROOT, 'scenarios/lab/warm-host/m1024-alloc-1g-hint-on.yaml'), 'utf8');

interface HintTimes {
  /** Hints applied while the engine's iteration went on (QEMU would hold bitmap_mutex). */
  inside: number;
  /** Hints applied after their iteration ended, before the pump that checks. */
  held: number;
  /** All hints applied. */
  all: number;
}

/** REAL_ENGINES with the source's applyHint classified by the iteration it lands in. */
function classifyHints(times: HintTimes): EngineFactory {
  return {
    source: (machine, scenario, hooks) => {
      const port = REAL_ENGINES.source(machine, scenario, hooks);
      return new Proxy(port, {
        get: (target, key) => {
          if (key === 'applyHint') {
            return (start: number, count: number, nowNs: number) => {
              times.all++;
              if (target.iterationGoesOn(TARGET_PAGE_SIZE * 2, nowNs)) times.inside++;
              else if (target.iterationOpen) times.held++;
              return target.applyHint(start, count, nowNs);
            };
          }
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      }) satisfies SourcePort;
    },
    destination: (machine, scenario) => REAL_ENGINES.destination(machine, scenario),
  };
}

test('between-iterations: hints wait for the end of the engine\'s running iteration; immediate: they do not', () => {
  assert.match(text, /hint-apply: between-iterations/);
  const gated: HintTimes = { inside: 0, held: 0, all: 0 };
  const gatedRun = runScenario(loadScenario(text), { engines: classifyHints(gated) });
  assert.equal(gatedRun.status, 'completed');
  assert.ok(gated.all > 0, 'the run applied hints');
  assert.equal(gated.inside, 0, `${gated.inside} of ${gated.all} hints applied inside an iteration`);
  assert.ok(gated.held > 0, `${gated.held} of ${gated.all} hints waited for an iteration's end`);

  const open: HintTimes = { inside: 0, held: 0, all: 0 };
  runScenario(loadScenario(text.replace('hint-apply: between-iterations', 'hint-apply: immediate')), { engines: classifyHints(open) });
  assert.ok(open.inside > 0, `immediate: ${open.inside} of ${open.all} hints applied inside an iteration`);
});

test('between-iterations without host.iteration is refused: nothing would hold the hints', () => {
  const without = text.replace(/,\n\s+iteration: 51ms, iteration-pages: 64 \}/, ' }');
  assert.notEqual(without, text);
  assert.throws(() => loadScenario(without), (e: unknown) => e instanceof ScenarioError &&
    e.message.includes('devices.balloon.hint-apply: between-iterations needs host.iteration (the iterations that hold the hints)'));
});
