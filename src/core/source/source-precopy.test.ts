// Precopy acceptance tests of the source engine, driven by a tiny loop (no simulator): the
// stream decodes with format's StreamDecoder into RAM equal to the source (sha256), in facts
// §1.7's section and command order; a guest writing between pumps still ends equal (dirty pages
// resent); the notifier sequence is §4.1's; statistics follow QEMU's accounting.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { checkStatusSequence } from '../status.ts';
import {
  caps,
  Destination,
  digestStore,
  drive,
  effectsOf,
  engineFor,
  Guest,
  MS,
  PAGE,
  params,
  RecordingHooks,
  marks,
  statusMoves,
} from './source-harness.test-util.ts';
import { RangeTable } from '../../lib/range-table.ts';

const sha256Of = (store: Parameters<typeof digestStore>[0]): string => digestStore(store, createHash('sha256'));

const PAGES_16M = 4096;

/** A 16 MiB guest: every third page zero, the others a pattern. */
function patternGuest(): Guest {
  const guest = new Guest('bytes', PAGES_16M);
  for (let p = 0; p < PAGES_16M; p++) if (p % 3 !== 0) guest.write(p, p);
  return guest;
}

/** Collapses runs of equal neighbours: ['a','a','b'] → ['a','b']. */
function collapse(items: readonly string[]): string[] {
  return items.filter((x, i) => i === 0 || items[i - 1] !== x);
}

test('a 16 MiB precopy decodes into RAM equal to the source, in §1.7 order', () => {
  const guest = patternGuest();
  const { engine } = engineFor(guest);
  const dest = new Destination(guest);
  const started = engine.start(0);
  dest.take(started);
  const { results } = drive(engine, dest, 0, { budgetBytes: 4 << 20 });
  assert.equal(engine.status, 'completed');
  assert.equal(dest.sawEof, true);
  assert.equal(guestDigest(dest), sha256Of(guest.store));
  assert.deepEqual(collapse(dest.trail), [
    'header',
    'configuration',
    'begin:start:ram',
    'ram-blocks',
    'ram-eos',
    'section-end',
    ...partsAndEnd(dest.trail),
    'begin:full:timer',
    'device',
    'section-end',
    'begin:full:globalstate',
    'device',
    'section-end',
    'eof',
    'vmdescription',
  ]);
  const all = [started, ...results];
  assert.deepEqual(statusMoves(all), ['none>setup', 'setup>active', 'active>completed']);
  assert.ok(checkStatusSequence(['none', 'setup', 'active', 'completed'], 'source').ok);
  // No return path: no commands at all.
  assert.deepEqual(dest.commands, []);
  assert.equal(effectsOf(all, 'stop-guest').length, 1);
  assert.equal(effectsOf(all, 'run-guest').length, 0);
});

/** The PART…END part of a collapsed trail, checked to be well formed, returned as is. */
function partsAndEnd(trail: readonly string[]): string[] {
  const c = collapse(trail);
  const from = c.indexOf('section-end') + 1;
  const to = c.indexOf('begin:full:timer');
  const middle = c.slice(from, to);
  // PART (ram-eos section-end)… END ram-eos section-end
  assert.equal(middle.at(-3), 'begin:end:ram');
  assert.deepEqual(middle.slice(-2), ['ram-eos', 'section-end']);
  for (let i = 0; i < middle.length - 3; i += 3) assert.deepEqual(middle.slice(i, i + 3), ['begin:part:ram', 'ram-eos', 'section-end']);
  return middle;
}

function guestDigest(dest: Destination): string {
  return sha256Of(dest.store);
}

