// Multifd between the two engines, no shell: the source's effects on `main` and `multifdN` are
// delivered to a DestEngine in adversarial orders (each channel's bytes in order, channels
// interleaved arbitrarily and late), while a guest rewrites pages between pumps so pages travel
// in several passes. Oracle: the destination's RAM equals the source's at the stop (sha256),
// multifd carried every non-zero page, and the destination completed only after the channels'
// last SYNC. Also: what the source refuses, and a bad packet failing the load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Prng } from '../lib/prng.ts';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { RamBlockList } from '../memory/ram-block.ts';
import { ReceivedMap } from '../memory/received-map.ts';
import { DestEngine } from './dest/dest-engine.ts';
import type { Effect, StepResult, UnwrittenPages } from './engine-types.ts';
import { caps, engineFor, Guest, MS, params } from './source/source-harness.test-util.ts';
import { SourceError } from './source/source-types.ts';

const PAGES = 4096; // 16 MiB
/** The guest writes 8 random pages per pump for this many pumps (a pass takes about 256). */
const WRITE_STEPS = 1500;

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface Run {
  readonly source: Guest;
  readonly dest: BytesBacking;
  readonly destEngine: DestEngine;
  readonly destEffects: Effect[];
  readonly multifdBytes: number;
  readonly normalPages: number;
  /** Multifd send effects whose bytes are a view of the source's RAM (option pageViews). */
  readonly ramViews: number;
}

/** Migrates with `channels` multifd channels; `hold` decides how long each channel's bytes wait. */
function migrate(channels: number, seed: number, hold: (channel: number, prng: Prng) => number, pageViews = false): Run {
  const prng = new Prng(seed);
  const guest = new Guest('bytes', PAGES);
  for (let p = 0; p < PAGES; p++) if (p % 5 !== 0) guest.write(p, p);
  const { engine } = engineFor(guest, { multifd: true, pageViews, capabilities: caps('events', 'multifd'), parameters: params({ multifdChannels: channels, downtimeLimitMs: 1 }) });
  const dest = new BytesBacking(PAGES * 4096);
  const destEngine = new DestEngine({
    vcpuCount: 1,
    ram: { blocks: RamBlockList.single('ram', PAGES * 4096), store: dest, received: new ReceivedMap(PAGES) },
    hooks: { loadDevice: () => null, postcopyNotify: () => null, localZeroPages: () => null },
    capabilities: { multifd: true },
    multifdChannels: channels,
  });
  const destEffects: Effect[] = [];
  // Per channel: queued chunks with the step at which they are delivered.
  const queues = new Map<string, Array<{ at: number; data: Uint8Array }>>();
  let step = 0;
  let ramViews = 0;
  const ramBuffer = (guest.store as BytesBacking).bytes.buffer;
  const take = (r: StepResult): void => {
    for (const e of r.effects) {
      if (e.kind !== 'send') continue;
      if (e.channel !== 'main' && e.data.buffer === ramBuffer) ramViews++;
      const q = queues.get(e.channel) ?? [];
      const last = q.length > 0 ? q[q.length - 1].at : 0;
      const delay = e.channel === 'main' ? 0 : hold(Number(e.channel.slice(7)), prng);
      q.push({ at: Math.max(last, step + delay), data: e.data });
      queues.set(e.channel, q);
    }
  };
  const deliver = (all: boolean): void => {
    const names = [...queues.keys()].sort(() => prng.float() - 0.5);
    for (const name of names) {
      const q = queues.get(name)!;
      while (q.length > 0 && (all || q[0].at <= step)) {
        const { data } = q.shift()!;
        const r = name === 'main' ? destEngine.onBytes('main', data, step * MS) : destEngine.onMultifdBytes(Number(name.slice(7)), data, step * MS);
        destEffects.push(...r.effects);
      }
    }
  };
  take(engine.start(0));
  for (; step < 10_000 && engine.status !== 'completed'; step++) {
    if (step < WRITE_STEPS) for (let i = 0; i < 8; i++) guest.write(prng.int(0, PAGES - 1), step * 1000 + i);
    if (engine.phase === 'awaiting-shut' || engine.phase === 'finished') break;
    take(engine.pump((step + 1) * MS, 64 * 1024));
    deliver(false);
  }
  deliver(true);
  const info = engine.queryMigrate(step * MS);
  return { source: guest, dest, destEngine, destEffects, multifdBytes: info.ram?.['multifd-bytes'] ?? 0, normalPages: info.ram?.normal ?? 0, ramViews };
}

