// Tests of scenario loading: quantities in every spelling, defaults, `--set` overrides into
// nested paths (values parsed as YAML scalars), and refusals with the field's path, including
// QEMU's own texts for capabilities and parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GiB, MiB } from '../../lib/units.ts';
import { parseDurationValue, parseRateValue, parseSizeValue } from './quantities.ts';
import { applyOverride, loadScenario, parseOverride, ScenarioError } from './scenario.ts';

const HOT_SET = `
name: hot-set
guest: { memory: 512M }
workload: { kind: hot-set, size: 99MiB, rate: 1G/s }
link: { bandwidth: 10Gbit/s, latency: 50us, scan-cost: 10ns }
capabilities: { events: true }
parameters: { max-bandwidth: 400MiB/s, downtime-limit: 300 }
`;

test('quantities: sizes, rates and durations in every spelling', () => {
  assert.equal(parseSizeValue('8G'), 8 * GiB);
  assert.equal(parseSizeValue('99MiB'), 99 * MiB);
  assert.equal(parseSizeValue(4096), 4096);
  assert.equal(parseSizeValue('lots'), null);
  assert.equal(parseRateValue('400MiB/s'), 400 * MiB);
  assert.equal(parseRateValue('400M'), 400 * MiB);
  assert.equal(parseRateValue('10Gbit/s'), 1.25e9);
  assert.equal(parseRateValue(1e9), 1e9);
  assert.equal(parseDurationValue('1.5s'), 1_500_000_000);
  assert.equal(parseDurationValue('50us'), 50_000);
  assert.equal(parseDurationValue(300), 300_000_000);
  assert.equal(parseDurationValue('3 fortnights'), null);
});

test('a scenario loads with its defaults filled in', () => {
  const s = loadScenario(HOT_SET);
  assert.equal(s.name, 'hot-set');
  assert.equal(s.guest.memoryBytes, 512 * MiB);
  assert.equal(s.guest.backing, 'bytes');
  assert.equal(s.guest.tickNs, 1_000_000);
  assert.deepEqual(s.workload, { kind: 'hot-set', sizeBytes: 99 * MiB, rateBytesPerS: GiB });
  assert.equal(s.link.stream.bandwidthBytesPerSec, 1.25e9);
  assert.equal(s.link.returnPath.latencyNs, 50_000);
  assert.equal(s.parameters.maxBandwidthBytesPerSec, 400 * MiB);
  assert.equal(s.parameters.downtimeLimitMs, 300);
  assert.equal(s.capabilities.events, true);
  assert.equal(s.capabilities['postcopy-ram'], false);
  assert.deepEqual(s.postcopySwitch, { kind: 'none' });
  assert.equal(s.balloon, null);
  assert.equal(s.expectedStatus, 'completed');
  assert.equal(loadScenario('guest: { memory: 8G }').guest.backing, 'compact');
});

test('--set writes dotted paths, creating objects, with YAML scalar values', () => {
  const s = loadScenario(HOT_SET, [
    parseOverride('devices.balloon.free-page-hint=true')!,
    parseOverride('devices.balloon.free-page-hint-postcopy=track')!,
    parseOverride('capabilities.postcopy-ram=true')!,
    parseOverride('switch.postcopy.after-syncs=2')!,
    parseOverride('parameters.downtime-limit=500')!,
    parseOverride('workload.rate=200M')!,
    parseOverride('seed=7')!,
  ]);
  assert.deepEqual({ freePageHint: s.balloon?.freePageHint, postcopyPolicy: s.balloon?.postcopyPolicy }, { freePageHint: true, postcopyPolicy: 'track' });
  assert.deepEqual(s.postcopySwitch, { kind: 'after-syncs', syncCount: 2 });
  assert.equal(s.parameters.downtimeLimitMs, 500);
  assert.equal((s.workload as { rateBytesPerS: number }).rateBytesPerS, 200 * MiB);
  assert.equal(s.seed, 7);
  assert.equal(parseOverride('novalue'), null);
  assert.deepEqual(parseOverride('a.b=x=y'), { path: 'a.b', valueText: 'x=y' });
  const doc: Record<string, unknown> = { guest: 5 };
  assert.throws(() => applyOverride(doc, { path: 'guest.memory', valueText: '1G' }), /'guest' is not an object/);
});

