// Postcopy acceptance tests of the source engine: the §3.4 switch sequence (ADVISE at start,
// DISCARD ranges equal to the dirty runs, ≤ 12 per command, PING 2, PACKAGED{LISTEN, devices,
// PING 3, RUN}, PING 4), requests served before background pages, a request for a clean page
// dropped, no page sent twice after the switch, completion only after SHUT, QEMU's texts for
// refused commands and bad requests, and postcopy-preempt's channel.
import { test } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { checkStatusSequence } from '../status.ts';
import type { StepResult } from '../engine-types.ts';
import type { Command } from '../../format/stream-types.ts';
import {
  caps,
  Destination,
  digestStore,
  drive,
  effectsOf,
  engineFor,
  Guest,
  marks,
  MS,
  PAGE,
  params,
  rp,
  SHUT_OK,
  statusMoves,
} from './source-harness.test-util.ts';
import { wireBytesOf } from './source-types.ts';

const sha256Of = (store: Parameters<typeof digestStore>[0]): string => digestStore(store, createHash('sha256'));

const PAGES = 2048;

/** A guest whose pages are all non-zero, so every page is a PAGE record. */
function fullGuest(pages = PAGES): Guest {
  const guest = new Guest('bytes', pages);
  for (let p = 0; p < pages; p++) guest.write(p, p);
  return guest;
}

/**
 * Runs a postcopy migration up to the end of the switch: `precopyPumps` pumps of `budget`
 * bytes, then migrate-start-postcopy and pumps until the engine is in the `postcopy` phase.
 */
function switchAfter(guest: Guest, precopyPumps: number, budget: number, options: Parameters<typeof engineFor>[1] = {}) {
  const { engine, hooks } = engineFor(guest, { capabilities: caps('events', 'postcopy-ram'), debugChecks: true, ...options });
  const dest = new Destination(guest);
  const started = engine.start(0);
  dest.take(started);
  const results: StepResult[] = [started];
  let now = 0;
  for (let i = 0; i < precopyPumps; i++) {
    now += 10 * MS;
    const r = engine.pump(now, budget);
    dest.take(r);
    results.push(r);
  }
  assert.equal(engine.startPostcopy(now).error, null);
  for (let i = 0; i < 10 && engine.phase !== 'postcopy'; i++) {
    now += MS;
    const r = engine.pump(now, budget);
    dest.take(r);
    results.push(r);
  }
  assert.equal(engine.phase, 'postcopy');
  return { engine, hooks, dest, results, now };
}

/** Dirty runs of the migration bitmap in block byte ranges. */
function dirtyRuns(bits: (p: number) => boolean, pages: number): Array<{ startBytes: number; lengthBytes: number }> {
  const runs: Array<{ startBytes: number; lengthBytes: number }> = [];
  for (let p = 0; p < pages; ) {
    if (!bits(p)) {
      p++;
      continue;
    }
    let q = p;
    while (q < pages && bits(q)) q++;
    runs.push({ startBytes: p * PAGE, lengthBytes: (q - p) * PAGE });
    p = q;
  }
  return runs;
}