for (const [channels, label, hold] of [
  [2, 'in order', () => 0],
  [4, 'channel 0 late by up to 30 pumps', (c: number, prng: Prng) => (c === 0 ? prng.int(0, 30) : 0)],
  [3, 'every channel late at random', (_c: number, prng: Prng) => prng.int(0, 12)],
] as const) {
  test(`multifd ${channels} channels, ${label}: destination RAM equals the source's`, () => {
    for (const seed of [1, 2, 3]) {
      const run = migrate(channels, seed, hold);
      assert.equal(run.ramViews, 0);
      const statuses = run.destEffects.flatMap((e) => (e.kind === 'status' ? [e.to] : []));
      assert.deepEqual(statuses.at(-1), 'completed', `seed ${seed}: destination statuses ${statuses.join(' > ')}`);
      assert.equal(sha(run.dest.bytes), sha((run.source.store as BytesBacking).bytes), `seed ${seed}: RAM differs`);
      assert.ok(run.multifdBytes >= run.normalPages * 4096, `multifd-bytes ${run.multifdBytes} for ${run.normalPages} normal pages`);
    }
  });
}

test('the source refuses multifd without a shell for it, and with postcopy-ram', () => {
  const guest = new Guest('bytes', 16);
  assert.throws(() => engineFor(guest, { capabilities: caps('multifd') }), (e: unknown) => e instanceof SourceError && e.message === 'The source engine does not implement capability multifd');
  assert.throws(
    () => engineFor(guest, { multifd: true, capabilities: caps('multifd', 'postcopy-ram') }),
    (e: unknown) => e instanceof SourceError && e.message === 'The source engine does not implement multifd together with postcopy-ram',
  );
});

test('a channel that does not start with the init packet fails the load with the decoder\'s error', () => {
  const dest = new BytesBacking(16 * 4096);
  const engine = new DestEngine({
    vcpuCount: 1,
    ram: { blocks: RamBlockList.single('ram', 16 * 4096), store: dest, received: new ReceivedMap(16) },
    hooks: { loadDevice: () => null, postcopyNotify: () => null, localZeroPages: () => null },
    capabilities: { multifd: true },
  });
  const r = engine.onMultifdBytes(0, new Uint8Array(64).fill(7), 0);
  const statuses = r.effects.flatMap((e) => (e.kind === 'status' ? [e.to] : []));
  assert.equal(statuses.at(-1), 'failed');
  assert.equal(engine.lastError?.message, 'multifd: received channel magic 07070707 and expected magic 11223344 (at byte 0)');
});

test('multifd: pages the host reports never written go out as ZERO runs without being read', () => {
  const guest = new Guest('bytes', 256);
  // Every page holds data; the host claims 64..191 were never written. Were they read, they
  // would leave as normal pages on the multifd channels.
  for (let p = 0; p < 256; p++) guest.write(p, p);
  const claimed = (p: number): boolean => p >= 64 && p < 192;
  const runOf = (page: number, count: number, want: boolean): number => {
    let n = 0;
    while (n < count && claimed(page + n) === want) n++;
    return n;
  };
  const unwritten: UnwrittenPages = { unwrittenRun: (page, count) => runOf(page, count, true), writtenRun: (page, count) => runOf(page, count, false) };
  const withMap = Object.assign(Object.create(Guest.prototype) as Guest, guest, { ram: { ...guest.ram, unwritten } });
  const { engine } = engineFor(withMap, { multifd: true, capabilities: caps('events', 'multifd'), parameters: params({ multifdChannels: 2 }) });
  const results = [engine.start(0)];
  let now = 0;
  for (let i = 0; i < 1000 && engine.readiness(now).kind !== 'idle'; i++) results.push(engine.pump((now += 10 * MS), 1 << 20));
  assert.equal(engine.status, 'completed');
  const ram = engine.queryMigrate(now).ram;
  assert.equal(ram?.duplicate, 128);
  assert.equal(ram?.normal, 128);
  const multifdPayloadBytes = results.flatMap((r) => r.effects).reduce((n, e) => n + (e.kind === 'send' && e.channel.startsWith('multifd') ? e.data.length : 0), 0);
  assert.ok(multifdPayloadBytes >= 128 * 4096 && multifdPayloadBytes < 192 * 4096, `${multifdPayloadBytes} multifd bytes`);
});

test('multifd with pageViews: packets carry views of guest RAM, and the destination RAM still equals the source\'s', () => {
  for (const seed of [4, 5]) {
    const run = migrate(3, seed, (_c, prng) => prng.int(0, 12), true);
    const statuses = run.destEffects.flatMap((e) => (e.kind === 'status' ? [e.to] : []));
    assert.equal(statuses.at(-1), 'completed', `seed ${seed}: destination statuses ${statuses.join(' > ')}`);
    assert.equal(sha(run.dest.bytes), sha((run.source.store as BytesBacking).bytes), `seed ${seed}: RAM differs`);
    assert.ok(run.ramViews > 0, 'no multifd bytes were views of guest RAM');
  }
});
