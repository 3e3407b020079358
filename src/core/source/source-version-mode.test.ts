// The compact `version` payload mode end to end: the same compact guest migrated in `bytes` and
// in `version` mode ends equal on the destination (decoded with the decoder's version option),
// and every count a real stream would show (wire bytes of each send, rate-limit windows,
// query-migrate statistics) is the same in both modes, while the version stream is far smaller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactBacking } from '../../memory/compact-backing.ts';
import type { PagePayloadMode, StepResult } from '../engine-types.ts';
import { Destination, drive, engineFor, Guest, MS, PAGE, params } from './source-harness.test-util.ts';
import { wireBytesOf } from './source-types.ts';

const PAGES = 2048;

/** A compact guest with zero pages, versioned pages and two exact pages; the same every call. */
function compactGuest(): Guest {
  const guest = new Guest('compact', PAGES);
  const store = guest.store as CompactBacking;
  for (let p = 0; p < PAGES; p++) {
    if (p % 5 === 0) continue;
    for (let k = 0; k <= p % 3; k++) guest.write(p, k);
  }
  const odd = new Uint8Array(PAGE);
  for (let i = 0; i < PAGE; i++) odd[i] = (i * 7 + 3) & 0xff;
  store.writePageFrom(11, odd);
  store.writePageFrom(1500, odd);
  guest.log.markDirty(11);
  guest.log.markDirty(1500);
  assert.equal(store.isExactPage(11), true);
  return guest;
}

interface ModeRun {
  readonly dest: Destination;
  readonly guest: Guest;
  readonly results: StepResult[];
  readonly info: ReturnType<ReturnType<typeof engineFor>['engine']['queryMigrate']>;
}

function migrate(mode: PagePayloadMode): ModeRun {
  const guest = compactGuest();
  const { engine } = engineFor(guest, { payloadMode: mode, parameters: params({ maxBandwidthBytesPerSec: 40 * 10 * PAGE }) });
  const dest = new Destination(guest, mode);
  const results: StepResult[] = [engine.start(0)];
  dest.take(results[0]);
  let written = 0;
  const run = drive(engine, dest, 0, {
    budgetBytes: 1 << 30,
    stepNs: 25 * MS,
    beforePump: (_now, i) => {
      // The guest keeps writing a little during the first pumps.
      if (i < 8) for (let k = 0; k < 30; k++) guest.write((i * 211 + k * 67) % PAGES, written++);
    },
  });
  results.push(...run.results);
  assert.equal(engine.status, 'completed');
  return { dest, guest, results, info: engine.queryMigrate(run.nowNs) };
}

/** Bytes sent by each step (chunking into sends differs between the modes; steps do not). */
const sendSizes = (results: readonly StepResult[], size: (e: Extract<StepResult['effects'][number], { kind: 'send' }>) => number): number[] =>
  results.map((r) => r.effects.reduce((sum, e) => sum + (e.kind === 'send' ? size(e) : 0), 0));

test('version mode: the destination ends equal, and wire bytes, windows and statistics equal those of bytes mode', () => {
  const bytes = migrate('bytes');
  const version = migrate('version');
  for (const run of [bytes, version]) {
    for (let p = 0; p < PAGES; p++) assert.ok(run.dest.store.pageEquals(run.guest.store, p), `page ${p}`);
  }
  assert.equal((version.dest.store as CompactBacking).isExactPage(11), true);
  // The same bytes per step, as a real stream would count them.
  assert.deepEqual(sendSizes(version.results, wireBytesOf), sendSizes(bytes.results, (e) => e.data.length));
  assert.deepEqual(sendSizes(bytes.results, wireBytesOf), sendSizes(bytes.results, (e) => e.data.length));
  assert.deepEqual(version.info, bytes.info);
  const real = sendSizes(version.results, (e) => e.data.length).reduce((a, b) => a + b, 0);
  const wire = sendSizes(version.results, wireBytesOf).reduce((a, b) => a + b, 0);
  assert.ok(real * 50 < wire, `version stream ${real} bytes for ${wire} wire bytes`);
  assert.ok(version.dest.arrivals.some((a) => a.kind === 'version'));
  assert.equal(version.info.ram?.['normal-bytes'], (version.info.ram?.normal ?? 0) * PAGE);
});

test('version mode over a bytes store sends every non-zero page as an exact page', () => {
  const guest = new Guest('bytes', 64);
  for (let p = 1; p < 64; p += 2) guest.write(p, p);
  const { engine } = engineFor(guest, { payloadMode: 'version' });
  const dest = new Destination(new Guest('compact', 64), 'version');
  dest.take(engine.start(0));
  const { results } = drive(engine, dest, 0);
  assert.equal(engine.status, 'completed');
  for (let p = 0; p < 64; p++) assert.ok(dest.store.pageEquals(guest.store, p), `page ${p}`);
  assert.deepEqual(new Set(dest.arrivals.map((a) => a.kind)), new Set(['zero', 'page']));
  // An exact record is 8 bytes longer on this stream than on a real one.
  const real = sendSizes(results, (e) => e.data.length).reduce((a, b) => a + b, 0);
  const wire = sendSizes(results, wireBytesOf).reduce((a, b) => a + b, 0);
  assert.equal(real - wire, 32 * 8);
});