test('the switch follows §3.4: DISCARD = dirty runs (≤ 12 per command), PING 2, PACKAGED{LISTEN, devices, PING 3, RUN}, PING 4', () => {
  const guest = fullGuest();
  const { engine, hooks } = engineFor(guest, { capabilities: caps('events', 'postcopy-ram') });
  const dest = new Destination(guest);
  dest.take(engine.start(0));
  // Send part of RAM, then dirty 30 scattered pages in the part already sent: 30 + 1 runs.
  dest.take(engine.pump(10 * MS, 1000 * PAGE));
  for (let k = 0; k < 30; k++) guest.write(k * 31, 1000 + k);
  assert.equal(engine.startPostcopy(20 * MS).error, null);
  const stop = engine.pump(20 * MS, 1 << 20);
  dest.take(stop);
  assert.deepEqual(statusMoves([stop]), ['active>postcopy-active']);
  assert.equal(effectsOf([stop], 'stop-guest').length, 1);
  // The switch pump syncs (without notifiers) first; compute the expected runs the same way.
  const before = hooks.notifications.length;
  const sw = engine.pump(21 * MS, 1 << 20);
  const bitmap = engine.migrationBitmap;
  const expected = dirtyRuns((p) => bitmap.isDirty(p), PAGES);
  dest.take(sw);
  assert.deepEqual(hooks.notifications.slice(before), ['complete(stopped)', 'complete(stopped)']);
  const discards = dest.commands.filter((c): c is Extract<Command, { kind: 'postcopy-ram-discard' }> => c.kind === 'postcopy-ram-discard');
  assert.equal(expected.length, 31);
  assert.deepEqual(discards.map((d) => d.ranges.length), [12, 12, 7]);
  assert.deepEqual(discards.flatMap((d) => d.ranges), expected);
  assert.ok(discards.every((d) => d.blockName === 'ram'));
  assert.deepEqual(
    dest.trail.filter((t) => t.startsWith('command:') || t.startsWith('begin:full') || t === 'packaged-end').map((t) => t.replace('command:', '')),
    [
      'open-return-path', 'ping', 'postcopy-advise',
      'postcopy-ram-discard', 'postcopy-ram-discard', 'postcopy-ram-discard',
      'ping', 'packaged', 'postcopy-listen', 'begin:full:timer', 'begin:full:globalstate', 'ping', 'postcopy-run', 'packaged-end',
      'ping',
    ],
  );
  assert.deepEqual(dest.commands.filter((c) => c.kind === 'ping').map((c) => (c.kind === 'ping' ? c.value : 0)), [1, 2, 3, 4]);
  // MIGRATION_PASS is still emitted for the switch sync.
  assert.deepEqual(effectsOf([sw], 'event').map((e) => (e.kind === 'event' ? e.name : '')), ['MIGRATION_PASS']);
  // The rest: postcopy PARTs, END, EOF, no VMDESCRIPTION; completed only after SHUT.
  const { results } = drive(engine, dest, 30 * MS, { shut: false });
  assert.equal(dest.sawEof, true);
  assert.equal(engine.status, 'postcopy-active');
  assert.ok(!dest.trail.includes('vmdescription'));
  const first = dest.records.find((r) => r.kind === 'section-begin' && r.header.depth === 0 && r.header.type === 'part' && dest.records.indexOf(r) > dest.records.findIndex((x) => x.kind === 'packaged-end'));
  assert.ok(first !== undefined);
  const shut = engine.onReturnPath(10 ** 10, rp(SHUT_OK));
  assert.equal(engine.status, 'completed');
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
  const all = [stop, sw, ...results, shut];
  assert.deepEqual(statusMoves(all), ['active>postcopy-active', 'postcopy-active>completed']);
  assert.ok(checkStatusSequence(['none', 'setup', 'active', 'postcopy-active', 'completed'], 'source').ok);
  assert.deepEqual(hooks.notifications.slice(-3), ['complete(stopped)', 'complete(stopped)', 'cleanup(stopped)']);
  assert.ok(!hooks.notifications.slice(3, -3).includes('setup'));
  const info = engine.queryMigrate(10 ** 10);
  assert.equal(info.ram?.['postcopy-bytes'] !== undefined && info.ram['postcopy-bytes'] > 0, true);
  assert.equal(info.ram?.['downtime-bytes'], 0);
});

test('the first page record after the switch names its block', () => {
  const guest = fullGuest();
  const { dest, engine } = switchAfter(guest, 1, 100 * PAGE);
  const sendsBefore = dest.records.length;
  const r = engine.pump(100 * MS, 10 * PAGE);
  dest.take(r);
  const data = r.effects.find((e) => e.kind === 'send');
  assert.ok(data !== undefined && data.kind === 'send');
  // PART header (5 bytes), then the record word whose flags lack CONTINUE (0x20): PAGE 0x08.
  assert.equal(data.data[0], 0x02);
  assert.equal(data.data[5 + 7] & 0x2f, 0x08);
  assert.ok(dest.records.length > sendsBefore);
});

test('page requests are served before background pages; REQ_PAGES reuses the last REQ_PAGES_ID block', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE);
  const arrivedBefore = dest.arrivals.length;
  engine.onReturnPath(50 * MS, rp(
    { kind: 'req-pages-id', startBytes: 1900 * PAGE, lengthBytes: 2 * PAGE, blockName: 'ram' },
    { kind: 'req-pages', startBytes: 1500 * PAGE, lengthBytes: PAGE, blockName: 'ram' },
  ));
  assert.deepEqual(engine.readiness(50 * MS), { kind: 'pump' });
  dest.take(engine.pump(50 * MS, 20 * PAGE));
  const arrived = dest.arrivals.slice(arrivedBefore).map((a) => a.page);
  assert.deepEqual(arrived.slice(0, 3), [1900, 1901, 1500]);
  // Without preempt the background continues after the last requested page.
  assert.equal(arrived[3], 1501);
  assert.equal(engine.queryMigrate(50 * MS).ram?.['postcopy-requests'], 2);
});

