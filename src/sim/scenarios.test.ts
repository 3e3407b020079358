// Every example scenario of scenarios/ runs in the simulator with all seven invariant checkers
// passing, in a precopy and a postcopy variant; plus determinism (same seed, same trace hash;
// another seed, another hash) and the policies of DESIGN §2 under postcopy with hinting.
//
// Test-size variants: the files describe 1 to 8 GiB and 1 TiB guests; here each runs smaller
// through `--set`-style overrides (the same dotted paths as the CLI) so the whole file takes
// about a minute. Postcopy variants set downtime-limit to 1 ms: the source engine writes
// postcopy's END section (everything below bandwidth × downtime-limit) in one pump without
// serving page requests in between, and a fault that lands in it waits for the whole flush,
// past the stall bound (see the report of this test's author; the full scenario files show it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadScenario, parseOverride, type Scenario } from './scenario/scenario.ts';
import { runScenario } from './runner.ts';
import type { SimRunResult } from './world-report.ts';
import { REAL_ENGINES } from './engines.ts';
import type { EngineFactory } from './engine-ports.ts';

const SCENARIOS = new URL('../../scenarios/', import.meta.url);

function scenario(name: string, sets: readonly string[]): Scenario {
  const text = readFileSync(new URL(`${name}.yaml`, SCENARIOS), 'utf8');
  return loadScenario(text, sets.map((s) => parseOverride(s)!));
}

function describe(result: SimRunResult): string {
  const bad = result.verdicts.filter((v) => !v.ok).map((v) => `${v.name}: ${v.detail}`);
  return `${result.scenario.name} ended ${result.status} (${result.endReason}) ${result.errorText ?? ''} ${result.deviceError ?? ''}\n${bad.join('\n')}`;
}

function assertPasses(result: SimRunResult): void {
  assert.ok(result.ok, describe(result));
  assert.equal(result.verdicts.length, 7);
}

/** Smaller variants of each file, and what makes each one switch to postcopy. */
const SMALL: Record<string, { precopy: string[]; postcopy: string[] }> = {
  'idle-8g': { precopy: ['guest.memory=1G', 'guest.backing=compact'], postcopy: ['switch.postcopy.at=1ms'] },
  'kernel-build-8g': { precopy: ['guest.memory=512M', 'workload.used=128M', 'migration.start=1s'], postcopy: ['switch.postcopy.after-syncs=1'] },
  'hot-set-converges': { precopy: ['guest.memory=256M'], postcopy: ['switch.postcopy.after-syncs=1'] },
  'hot-set-never': { precopy: ['guest.memory=256M', 'time-limit=1s'], postcopy: ['switch.postcopy.after-syncs=2', 'expect.status=completed'] },
  'postcopy-after-2-syncs': { precopy: ['guest.memory=256M', 'workload.size=64M', 'capabilities.postcopy-ram=false', 'switch.postcopy=null'], postcopy: [] },
  'virtio-mem-half-plugged': { precopy: ['guest.memory=256M', 'devices.virtio-mem.size=512M', 'devices.virtio-mem.plugged=256M', 'workload.size=128M'], postcopy: ['switch.postcopy.at=1ms'] },
  'hint-idle-8g': { precopy: ['guest.memory=512M'], postcopy: ['switch.postcopy.after-syncs=1', 'devices.balloon.free-page-hint-postcopy=overrule'] },
  'huge-1t': { precopy: ['guest.memory=8G', 'capabilities.postcopy-ram=false', 'switch.postcopy=null'], postcopy: ['switch.postcopy.at=2ms'] },
};

const POSTCOPY_COMMON = ['capabilities.postcopy-ram=true', 'parameters.downtime-limit=1'];

for (const [name, variants] of Object.entries(SMALL)) {
  test(`${name}: precopy variant passes every invariant`, () => {
    const result = runScenario(scenario(name, variants.precopy));
    assertPasses(result);
    assert.equal(result.postcopy.switched, false);
  });
  const postcopySets = name === 'postcopy-after-2-syncs' ? ['guest.memory=256M', 'workload.size=64M', 'parameters.downtime-limit=1'] : [...variants.precopy.filter((s) => !s.startsWith('capabilities.postcopy-ram') && !s.startsWith('switch.')), ...POSTCOPY_COMMON, ...variants.postcopy];
  test(`${name}: postcopy variant passes every invariant`, () => {
    const result = runScenario(scenario(name, postcopySets));
    assertPasses(result);
    assert.equal(result.postcopy.switched, true, describe(result));
  });
}