test('a guest that writes between pumps still ends equal: dirty pages are resent', () => {
  const guest = patternGuest();
  const { engine, hooks } = engineFor(guest);
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  let seed = 1;
  const { results } = drive(engine, dest, 0, {
    budgetBytes: 1 << 20,
    beforePump: (_now, i) => {
      // A modest writer: 40 pages per pump for the first 30 pumps, always touching page 7.
      if (i >= 30) return;
      for (let k = 0; k < 40; k++) guest.write((i * 97 + k * 31) % PAGES_16M, seed++);
      guest.write(7, seed++);
    },
  });
  assert.equal(engine.status, 'completed');
  assert.equal(guestDigest(dest), sha256Of(guest.store));
  const resent = dest.arrivals.filter((a) => a.page === 7).length;
  assert.ok(resent >= 2, `page 7 was sent ${resent} times`);
  const info = engine.queryMigrate(0);
  assert.ok((info.ram?.['dirty-sync-count'] ?? 0) >= 3);
  // §4.1 with intermediate syncs: BEFORE, AFTER, SETUP, {BEFORE, AFTER}…, COMPLETE, BEFORE, AFTER (stopped), CLEANUP.
  const n = hooks.notifications;
  assert.deepEqual(n.slice(0, 3), ['before-bitmap-sync', 'after-bitmap-sync', 'setup']);
  assert.deepEqual(n.slice(-4), ['complete(stopped)', 'before-bitmap-sync(stopped)', 'after-bitmap-sync(stopped)', 'cleanup(stopped)']);
  const middle = n.slice(3, -4);
  assert.ok(middle.length >= 2 && middle.length % 2 === 0);
  for (let i = 0; i < middle.length; i += 2) assert.deepEqual(middle.slice(i, i + 2), ['before-bitmap-sync', 'after-bitmap-sync']);
  // MIGRATION_PASS counts the syncs, from 1.
  const passes = effectsOf(results, 'event').map((e) => (e.kind === 'event' ? e.data?.pass : null));
  assert.deepEqual(passes, Array.from({ length: passes.length }, (_, i) => i + 2));
});

test('an idle guest gives exactly §4.1 sequence: BEFORE, AFTER, SETUP, COMPLETE, BEFORE, AFTER, CLEANUP', () => {
  const guest = new Guest('bytes', 256);
  const { engine, hooks } = engineFor(guest);
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  drive(engine, dest, 0);
  assert.equal(engine.status, 'completed');
  assert.deepEqual(hooks.notifications, [
    'before-bitmap-sync',
    'after-bitmap-sync',
    'setup',
    'complete(stopped)',
    'before-bitmap-sync(stopped)',
    'after-bitmap-sync(stopped)',
    'cleanup(stopped)',
  ]);
});

test('statistics: QEMU accounting of transferred, duplicate, normal, phases, remaining', () => {
  const guest = patternGuest();
  const { engine } = engineFor(guest);
  const dest = new Destination(guest);
  dest.take(engine.start(5 * MS));
  const during = engine.queryMigrate(5 * MS);
  assert.equal(during.status, 'active');
  assert.equal(during.ram?.remaining, PAGES_16M * PAGE);
  assert.equal(during.ram?.total, PAGES_16M * PAGE);
  const { nowNs } = drive(engine, dest, 5 * MS, { budgetBytes: 64 << 20 });
  const info = engine.queryMigrate(nowNs);
  const ram = info.ram!;
  const zero = Math.ceil(PAGES_16M / 3);
  assert.equal(ram.duplicate, zero);
  assert.equal(ram.normal, PAGES_16M - zero);
  assert.equal(ram['normal-bytes'], (PAGES_16M - zero) * PAGE);
  assert.equal(ram.remaining, 0);
  assert.equal(ram.transferred, ram['precopy-bytes'] + ram['downtime-bytes'] + ram['postcopy-bytes']);
  assert.equal(ram['postcopy-bytes'], 0);
  assert.equal(info.status, 'completed');
  assert.equal(typeof info.downtime, 'number');
  assert.equal(info['setup-time'], 0);
});

test('setup sends the preamble for return-path and postcopy-ram (OPEN_RETURN_PATH, PING 1, ADVISE)', () => {
  const guest = new Guest('bytes', 16);
  const { engine } = engineFor(guest, { capabilities: caps('events', 'postcopy-ram') });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  assert.deepEqual(dest.commands, [
    { kind: 'open-return-path' },
    { kind: 'ping', value: 1 },
    { kind: 'postcopy-advise', pageSizeSummary: 0x1000, targetPageSize: 0x1000 },
  ]);
  const rpOnly = new Guest('bytes', 16);
  const e2 = engineFor(rpOnly, { capabilities: caps('return-path') });
  const d2 = new Destination(rpOnly);
  d2.take(e2.engine.start(0));
  assert.deepEqual(d2.commands, [{ kind: 'open-return-path' }, { kind: 'ping', value: 1 }]);
});

