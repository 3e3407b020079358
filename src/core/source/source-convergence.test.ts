// Convergence (facts §4.3) and auto-converge (§4.5) with a synthetic writer: the link carries a
// fixed budget per 10 ms pump; a writer dirtying pages faster than that keeps the migration
// iterating for as long as we let it run, a slower one lets it complete, and auto-converge's
// throttle (which the writer obeys) turns the first case into the second.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { caps, Destination, digestStore, drive, engineFor, Guest, MS, PAGE, params } from './source-harness.test-util.ts';

const sha256Of = (store: Parameters<typeof digestStore>[0]): string => digestStore(store, createHash('sha256'));

const PAGES = 4096;
/** Link budget per pump: 100 page records. */
const BUDGET = 100 * (PAGE + 8);

interface RunResult {
  readonly completed: boolean;
  readonly pumps: number;
  readonly syncs: number;
}

/** Runs with a writer dirtying `pagesPerPump` pages per pump, every page in turn (compact RAM, version payloads). */
function run(pagesPerPump: number, maxPumps: number): RunResult {
  const guest = new Guest('compact', PAGES);
  for (let p = 0; p < PAGES; p++) guest.write(p, p);
  const { engine } = engineFor(guest, { payloadMode: 'version', parameters: params({ maxBandwidthBytesPerSec: 1 << 30, downtimeLimitMs: 30 }) });
  const dest = new Destination(guest, 'version');
  dest.take(engine.start(0));
  let cursor = 0;
  const { pumps } = drive(engine, dest, 0, {
    budgetBytes: BUDGET,
    maxPumps,
    beforePump: () => {
      if (engine.phase !== 'precopy') return;
      for (let k = 0; k < pagesPerPump; k++) {
        cursor = (cursor + 613) % PAGES; // 613 is prime to 4096: every page in turn
        guest.write(cursor, k);
      }
    },
  });
  const completed = engine.status === 'completed';
  if (completed) assert.equal(sha256Of(dest.store), sha256Of(guest.store));
  return { completed, pumps, syncs: engine.queryMigrate(0).ram?.['dirty-sync-count'] ?? 0 };
}

test('a dirty rate above the bandwidth never converges (bounded run)', () => {
  const r = run(150, 1500);
  assert.equal(r.completed, false);
  assert.equal(r.pumps, 1500);
  assert.ok(r.syncs > 10, `${r.syncs} syncs`);
});

test('a dirty rate below the bandwidth converges and completes', () => {
  const r = run(30, 1500);
  assert.equal(r.completed, true);
  assert.ok(r.pumps < 500, `${r.pumps} pumps`);
});

test('auto-converge throttles a fast writer (initial 20 %, +10 % steps) until it converges, then stops throttling', () => {
  const guest = new Guest('bytes', PAGES);
  for (let p = 0; p < PAGES; p++) guest.write(p, p);
  const { engine } = engineFor(guest, {
    capabilities: caps('events', 'auto-converge'),
    parameters: params({ maxBandwidthBytesPerSec: 1 << 30, downtimeLimitMs: 30 }),
  });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  let throttlePct = 0;
  let cursor = 0;
  let seed = 1;
  let now = 0;
  const throttles: number[] = [];
  for (let i = 0; i < 20000 && engine.readiness(now).kind !== 'idle'; i++) {
    now += 10 * MS;
    if (engine.phase === 'precopy') {
      const n = Math.round(150 * (1 - throttlePct / 100));
      for (let k = 0; k < n; k++) {
        cursor = (cursor + 613) % PAGES;
        guest.write(cursor, seed++);
      }
    }
    const r = engine.pump(now, BUDGET);
    dest.take(r);
    for (const e of r.effects) {
      if (e.kind !== 'throttle') continue;
      throttlePct = e.percent;
      throttles.push(e.percent);
      if (e.percent > 0) assert.equal(engine.queryMigrate(now)['cpu-throttle-percentage'], e.percent);
    }
  }
  assert.equal(engine.status, 'completed');
  assert.deepEqual(throttles.slice(0, 2), [20, 30]);
  assert.equal(throttles.at(-1), 0, 'throttling stops at the end');
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
  assert.equal(engine.queryMigrate(now)['cpu-throttle-percentage'], undefined);
});

test('the rate limit (max-bandwidth) bounds each 100 ms window and readiness says when to come back', () => {
  const guest = new Guest('bytes', PAGES);
  for (let p = 0; p < PAGES; p++) guest.write(p, p);
  // 10 page records per 100 ms window.
  const { engine } = engineFor(guest, { parameters: params({ maxBandwidthBytesPerSec: 10 * 10 * PAGE }) });
  engine.start(0);
  const first = engine.pump(MS, 1 << 30);
  assert.equal(first.pagesScanned, 10);
  assert.deepEqual(engine.readiness(2 * MS), { kind: 'wait', untilNs: 100 * MS });
  assert.equal(engine.pump(50 * MS, 1 << 30).effects.length, 0, 'over budget: the pump does nothing');
  assert.equal(engine.pump(100 * MS, 1 << 30).pagesScanned, 10);
  // migrate-set-parameters applies at once.
  engine.setParameters(101 * MS, params({ maxBandwidthBytesPerSec: 40 * 10 * PAGE }));
  assert.equal(engine.pump(200 * MS, 1 << 30).pagesScanned, 40);
});
