// Free page hints on the source (DESIGN §2, facts §5.6): a hint clears the migration bitmap
// only (a page written after it is resent after the next sync), lowers `remaining`, is ignored
// outside a migration and, under `ignore-after-switch`, after the switch. Under `track` a
// postcopy request for a hinted never-sent page gets exactly one ZERO record; under `legacy`
// nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HintPostcopyPolicy } from '../engine-types.ts';
import {
  caps,
  Destination,
  drive,
  engineFor,
  Guest,
  RecordingHooks,
  marks,
  MS,
  PAGE,
  rp,
} from './source-harness.test-util.ts';


const PAGES = 1024;

function fullGuest(): Guest {
  const guest = new Guest('bytes', PAGES);
  for (let p = 0; p < PAGES; p++) guest.write(p, p);
  return guest;
}

test('a hint clears migration-bitmap bits only; a page written after the hint is resent after the next sync', () => {
  const guest = fullGuest();
  const { engine } = engineFor(guest, { hintPolicy: 'legacy' });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  const before = engine.queryMigrate(0).ram!.remaining;
  // Pages 512..767 are free in the guest: never sent.
  const r = engine.applyHint(1 * MS, 512, 256);
  assert.deepEqual(marks([r]), []);
  assert.equal(engine.queryMigrate(1 * MS).ram!.remaining, before - 256 * PAGE);
  assert.equal(engine.counters().hintedPages, 256);
  // The dirty log is untouched: a write to a hinted page after the hint is caught by the next sync.
  guest.write(600, 4242);
  assert.equal(guest.log.isDirty(600), true);
  drive(engine, dest, 1 * MS, { budgetBytes: 64 * PAGE });
  assert.equal(engine.status, 'completed');
  const sent = new Set(dest.arrivals.map((a) => a.page));
  assert.equal(sent.has(600), true, 'page 600 was written after the hint and must be sent');
  assert.equal(sent.has(601), false, 'page 601 is free and never sent');
  const page = new Uint8Array(PAGE);
  const mine = new Uint8Array(PAGE);
  dest.store.copyPageOut(600, page);
  guest.store.copyPageOut(600, mine);
  assert.deepEqual(page, mine);
});

test('a hint outside a migration, or outside RAM, changes nothing but marks', () => {
  const guest = fullGuest();
  const { engine } = engineFor(guest);
  assert.deepEqual(marks([engine.applyHint(0, 0, 10)]), ['hint-not-migrating']);
  engine.start(1);
  assert.deepEqual(marks([engine.applyHint(2, PAGES - 2, 10)]), ['hint-outside-ram']);
  assert.equal(engine.counters().hintedPages, 2);
});

/**
 * A postcopy migration where pages 800..899 are hinted before they were sent, then the
 * destination requests page 850 twice (a fault, then a second fault on the same page).
 */
function hintedRequestScenario(policy: HintPostcopyPolicy): { zeroRecords: number; marks: string[]; counters: ReturnType<ReturnType<typeof engineFor>['engine']['counters']>; isHinted: boolean } {
  const guest = fullGuest();
  const { engine } = engineFor(guest, { capabilities: caps('events', 'postcopy-ram'), hintPolicy: policy, debugChecks: true });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  dest.take(engine.pump(10 * MS, 100 * PAGE));
  engine.applyHint(11 * MS, 800, 100);
  engine.startPostcopy(12 * MS);
  dest.take(engine.pump(13 * MS, 1 << 20));
  dest.take(engine.pump(14 * MS, 1 << 20));
  assert.equal(engine.phase, 'postcopy');
  const seen: string[] = [];
  const request = rp({ kind: 'req-pages-id', startBytes: 850 * PAGE, lengthBytes: PAGE, blockName: 'ram' });
  for (const t of [20, 30]) {
    engine.onReturnPath(t * MS, request);
    const r = engine.pump(t * MS, PAGE);
    dest.take(r);
    seen.push(...marks([r]));
  }
  const isHinted = engine.isHintedNeverSent(850);
  drive(engine, dest, 40 * MS);
  assert.equal(engine.status, 'completed');
  assert.deepEqual(dest.duplicatesAfterSwitch(), []);
  // Everything but the hinted pages arrived as written.
  for (let p = 0; p < PAGES; p++) {
    if (p >= 800 && p < 900) continue;
    assert.ok(dest.store.pageEquals(guest.store, p), `page ${p}`);
  }
  const zeroRecords = dest.arrivals.filter((a) => a.page === 850 && a.kind === 'zero').length;
  return { zeroRecords, marks: seen.filter((m) => m.startsWith('request')), counters: engine.counters(), isHinted };
}

test('track: a request for a hinted never-sent page gets exactly one ZERO record; the second gets nothing', () => {
  const r = hintedRequestScenario('track');
  assert.equal(r.zeroRecords, 1);
  assert.deepEqual(r.marks, ['request-hinted-zero', 'request-not-dirty']);
  assert.equal(r.counters.hintedPages, 100);
  assert.equal(r.counters.hintedNeverSentPages, 100);
  assert.equal(r.counters.hintedZeroPagesSent, 1);
  assert.equal(r.isHinted, false);
});