test('with a return path, completion waits for SHUT in status active', () => {
  const guest = new Guest('bytes', 64);
  const { engine } = engineFor(guest, { capabilities: caps('return-path') });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  drive(engine, dest, 0, { shut: false });
  assert.equal(dest.sawEof, true);
  assert.equal(engine.status, 'active');
  assert.equal(engine.phase, 'awaiting-shut');
  assert.deepEqual(engine.readiness(10 ** 12), { kind: 'idle' });
});

test('option awaitWritten: without a return path, completion (downtime, total time) ends at `written`', () => {
  const guest = new Guest('bytes', 64);
  const { engine } = engineFor(guest, { awaitWritten: true });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  const { nowNs } = drive(engine, dest, 0);
  assert.equal(dest.sawEof, true);
  assert.equal(engine.status, 'active');
  assert.equal(engine.phase, 'awaiting-written');
  assert.deepEqual(engine.readiness(nowNs), { kind: 'idle' });
  const stoppedAtMs = nowNs / MS - 10; // drive steps 10 ms per pump: stop-guest one pump before EOF
  const written = engine.written(nowNs + 37 * MS);
  assert.deepEqual(statusMoves([written]), ['active>completed']);
  const info = engine.queryMigrate(nowNs + 37 * MS);
  assert.equal(info.downtime, 37 + nowNs / MS - stoppedAtMs);
  assert.equal(info['total-time'], nowNs / MS + 37);
  // Ignored once finished; an engine without the option completes at EOF as before.
  assert.deepEqual(marks([engine.written(nowNs + 40 * MS)]), ['written-ignored']);
  const plain = engineFor(new Guest('bytes', 64)).engine;
  const plainDest = new Destination(guest);
  plainDest.take(plain.start(0));
  drive(plain, plainDest, 0);
  assert.equal(plain.status, 'completed');
});

test('option awaitWritten: a channel error while waiting for `written` fails the migration', () => {
  const guest = new Guest('bytes', 64);
  const { engine } = engineFor(guest, { awaitWritten: true });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  const { nowNs } = drive(engine, dest, 0);
  assert.equal(engine.phase, 'awaiting-written');
  const r = engine.channelError(nowNs + MS, 'broken pipe');
  assert.deepEqual(statusMoves([r]), ['active>failed']);
  assert.equal(engine.queryMigrate(nowNs + MS)['error-desc'], 'broken pipe');
});

test('pagesScanned counts the pages each pump examined', () => {
  const guest = new Guest('bytes', 1024);
  const { engine } = engineFor(guest);
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  const { results } = drive(engine, dest, 0);
  const total = results.reduce((s, r) => s + r.pagesScanned, 0);
  assert.equal(total, 1024);
});

test('skipPages ranges (virtio-mem unplugged) are never sent, even when the guest writes them', () => {
  const guest = new Guest('bytes', 512);
  for (let p = 0; p < 512; p++) guest.write(p, p);
  const hooks = new RecordingHooks();
  hooks.skip = RangeTable.of([{ start: 128, end: 256 }]);
  const { engine } = engineFor(guest, { hooks });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  assert.equal(engine.queryMigrate(0).ram?.remaining, (512 - 128) * PAGE);
  guest.write(200, 5); // a misbehaving guest writes unplugged memory
  drive(engine, dest, 0, { budgetBytes: 16 * PAGE });
  assert.equal(engine.status, 'completed');
  assert.ok(!dest.arrivals.some((a) => a.page >= 128 && a.page < 256));
  assert.equal(new Set(dest.arrivals.map((a) => a.page)).size, 512 - 128);
});