test('hot-set: converges at 400 MiB/s, never at 300 MiB/s (bandwidth × downtime-limit vs 99 MiB)', () => {
  const converges = runScenario(scenario('hot-set-converges', ['guest.memory=256M']));
  assert.equal(converges.status, 'completed');
  const never = runScenario(scenario('hot-set-never', ['guest.memory=256M', 'time-limit=1s']));
  assert.equal(never.status, 'cancelled');
  assert.equal(never.endReason, 'time-limit');
  assert.ok(never.progress.length > 3, 'it kept iterating');
});

test('free page hinting: fewer bytes sent, DONE delivered, hinted memory given back', () => {
  const sets = ['guest.memory=512M'];
  const hinting = runScenario(scenario('hint-idle-8g', sets));
  const plain = runScenario(scenario('hint-idle-8g', [...sets, 'devices.balloon.free-page-hint=false']));
  assertPasses(hinting);
  assertPasses(plain);
  assert.ok(hinting.balloon.hintedPages > 50_000, `hinted ${hinting.balloon.hintedPages}`);
  assert.ok(hinting.balloon.doneDelivered);
  assert.ok(hinting.source.ram!.transferred * 3 < plain.source.ram!.transferred, 'hinting skips most of the freed memory');
});

test('hinting × postcopy: track passes; legacy and ignore-after-switch keep the memory; refuse refuses', () => {
  const sets = ['guest.memory=512M', ...POSTCOPY_COMMON, 'switch.postcopy.after-syncs=1'];
  const run = (policy: string) => runScenario(scenario('hint-idle-8g', [...sets, `devices.balloon.free-page-hint-postcopy=${policy}`]));
  const track = run('track');
  assertPasses(track);
  assert.ok(track.postcopy.switched && track.balloon.hintedPages > 0 && track.balloon.doneDelivered);
  for (const policy of ['legacy', 'ignore-after-switch']) {
    const result = run(policy);
    const hints = result.verdicts.find((v) => v.name === 'hint-recovery')!;
    assert.equal(hints.ok, false, `${policy}: ${hints.detail}`);
    assert.match(hints.detail, /DONE never reached the guest driver/);
    assert.ok(result.balloon.heldAfterMigrationBytes > 0);
  }
  const refuse = run('refuse');
  assert.equal(refuse.endReason, 'refused');
  assert.match(refuse.errorText ?? '', /'free-page-hint' does not support postcopy; Postcopy is not supported/);
  assert.equal(refuse.ok, false);
});

test('determinism: the same seed gives the same trace hash, another seed another', () => {
  const sets = ['guest.memory=64M', 'workload.size=16M', 'parameters.downtime-limit=1'];
  const a = runScenario(scenario('postcopy-after-2-syncs', sets), { seed: 7 });
  const b = runScenario(scenario('postcopy-after-2-syncs', sets), { seed: 7 });
  const c = runScenario(scenario('postcopy-after-2-syncs', sets), { seed: 8 });
  assert.equal(a.traceHash, b.traceHash);
  assert.equal(a.traceLines, b.traceLines);
  assert.notEqual(a.traceHash, c.traceHash);
  const churn = ['guest.memory=256M', 'workload.used=64M', 'migration.start=500ms'];
  assert.equal(runScenario(scenario('kernel-build-8g', churn), { seed: 3 }).traceHash, runScenario(scenario('kernel-build-8g', churn), { seed: 3 }).traceHash);
  assert.notEqual(runScenario(scenario('kernel-build-8g', churn), { seed: 3 }).traceHash, runScenario(scenario('kernel-build-8g', churn), { seed: 4 }).traceHash);
});

test('end to end, the checkers catch a source that sends unplugged memory', () => {
  // The real engines, except that the source is not told which pages are unplugged.
  const engines: EngineFactory = {
    source: (machine, s, hooks) => {
      const devices = machine.devices;
      const skipNothing = Object.create(devices) as typeof devices;
      skipNothing.skipPages = () => null;
      return REAL_ENGINES.source({ ...machine, devices: skipNothing }, s, hooks);
    },
    destination: (machine, s) => REAL_ENGINES.destination(machine, s),
  };
  const sets = ['guest.memory=256M', 'devices.virtio-mem.size=512M', 'devices.virtio-mem.plugged=256M', 'workload.size=128M'];
  const result = runScenario(scenario('virtio-mem-half-plugged', sets), { engines });
  const verdict = result.verdicts.find((v) => v.name === 'unplugged-memory')!;
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /65536 source reads of unplugged pages/);
});