test('a request for a clean page is dropped, and no page is ever sent twice after the switch', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 3, 200 * PAGE);
  // Page 5 went in precopy and is clean: dropped.
  const r = engine.onReturnPath(50 * MS, rp({ kind: 'req-pages-id', startBytes: 5 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  const p = engine.pump(50 * MS, 10 * PAGE);
  dest.take(p);
  assert.deepEqual(marks([r, p]), ['request-not-dirty']);
  assert.ok(!dest.arrivals.some((a) => a.postcopy && a.page === 5));
  // Request the same dirty page over and over while the background runs.
  let now = 60 * MS;
  let requests = 0;
  for (let i = 0; i < 40 && engine.phase === 'postcopy'; i++) {
    requests++;
    engine.onReturnPath(now, rp({ kind: 'req-pages', startBytes: 2000 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
    now += 10 * MS;
    dest.take(engine.pump(now, 50 * PAGE));
  }
  drive(engine, dest, now);
  assert.equal(engine.status, 'completed');
  assert.deepEqual(dest.duplicatesAfterSwitch(), []);
  assert.equal(dest.arrivals.filter((a) => a.page === 2000).length, 1);
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
  const c = engine.counters();
  assert.ok(requests >= 3, `only ${requests} requests`);
  assert.equal(c.requestedPagesDropped, requests - 1 + 1); // the clean page 5, and every repeat of 2000
  assert.equal(c.requestedPagesSent, 1);
});

test('migrate-start-postcopy refusals use QEMU\'s texts', () => {
  const guest = new Guest('bytes', 16);
  const off = engineFor(guest).engine;
  assert.equal(off.startPostcopy(0).error?.message, 'Enable postcopy with migrate_set_capability before the start of migration');
  const on = engineFor(guest, { capabilities: caps('postcopy-ram') }).engine;
  assert.equal(on.startPostcopy(0).error?.message, 'Postcopy must be started after migration has been started');
  on.start(1);
  assert.equal(on.startPostcopy(2).error, null);
});

test('bad page requests fail the migration with QEMU\'s texts', () => {
  const cases: Array<[Uint8Array, string, string]> = [
    [rp({ kind: 'req-pages-id', startBytes: 0x1001, lengthBytes: PAGE, blockName: 'ram' }), 'MIG_ERR_RP_MISALIGNED_REQUEST', 'migrate_handle_rp_req_pages: Misaligned page request, start: 1001 len: 4096'],
    [rp({ kind: 'req-pages-id', startBytes: 0, lengthBytes: PAGE, blockName: 'rom' }), 'MIG_ERR_RP_UNKNOWN_BLOCK', "ram_save_queue_pages no block 'rom'"],
    [rp({ kind: 'req-pages-id', startBytes: 2047 * PAGE, lengthBytes: 2 * PAGE, blockName: 'ram' }), 'MIG_ERR_RP_REQUEST_OVERRUN', 'ram_save_queue_pages request overrun start=7ff000 len=2000 blocklen=800000'],
    [rp({ kind: 'req-pages', startBytes: 0, lengthBytes: PAGE, blockName: '' }), 'MIG_ERR_RP_NO_PREVIOUS_BLOCK', 'ram_save_queue_pages no previous block'],
    [rp({ kind: 'shut', status: 1 }), 'MIG_ERR_RP_SIBLING_ERROR', 'RP: Sibling indicated error 1'],
  ];
  for (const [bytes, code, text] of cases) {
    const guest = fullGuest();
    const { engine, hooks } = switchAfter(guest, 1, 100 * PAGE);
    const r = engine.onReturnPath(50 * MS, bytes);
    assert.equal(engine.status, 'failed', text);
    assert.equal(engine.error?.code, code);
    assert.equal(engine.error?.message, text);
    assert.equal(engine.queryMigrate(50 * MS)['error-desc'], text);
    assert.deepEqual(statusMoves([r]), ['postcopy-active>failed']);
    // The destination runs the guest: the source keeps its copy stopped.
    assert.equal(hooks.notifications.at(-1), 'cleanup(stopped)');
    assert.equal(r.effects.filter((e) => e.kind === 'run-guest').length, 0);
  }
});

test('the request queue is bounded: one more request than the limit fails the migration', () => {
  const guest = fullGuest();
  const { engine } = switchAfter(guest, 1, 100 * PAGE, { requestQueueLimit: 4 });
  const five = Array.from({ length: 5 }, (_, i) => ({ kind: 'req-pages-id' as const, startBytes: (1000 + i) * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  engine.onReturnPath(50 * MS, rp(...five.slice(0, 4)));
  assert.equal(engine.status, 'postcopy-active');
  assert.equal(engine.counters().requestQueueHighWater, 4);
  engine.onReturnPath(51 * MS, rp(five[4]));
  assert.equal(engine.status, 'failed');
  assert.equal(engine.error?.code, 'MIG_ERR_REQUEST_QUEUE_FULL');
});

test('postcopy-preempt: requested pages go to the preempt channel as bare records, EOS there at the end', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE, { capabilities: caps('events', 'postcopy-ram', 'postcopy-preempt') });
  engine.onReturnPath(50 * MS, rp({ kind: 'req-pages-id', startBytes: 1999 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  const r = engine.pump(50 * MS, 10 * PAGE);
  const preempt = r.effects.filter((e) => e.kind === 'send' && e.channel === 'preempt');
  assert.equal(preempt.length, 1);
  const bytes = preempt[0].kind === 'send' ? preempt[0].data : new Uint8Array();
  // A named PAGE record (0x08, no CONTINUE) for 1999 * 4096, then the page: no section header.
  assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(4), (1999 * PAGE) | 0x08);
  assert.equal(bytes.length, 8 + 4 + PAGE);
  dest.take(r);
  assert.deepEqual(dest.arrivals.filter((a) => a.channel === 'preempt').map((a) => a.page), [1999]);
  const { results } = drive(engine, dest, 60 * MS);
  assert.equal(engine.status, 'completed');
  const lastPreempt = results.flatMap((x) => x.effects).filter((e) => e.kind === 'send' && e.channel === 'preempt');
  assert.equal(lastPreempt.length, 1);
  assert.deepEqual(lastPreempt[0].kind === 'send' ? [...lastPreempt[0].data] : [], [0, 0, 0, 0, 0, 0, 0, 0x10]);
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
  assert.deepEqual(dest.duplicatesAfterSwitch(), []);
});

test('max-postcopy-bandwidth limits the background push; requests bypass it', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE, { parameters: params({ maxPostcopyBandwidthBytesPerSec: 10 * 10 * PAGE }) });
  // 10 pages per 100 ms window: one pump fills the window, the next waits.
  dest.take(engine.pump(40 * MS, 1 << 20));
  const wait = engine.readiness(41 * MS);
  assert.equal(wait.kind, 'wait');
  engine.onReturnPath(42 * MS, rp({ kind: 'req-pages-id', startBytes: 2040 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  assert.deepEqual(engine.readiness(42 * MS), { kind: 'pump' });
  const before = dest.arrivals.length;
  const r = engine.pump(42 * MS, 1 << 20);
  dest.take(r);
  assert.deepEqual(dest.arrivals.slice(before).map((a) => a.page), [2040]);
  assert.ok(r.effects.every((e) => e.kind !== 'send' || wireBytesOf(e) === e.data.length));
});

/** Pumps 20-page chunks every 10 ms from 40 ms on until the END section is open; returns the time. */
function pumpIntoEndSection(engine: ReturnType<typeof switchAfter>['engine'], dest: Destination): number {
  let now = 40 * MS;
  for (let i = 0; i < 400 && engine.phase === 'postcopy'; i++) {
    now += 10 * MS;
    dest.take(engine.pump(now, 20 * PAGE));
  }
  assert.equal(engine.phase, 'completing');
  return now;
}

function lastDirtyPage(bitmap: { isDirty(page: number): boolean }): number {
  let last = PAGES - 1;
  while (!bitmap.isDirty(last)) last--;
  return last;
}

test('the END section spans budgeted pumps; a request arriving during it is served before the remaining background pages', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE);
  const now = pumpIntoEndSection(engine, dest);
  assert.ok(dest.trail.includes('begin:end:ram'));
  const bitmap = engine.migrationBitmap;
  assert.ok(bitmap.dirtyCount > 100, `${bitmap.dirtyCount} pages left for the END section`);
  const last = lastDirtyPage(bitmap);
  // One completion pump: no EOF yet, pages keep going within the budget.
  dest.take(engine.pump(now + MS, 10 * PAGE));
  assert.equal(dest.sawEof, false);
  assert.ok(bitmap.isDirty(last));
  // The request for the last remaining page jumps the queue of the flush.
  engine.onReturnPath(now + 2 * MS, rp({ kind: 'req-pages-id', startBytes: last * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  assert.deepEqual(engine.readiness(now + 2 * MS), { kind: 'pump' });
  const before = dest.arrivals.length;
  dest.take(engine.pump(now + 2 * MS, 10 * PAGE));
  const arrived = dest.arrivals.slice(before).map((a) => a.page);
  assert.equal(arrived[0], last);
  assert.ok(arrived.length > 1 && arrived.length <= 11, `${arrived.length} pages in a 10-page pump`);
  assert.equal(dest.sawEof, false);
  const { results } = drive(engine, dest, now + 3 * MS, { budgetBytes: 50 * PAGE });
  assert.ok(results.length > 3, `${results.length} pumps`);
  assert.equal(engine.status, 'completed');
  assert.deepEqual(dest.duplicatesAfterSwitch(), []);
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
  // One END section, closed by EOS, its footer and EOF only after the last page.
  assert.equal(dest.trail.filter((t) => t === 'begin:end:ram').length, 1);
  assert.deepEqual(dest.trail.slice(-3), ['ram-eos', 'section-end', 'eof']);
});

/** Drives a migration to its end and checks the destination's RAM and that no page went twice. */
function completesIntact(engine: ReturnType<typeof switchAfter>['engine'], dest: Destination, guest: Guest, nowNs: number): void {
  drive(engine, dest, nowNs, { budgetBytes: 50 * PAGE });
  assert.equal(engine.status, 'completed');
  assert.deepEqual(dest.duplicatesAfterSwitch(), []);
  assert.equal(sha256Of(dest.store), sha256Of(guest.store));
}

test('serveRequests answers queued requests alone, rate limited or not: a RAM PART chunk with only them', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE, { parameters: params({ maxPostcopyBandwidthBytesPerSec: 10 * 10 * PAGE }) });
  dest.take(engine.pump(40 * MS, 1 << 20));
  assert.equal(engine.readiness(41 * MS).kind, 'wait', 'the rate limiter holds the background push');
  const before = dest.arrivals.length;
  engine.onReturnPath(42 * MS, rp({ kind: 'req-pages-id', startBytes: 1900 * PAGE, lengthBytes: 2 * PAGE, blockName: 'ram' }));
  const r = engine.serveRequests(42 * MS);
  dest.take(r);
  assert.deepEqual(dest.arrivals.slice(before).map((a) => a.page), [1900, 1901]);
  assert.ok(r.effects.every((e) => e.kind !== 'send' || e.channel === 'main'));
  assert.equal(engine.counters().requestedPagesSent, 2);
  assert.deepEqual(engine.serveRequests(43 * MS).effects, [], 'nothing queued: no effect');
  completesIntact(engine, dest, guest, 44 * MS);
});

test('serveRequests with postcopy-preempt: the requested page on the preempt channel, nothing on the main one', () => {
  const guest = fullGuest();
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE, { capabilities: caps('events', 'postcopy-ram', 'postcopy-preempt') });
  const before = dest.arrivals.length;
  engine.onReturnPath(50 * MS, rp({ kind: 'req-pages-id', startBytes: 1999 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  const r = engine.serveRequests(50 * MS);
  assert.deepEqual(r.effects.map((e) => (e.kind === 'send' ? e.channel : e.kind)), ['preempt']);
  dest.take(r);
  assert.deepEqual(dest.arrivals.slice(before).map((a) => [a.page, a.channel]), [[1999, 'preempt']]);
  completesIntact(engine, dest, guest, 60 * MS);
});

test('serveRequests in the END section: only the requested page, before the remaining ones; outside postcopy it waits', () => {
  const guest = fullGuest();
  const early = engineFor(guest, { capabilities: caps('events', 'postcopy-ram') }).engine;
  early.start(0);
  early.onReturnPath(MS, rp({ kind: 'req-pages-id', startBytes: 7 * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  const marked = early.serveRequests(MS);
  assert.deepEqual(marked.effects.filter((e) => e.kind === 'send'), []);
  assert.deepEqual(marks([marked]).filter((m) => m.startsWith('serve-requests')), ['serve-requests-outside-postcopy']);
  const { engine, dest } = switchAfter(guest, 1, 100 * PAGE);
  const now = pumpIntoEndSection(engine, dest);
  const bitmap = engine.migrationBitmap;
  const last = lastDirtyPage(bitmap);
  const left = bitmap.dirtyCount;
  const before = dest.arrivals.length;
  engine.onReturnPath(now + MS, rp({ kind: 'req-pages-id', startBytes: last * PAGE, lengthBytes: PAGE, blockName: 'ram' }));
  dest.take(engine.serveRequests(now + MS));
  assert.deepEqual(dest.arrivals.slice(before).map((a) => a.page), [last]);
  assert.equal(bitmap.dirtyCount, left - 1);
  assert.equal(dest.sawEof, false);
  completesIntact(engine, dest, guest, now + 2 * MS);
});