test('problems are reported with the path of their field', () => {
  const problems = (text: string): readonly string[] => {
    try {
      loadScenario(text);
    } catch (error) {
      assert.ok(error instanceof ScenarioError);
      return error.problems;
    }
    assert.fail('expected a ScenarioError');
  };
  assert.deepEqual(problems('guest: { memory: lots }'), ["guest.memory: 'lots' is not a size (bytes, or a number with K/M/G/T)"]);
  assert.match(problems('guest: { memory: 1G, colour: blue }')[0], /guest: .*colour/);
  assert.match(problems('guest: { memory: 1G }\nworkload: { kind: tetris }')[0], /^workload/);
  assert.deepEqual(problems('guest: { memory: 1G }\ncapabilities: { warp-drive: true }'), [
    "capabilities.warp-drive: Parameter 'capability' does not accept value 'warp-drive'",
  ]);
  assert.deepEqual(problems('guest: { memory: 1G }\ncapabilities: { postcopy-preempt: true }'), ['capabilities: Postcopy preempt requires postcopy-ram']);
  assert.deepEqual(problems('guest: { memory: 1G }\nparameters: { downtime-limit: 3000000 }'), [
    "parameters: Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms",
  ]);
  assert.deepEqual(problems('guest: { memory: 1G }\nswitch: { postcopy: { after-syncs: 2 } }'), ['switch.postcopy: needs capabilities.postcopy-ram: true']);
  assert.match(problems('guest: [1, 2')[0], /^YAML: /);
});

test('the hinting × postcopy knobs: hint batch, kick delay, stop latency and the pressure phase', () => {
  const s = loadScenario(HOT_SET, [
    parseOverride('devices.balloon.free-page-hint=true')!,
    parseOverride('devices.balloon.hint-batch=4')!,
    parseOverride('devices.balloon.kick-delay=2ms')!,
    parseOverride('migration.stop-latency=500us')!,
    parseOverride('pressure.size=64M')!,
    parseOverride('pressure.start.after-resume=2ms')!,
  ]);
  assert.equal(s.balloon?.hintBatch, 4);
  assert.equal(s.balloon?.kickDelayNs, 2_000_000);
  assert.equal(s.stopLatencyNs, 500_000);
  assert.deepEqual(s.pressure, { sizeBytes: 64 * MiB, rateBytesPerS: GiB, holdNs: null, start: { kind: 'after-resume', delayNs: 2_000_000 } });
  const defaults = loadScenario(HOT_SET, [parseOverride('devices.balloon.free-page-hint=true')!]);
  assert.equal(defaults.balloon?.hintBatch, 32);
  assert.equal(defaults.balloon?.kickDelayNs, 0);
  assert.equal(defaults.stopLatencyNs, 0);
  assert.equal(defaults.pressure, null);
  const at = loadScenario(HOT_SET, [parseOverride('pressure.size=8M')!, parseOverride('pressure.hold=10ms')!, parseOverride('pressure.start.at=30ms')!]);
  assert.deepEqual(at.pressure?.start, { kind: 'at', afterStartNs: 30_000_000 });
  assert.equal(at.pressure?.holdNs, 10_000_000);
  assert.throws(() => loadScenario(HOT_SET, [parseOverride('pressure.size=1G')!, parseOverride('pressure.start.at=1ms')!]), /pressure.size: must be > 0 and fit/);
  assert.throws(() => loadScenario(HOT_SET, [parseOverride('devices.balloon.hint-batch=0')!]), /devices.balloon.hint-batch/);
});
