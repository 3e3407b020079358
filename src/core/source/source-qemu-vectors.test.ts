// The source engine against real QEMU 7.2 streams: the engine, given the same guest RAM, device
// payloads and timing, must write the very bytes QEMU 7.2.22 wrote (sha256 of the whole stream,
// taken from the captures `none-16M` and `pattern-16M` made with qemu-system-x86_64 -M none),
// and report the same query-migrate counters. Only the `timer` payload (clock offsets) comes
// from the capture, as the host would supply it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import type { DeviceSectionBlob, StepResult } from '../engine-types.ts';
import { caps, engineFor, globalstateBlob, Guest, MS, params, RecordingHooks, rp } from './source-harness.test-util.ts';

function timer(hex: string): DeviceSectionBlob {
  return { idstr: 'timer', instanceId: 0, versionId: 2, payload: Uint8Array.from(Buffer.from(hex, 'hex')) };
}

function streamSha(results: readonly StepResult[]): string {
  const hash = createHash('sha256');
  for (const r of results) for (const e of r.effects) if (e.kind === 'send' && e.channel === 'main') hash.update(e.data);
  return hash.digest('hex');
}

function pumpUntilIdle(engine: ReturnType<typeof engineFor>['engine'], results: StepResult[], firstNs: number): number {
  let now = firstNs;
  for (let i = 0; i < 100 && engine.readiness(now).kind !== 'idle'; i++) {
    const ready = engine.readiness(now);
    if (ready.kind === 'wait') now = ready.untilNs;
    results.push(engine.pump(now, Infinity));
    now += MS;
  }
  return now;
}

test('none-16M: 16 MiB of zero RAM gives QEMU 7.2\'s 37,645 bytes exactly', () => {
  const guest = new Guest('bytes', 4096);
  const hooks = new RecordingHooks();
  hooks.devices = [timer('00000000038a5052000000000000000000000000016a8515'), globalstateBlob('running')];
  const { engine } = engineFor(guest, { hooks });
  const results: StepResult[] = [engine.start(0)];
  const end = pumpUntilIdle(engine, results, MS);
  assert.equal(engine.status, 'completed');
  const size = results.flatMap((r) => r.effects).reduce((s, e) => s + (e.kind === 'send' ? e.data.length : 0), 0);
  assert.equal(size, 37645);
  assert.equal(streamSha(results), 'e2a78a342095b7212047acdf5ac03aff22c70760f80edfb54070187d1a0680b2');
  const ram = engine.queryMigrate(end).ram!;
  assert.equal(ram.transferred, 36876);
  assert.equal(ram['precopy-bytes'], 36876);
  assert.equal(ram['downtime-bytes'], 0);
  assert.equal(ram.duplicate, 4096);
  assert.equal(ram.normal, 0);
  assert.equal(ram['dirty-sync-count'], 2);
});

test('pattern-16M: the rate-limited first PART, the sync-first rule and the END match QEMU byte for byte', () => {
  const guest = new Guest('bytes', 4096, [{ name: 'mem', offsetBytes: 0, sizeBytes: 16 << 20 }]);
  const store = guest.store as BytesBacking;
  for (let p = 0; p < 4096; p++) store.words.fill(p, p * 1024, (p + 1) * 1024);
  const hooks = new RecordingHooks();
  hooks.devices = [timer('00000000136a2f5400000000000000000000000007c41293'), globalstateBlob('running')];
  const { engine } = engineFor(guest, { hooks });
  const results: StepResult[] = [engine.start(0)];
  // The first PART goes out at once and stops at the 128 MiB/s limit's 13,421,772-byte window.
  results.push(engine.pump(MS, Infinity));
  assert.deepEqual(engine.readiness(2 * MS), { kind: 'wait', untilNs: 100 * MS });
  const end = pumpUntilIdle(engine, results, 100 * MS);
  assert.equal(engine.status, 'completed');
  assert.equal(streamSha(results), 'f45e7dada7de2a4e78025eac8732809a6931bc3a94089e019c6a361d08a89dea');
  const ram = engine.queryMigrate(end).ram!;
  assert.equal(ram.transferred, 16805901);
  assert.equal(ram['precopy-bytes'], 13424205);
  assert.equal(ram['downtime-bytes'], 3381696);
  assert.equal(ram['dirty-sync-count'], 3);
  assert.equal(ram['pages-per-second'], 32720);
  assert.equal(ram.duplicate, 1);
  assert.equal(ram.normal, 4095);
  assert.equal(ram['normal-bytes'], 16773120);
});

test('postcopy-4M: the switch sequence, the requested page and the postcopy PARTs match QEMU byte for byte', () => {
  const guest = new Guest('bytes', 1024, [{ name: 'mem', offsetBytes: 0, sizeBytes: 4 << 20 }]);
  const store = guest.store as BytesBacking;
  for (let p = 0; p < 1024; p++) store.words.fill(p, p * 1024, (p + 1) * 1024);
  const hooks = new RecordingHooks();
  hooks.devices = [timer('000000004f32c8ae0000000000000000000000001fadea5a'), globalstateBlob('running')];
  const { engine } = engineFor(guest, {
    hooks,
    capabilities: caps('events', 'postcopy-ram'),
    parameters: params({ maxBandwidthBytesPerSec: 1048576, maxPostcopyBandwidthBytesPerSec: 1048576 }),
  });
  const results: StepResult[] = [engine.start(0)];
  // Five rate-limited precopy PARTs of 26 pages, one per 100 ms window.
  results.push(engine.pump(MS, Infinity));
  for (let t = 100; t <= 400; t += 100) results.push(engine.pump(t * MS, Infinity));
  results.push(engine.onReturnPath(450 * MS, rp({ kind: 'pong', value: 1 })));
  assert.equal(engine.startPostcopy(450 * MS).error, null);
  results.push(engine.pump(500 * MS, Infinity)); // postcopy-active, stop
  assert.equal(engine.status, 'postcopy-active');
  results.push(engine.pump(500 * MS + 1, Infinity)); // DISCARD, PING 2, PACKAGED, PING 4
  results.push(engine.pump(500 * MS + 2, Infinity)); // first postcopy PART: names the block
  results.push(engine.onReturnPath(600 * MS, rp({ kind: 'pong', value: 2 }, { kind: 'pong', value: 4 }, { kind: 'pong', value: 3 })));
  results.push(engine.onReturnPath(600 * MS, rp({ kind: 'req-pages-id', startBytes: 0x3ff000, lengthBytes: 0x1000, blockName: 'mem' })));
  const end = pumpUntilIdle(engine, results, 600 * MS);
  assert.equal(engine.phase, 'awaiting-shut');
  results.push(engine.onReturnPath(end, rp({ kind: 'shut', status: 0 })));
  assert.equal(engine.status, 'completed');
  assert.equal(streamSha(results), 'a26ffd6d3966bae77f38a4341b8e5ac9b8b707f019fdda33008afd6c6ae17707');
  const ram = engine.queryMigrate(end).ram!;
  assert.equal(ram.transferred, 4198705);
  assert.equal(ram['precopy-bytes'], 533573);
  assert.equal(ram['postcopy-bytes'], 3665132);
  assert.equal(ram['downtime-bytes'], 0);
  assert.equal(ram['postcopy-requests'], 1);
  assert.equal(ram['dirty-sync-count'], 2);
  assert.equal(ram['pages-per-second'], 260);
  assert.equal(engine.counters().pongs, 4);
});