test('several blocks go in QEMU list order (largest first) and their pages land at the right addresses', () => {
  const guest = new Guest('bytes', 96, [
    { name: 'pc.bios', offsetBytes: 0, sizeBytes: 16 * PAGE },
    { name: 'pc.ram', offsetBytes: 32 * PAGE, sizeBytes: 64 * PAGE },
  ]);
  for (let p = 0; p < 96; p++) if (p < 16 || p >= 32) guest.write(p, p);
  guest.log.markDirty(20); // a gap page: dirty in the log, in no block, never sent
  const { engine } = engineFor(guest);
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  drive(engine, dest, 0);
  assert.equal(engine.status, 'completed');
  const blocks = dest.records.find((r) => r.kind === 'ram-blocks');
  assert.deepEqual(blocks?.kind === 'ram-blocks' ? blocks.blocks.map((b) => b.name) : [], ['pc.ram', 'pc.bios']);
  assert.equal(dest.arrivals[0].page, 32);
  assert.ok(!dest.arrivals.some((a) => a.page >= 16 && a.page < 32));
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
});

test('tick closes the 100 ms bandwidth window: mbps, pages-per-second, threshold', () => {
  const guest = new Guest('bytes', 1024);
  for (let p = 0; p < 1024; p++) guest.write(p, p);
  const { engine } = engineFor(guest, { parameters: params({ maxBandwidthBytesPerSec: 100 * 10 * PAGE }) });
  engine.start(0);
  assert.equal(engine.pump(MS, 1 << 30).pagesScanned, 100);
  assert.equal(engine.queryMigrate(50 * MS).ram?.mbps, 0);
  engine.tick(100 * MS);
  const info = engine.queryMigrate(100 * MS);
  assert.equal(info.ram?.['pages-per-second'], 1000);
  assert.ok((info.ram?.mbps ?? 0) > 32);
  assert.equal(info['expected-downtime'], 300); // no dirty rate measured yet: the limit stays
  assert.deepEqual(engine.readiness(100 * MS), { kind: 'pump' });
});

test('a tick while an iteration would run leaves the bandwidth window open; the next pump closes it (QEMU: between iterations)', () => {
  const guest = new Guest('bytes', 1024);
  for (let p = 0; p < 1024; p++) guest.write(p, p);
  const { engine } = engineFor(guest, { parameters: params({ maxBandwidthBytesPerSec: 1000 * 10 * PAGE }) });
  engine.start(0);
  const first = engine.pump(MS, 100 * PAGE).pagesScanned;
  assert.ok(first >= 100 && first < 1024, `${first} pages`);
  assert.deepEqual(engine.readiness(120 * MS), { kind: 'pump' }); // not rate limited: the thread iterates
  engine.tick(120 * MS);
  assert.equal(engine.queryMigrate(120 * MS).ram?.['pages-per-second'], 0);
  assert.ok(engine.pump(130 * MS, 50 * PAGE).pagesScanned > 0);
  // The window closed at the pump's start: 130 ms holding the first pump's pages.
  assert.equal(engine.queryMigrate(130 * MS).ram?.['pages-per-second'], Math.trunc(first / 0.13));
});

test('option iterationNsMin: an iteration spans pumps with one convergence check, until its time, the rate limit or the end of the pass', () => {
  const guest = new Guest('bytes', 1024);
  for (let p = 0; p < 1024; p++) guest.write(p, p);
  const { engine } = engineFor(guest, { iterationNsMin: 51 * MS, maxChunkPages: 64 });
  engine.start(0);
  const checks = (): number => engine.counters().convergenceChecks;
  const step = (atMs: number): number => engine.pump(atMs * MS, 1 << 30).pagesScanned;
  assert.equal(step(1), 64);
  assert.equal(checks(), 1);
  for (const atMs of [10, 30, 51.9]) assert.equal(step(atMs), 64);
  assert.equal(checks(), 1, 'no check inside the iteration');
  assert.equal(step(52), 64);
  assert.equal(checks(), 2, 'an iteration that has lasted 51 ms ends: the next pump checks');
  const c = engine.counters();
  assert.deepEqual([c.bigWaits, c.lastBigWaitMs, c.lastBigWaitPages], [1, 51, 4 * 64], 'QEMU\'s big wait: 51 ms, the pages of its four chunks');
  let atMs = 53;
  while (engine.counters().lastCheckDecision === 'iterate' && engine.queryMigrate(atMs * MS).ram!.remaining > 0) step(atMs++);
  assert.equal(engine.queryMigrate(atMs * MS).ram?.remaining, 0);
  assert.equal(checks(), 2, 'the rest of the pass went in the same iteration');
  step(atMs);
  assert.equal(checks(), 3, 'the pass ended the iteration: the next pump checks at once');

  // Without the option an iteration is one chunk: every pump checks.
  const plain = engineFor(guest, { maxChunkPages: 64 }).engine;
  plain.start(0);
  for (let i = 1; i <= 4; i++) plain.pump(i * MS, 1 << 30);
  assert.equal(plain.counters().convergenceChecks, 4);
});