test('legacy: a request for a hinted never-sent page gets nothing (the 2021 stall)', () => {
  const r = hintedRequestScenario('legacy');
  assert.equal(r.zeroRecords, 0);
  assert.deepEqual(r.marks, ['request-not-dirty', 'request-not-dirty']);
  assert.equal(r.counters.hintedNeverSentPages, 0);
  assert.equal(r.counters.hintedZeroPagesSent, 0);
});

test('ignore-after-switch: hints before the switch apply, hints after it are ignored', () => {
  const guest = fullGuest();
  const { engine } = engineFor(guest, { capabilities: caps('postcopy-ram'), hintPolicy: 'ignore-after-switch' });
  engine.start(0);
  engine.applyHint(1 * MS, 0, 10);
  assert.equal(engine.counters().hintedPages, 10);
  engine.startPostcopy(2 * MS);
  engine.pump(3 * MS, 1 << 20);
  engine.pump(4 * MS, 1 << 20);
  assert.equal(engine.status, 'postcopy-active');
  const r = engine.applyHint(5 * MS, 500, 10);
  assert.deepEqual(marks([r]), ['hint-ignored-after-switch']);
  assert.equal(engine.counters().hintedPages, 10);
  assert.equal(engine.migrationBitmap.isDirty(505), true);
});

test('track: a page sent in precopy, dirty at the switch and hinted after it is answered (DISCARD dropped the old copy)', () => {
  const guest = fullGuest();
  const { engine } = engineFor(guest, { capabilities: caps('postcopy-ram'), hintPolicy: 'track', debugChecks: true });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  dest.take(engine.pump(10 * MS, 100 * PAGE)); // pages 0..99 sent
  guest.write(42, 7); // dirty again: discarded at the switch
  engine.startPostcopy(11 * MS);
  dest.take(engine.pump(12 * MS, 1 << 20));
  dest.take(engine.pump(13 * MS, 1 << 20));
  assert.equal(engine.migrationBitmap.isDirty(42), true);
  // After the switch the guest frees page 42 and page 10 (10 is on the destination: not recorded).
  engine.applyHint(14 * MS, 42, 1);
  engine.applyHint(14 * MS, 10, 1);
  assert.equal(engine.isHintedNeverSent(42), true);
  assert.equal(engine.isHintedNeverSent(10), false);
  engine.onReturnPath(15 * MS, rp({ kind: 'req-pages-id', startBytes: 42 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  const r = engine.pump(15 * MS, PAGE);
  dest.take(r);
  assert.deepEqual(marks([r]).filter((m) => m.startsWith('request')), ['request-hinted-zero']);
  assert.deepEqual(dest.arrivals.filter((a) => a.postcopy && a.page === 42).map((a) => a.kind), ['zero']);
});

test('a write after the hint to a hinted page makes it an ordinary page again (sent, no longer hinted)', () => {
  const guest = fullGuest();
  const { engine } = engineFor(guest, { hintPolicy: 'track' });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  engine.applyHint(MS, 300, 4);
  assert.equal(engine.isHintedNeverSent(301), true);
  guest.write(301, 99);
  drive(engine, dest, MS, { budgetBytes: 32 * PAGE });
  assert.equal(engine.status, 'completed');
  assert.equal(engine.isHintedNeverSent(301), false);
  assert.equal(engine.isHintedNeverSent(300), true);
  assert.ok(dest.store.pageEquals(guest.store, 301));
});

test('design rule: BEFORE_BITMAP_SYNC runs before the log is merged, so a hint applied there cannot hide a later write', () => {
  const guest = fullGuest();
  const hooks = new RecordingHooks();
  const { engine } = engineFor(guest, { hintPolicy: 'track', hooks });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  // The guest hints 600..607 (block free when it was picked); the hint is still queued when the
  // guest reuses the block and writes page 600. The device applies queued hints of the round
  // at BEFORE_BITMAP_SYNC (the latest point livemig allows): the log must not be merged yet.
  guest.write(600, 4242);
  let logDirtyAtBefore: boolean | null = null;
  hooks.precopyNotify = (reason, nowNs, vmRunning) => {
    RecordingHooks.prototype.precopyNotify.call(hooks, reason, nowNs, vmRunning);
    if (reason !== 'before-bitmap-sync' || logDirtyAtBefore !== null) return;
    logDirtyAtBefore = guest.log.isDirty(600);
    engine.applyHint(nowNs, 600, 8);
  };
  drive(engine, dest, MS, { budgetBytes: 64 * PAGE });
  assert.equal(engine.status, 'completed');
  assert.equal(logDirtyAtBefore, true, 'the write is still in the dirty log when the hint is applied');
  assert.equal(engine.counters().hintedPages > 0, true);
  assert.ok(dest.store.pageEquals(guest.store, 600), 'the write after the hint was sent');
  assert.equal(new Set(dest.arrivals.map((a) => a.page)).has(601), false, 'the rest of the block stays hinted');
});