test('option iterationNsMin: the rate limiter ends an iteration; the pump after its sleep checks', () => {
  const guest = new Guest('bytes', 1024);
  for (let p = 0; p < 1024; p++) guest.write(p, p);
  // 100 pages per 100 ms window.
  const { engine } = engineFor(guest, { iterationNsMin: 51 * MS, maxChunkPages: 64, parameters: params({ maxBandwidthBytesPerSec: 1000 * PAGE }) });
  engine.start(0);
  const checks = (): number => engine.counters().convergenceChecks;
  assert.equal(engine.pump(1 * MS, 1 << 30).pagesScanned, 64);
  assert.ok(engine.pump(2 * MS, 1 << 30).pagesScanned < 64, 'the rate limit cut the chunk');
  assert.equal(checks(), 1);
  assert.equal(engine.pump(3 * MS, 1 << 30).pagesScanned, 0, 'asleep until the window ends');
  engine.tick(101 * MS);
  assert.ok(engine.pump(101 * MS, 1 << 30).pagesScanned > 0);
  assert.equal(checks(), 2, 'a new iteration after the sleep, 100 ms after the first began');
  assert.equal(engine.counters().bigWaits, 0, 'the rate limit, not the clock, ended it');
});

test('option iterationNsMin: one RAM PART per iteration, however many pumps it spans; the RAM arrives equal', () => {
  const guest = patternGuest();
  // 64 pages a pump, a pump every 10 ms: an iteration spans six pumps.
  const { engine } = engineFor(guest, { iterationNsMin: 51 * MS, maxChunkPages: 64 });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  const { pumps } = drive(engine, dest, 0, { budgetBytes: 1 << 30, stepNs: 10 * MS });
  assert.equal(engine.status, 'completed');
  assert.equal(guestDigest(dest), sha256Of(guest.store));
  // PART … EOS footer for each iteration, then END (partsAndEnd checks the shape).
  const middle = partsAndEnd(collapse(dest.trail.filter((t) => t !== 'page' && t !== 'zero')));
  const parts = middle.filter((t) => t === 'begin:part:ram').length;
  const c = engine.counters();
  assert.equal(parts, c.convergenceChecks - 1, 'a PART for each check that iterated (the last check completed)');
  assert.ok(c.bigWaits >= parts - 1, `${c.bigWaits} of ${parts} iterations ended on their time`);
  assert.ok(pumps >= 5 * parts, `${pumps} pumps wrote ${parts} PARTs`);
});

test('option iterationNsMin: at exactly the window\'s budget one more page goes, then the iteration sleeps (QEMU stops only past it)', () => {
  const guest = new Guest('bytes', 1024);
  for (let p = 0; p < 1024; p++) guest.write(p, p);
  const { engine } = engineFor(guest, { iterationNsMin: 51 * MS, maxChunkPages: 64 });
  const mainBytes = (r: ReturnType<typeof engine.pump>): number =>
    r.effects.reduce((n, e) => n + (e.kind === 'send' && e.channel === 'main' ? e.data.length : 0), 0);
  let sent = mainBytes(engine.start(0));
  sent += mainBytes(engine.pump(1 * MS, 1 << 30));
  // The window's budget (max-bandwidth / 10) now equals what the window has counted, to the byte.
  engine.setParameters(1 * MS, params({ maxBandwidthBytesPerSec: sent * 10 }));
  assert.equal(engine.readiness(2 * MS).kind, 'pump', 'not over the budget: QEMU goes on');
  const at = engine.pump(2 * MS, 1 << 30);
  assert.equal(at.pagesScanned, 1, 'one more page, the one that crosses the budget');
  assert.equal(engine.readiness(3 * MS).kind, 'wait', 'over the budget: asleep until the window ends');
  assert.equal(engine.counters().convergenceChecks, 1, 'still the first iteration');
});
