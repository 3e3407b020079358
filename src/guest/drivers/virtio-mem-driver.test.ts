// The virtio-mem driver in a Guest against VirtioMemVirtio over a real split queue: plugging
// to requested_size, unplugging when it shrinks (only wholly free blocks), device and driver
// agreeing on the unplugged ranges, UNPLUG_ALL at probe, BUSY during migration with the
// retry timer, NACK after a racing resize, STATE requests, and a churning guest that never
// writes unplugged memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB, NS_PER_MS, NS_PER_S } from '../../lib/units.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { auditBuddy } from '../allocator/audit.ts';
import { TestHost, type TestHostOptions } from './test-host.ts';

const REGION = { addrBytes: 64 * MiB, regionSizeBytes: 64 * MiB, blockSizeBytes: 2 * MiB };
const PAGES_PER_MIB = 256;

function host(options: Partial<TestHostOptions> = {}) {
  const h = new TestHost({
    memoryBytes: 128 * MiB,
    balloon: null,
    virtioMem: REGION,
    ...options,
    guest: { bootRamBytes: 64 * MiB, ...options.guest },
  });
  assert.deepEqual(h.guest.probeErrors, []);
  return { h, mem: h.virtioMem!, device: h.virtioMem!.device, driver: h.guest.virtioMem!, allocator: h.guest.allocator };
}

/** Device and driver agree on what is plugged and unplugged. */
function assertAgree(h: ReturnType<typeof host>): void {
  assert.deepEqual(h.driver.pluggedRanges().toArray(), h.device.pluggedRanges().toArray());
  assert.deepEqual(h.driver.unpluggedRanges().toArray(), h.device.unpluggedRanges().toArray());
  assert.equal(h.driver.pluggedSizeBytes, h.device.pluggedSizeBytes);
}

test('plug to the requested size: the blocks become free guest memory', () => {
  const t = host();
  const free = t.allocator.freePages;
  assert.equal(t.driver.pluggedSizeBytes, 0);
  t.mem.setRequestedSize(32 * MiB);
  t.h.settle();
  assert.equal(t.device.pluggedSizeBytes, 32 * MiB);
  assert.equal(t.allocator.freePages, free + 32 * PAGES_PER_MIB);
  assertAgree(t);
  assert.deepEqual(t.device.pluggedRanges().toArray(), [{ start: 64 * MiB, end: 96 * MiB }]);
  assert.ok(t.mem.takeEvents().some((e) => e.kind === 'size-change' && e.pluggedSizeBytes === 32 * MiB));
  assert.deepEqual(auditBuddy(t.allocator), []);
});

test('unplug when requested shrinks: the highest free blocks go, pages leave the allocator', () => {
  const t = host();
  t.mem.setRequestedSize(32 * MiB);
  t.h.settle();
  const free = t.allocator.freePages;
  t.mem.setRequestedSize(12 * MiB);
  t.h.settle();
  assert.equal(t.device.pluggedSizeBytes, 12 * MiB);
  assert.equal(t.allocator.freePages, free - 20 * PAGES_PER_MIB);
  assertAgree(t);
  assert.deepEqual(t.device.pluggedRanges().toArray(), [{ start: 64 * MiB, end: 76 * MiB }]);
  assert.ok(t.h.discards.covers(76 * MiB, 96 * MiB), 'the device discarded what was unplugged');
  for (let pfn = (76 * MiB) / 4096; pfn < (96 * MiB) / 4096; pfn += 97) assert.ok(t.allocator.isReserved(pfn));
  assert.deepEqual(auditBuddy(t.allocator), []);
});

test('only wholly free blocks are unplugged; a busy block waits for the retry timer', () => {
  const t = host();
  t.mem.setRequestedSize(8 * MiB);
  t.h.settle();
  const busyPage = (70 * MiB) / 4096; // In the highest plugged block [70, 72) MiB.
  assert.ok(t.allocator.reserveRange(busyPage, busyPage + 1), 'the page is in use now');
  t.mem.setRequestedSize(0);
  for (let i = 0; i < 100; i++) t.h.tick();
  assert.equal(t.device.pluggedSizeBytes, 2 * MiB);
  assert.ok(t.device.isPlugged(70 * MiB));
  assertAgree(t);
  t.allocator.unreserveRange(busyPage, busyPage + 1);
  t.h.tick(10 * NS_PER_S);
  assert.equal(t.device.pluggedSizeBytes, 2 * MiB, 'no retry before the timer (50 s)');
  t.h.tick(41 * NS_PER_S);
  t.h.settle();
  assert.equal(t.device.pluggedSizeBytes, 0);
  assertAgree(t);
});

test('probe finds plugged memory of an earlier driver and sends UNPLUG_ALL first', () => {
  const t = host({
    prepare: (h) => {
      const device = h.virtioMem!.device;
      const words = new Uint32Array(1);
      words[0] = 0xff; // Blocks 0..7 plugged: 16 MiB.
      device.restoreState({ usableRegionSizeBytes: 64 * MiB, pluggedSizeBytes: 16 * MiB, requestedSizeBytes: 4 * MiB, pluggedWords: words });
    },
  });
  const free = t.allocator.freePages;
  t.h.settle();
  assert.equal(t.mem.device.pluggedSizeBytes, 4 * MiB, 'unplugged all, then plugged the request');
  assert.ok(t.h.discards.covers(64 * MiB, 128 * MiB), 'UNPLUG_ALL discarded the region');
  assert.equal(t.allocator.freePages, free + 4 * PAGES_PER_MIB);
  assertAgree(t);
});

test('BUSY while a migration runs: the driver retries once the timer fires', () => {
  const t = host({ guest: { virtioMem: { retryMinNs: 100 * NS_PER_MS, retryMaxNs: 400 * NS_PER_MS } } });
  t.device.migrationBusy = true;
  t.mem.setRequestedSize(8 * MiB);
  for (let i = 0; i < 350; i++) t.h.tick(); // Retries at 100, +200 ms: still BUSY.
  assert.equal(t.device.pluggedSizeBytes, 0);
  assert.equal(t.driver.responseCounts.busy, 3);
  assertAgree(t);
  t.device.migrationBusy = false;
  for (let i = 0; i < 450; i++) t.h.tick();
  assert.equal(t.device.pluggedSizeBytes, 8 * MiB);
  assertAgree(t);
});

test('a resize racing a PLUG gets NACK; the driver re-reads the config and stops', () => {
  const t = host({ kickMode: 'deferred' });
  t.mem.setRequestedSize(8 * MiB);
  t.h.guest.step(1); // PLUG of block 0 sent, not yet processed.
  t.mem.setRequestedSize(0);
  t.h.settle();
  assert.equal(t.device.pluggedSizeBytes, 0);
  assert.equal(t.driver.requestedSizeBytes, 0);
  assert.deepEqual(t.driver.responseCounts, { ack: 0, nack: 1, busy: 0, error: 0 });
  assert.equal(t.driver.broken, null);
  assertAgree(t);
});

test('STATE requests report plugged, unplugged and mixed ranges', () => {
  const t = host();
  t.mem.setRequestedSize(4 * MiB);
  t.h.settle();
  t.driver.requestState(64 * MiB, 2);
  t.driver.requestState(64 * MiB, 4);
  t.driver.requestState(72 * MiB, 1);
  t.driver.requestState(63 * MiB, 1); // Not a block of the region: ERROR.
  t.h.settle();
  assert.deepEqual(t.driver.stateResults.map((r) => [r.response, r.state]), [['ack', 'plugged'], ['ack', 'mixed'], ['ack', 'unplugged'], ['error', null]]);
});

test('a churning guest never writes unplugged memory while virtio-mem grows and shrinks', () => {
  const violations: number[] = [];
  let device: TestHost['virtioMem'] = null;
  const inner = new BytesBacking(128 * MiB);
  const writers = new Set(['writeU8', 'writeLe16', 'writeLe32', 'writeLe64', 'write']);
  const backing = new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (typeof prop === 'string' && writers.has(prop)) {
        return (gpa: number, ...rest: unknown[]) => {
          const d = device?.device;
          if (d !== undefined && gpa >= d.addrBytes && gpa < d.addrBytes + d.regionSizeBytes && !d.isPlugged(gpa)) violations.push(gpa);
          return (value as (...a: unknown[]) => unknown).call(target, gpa, ...rest);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  const t = host({
    backing,
    prepare: (h) => { device = h.virtioMem; },
    guest: {
      virtioMem: { retryMinNs: 5 * NS_PER_MS, retryMaxNs: 5 * NS_PER_MS },
      workload: { kind: 'churn', usedTargetBytes: 80 * MiB, rateBytesPerS: 512 * MiB, lifetimeMeanNs: 400 * NS_PER_MS },
    },
  });
  t.mem.setRequestedSize(48 * MiB);
  for (let i = 0; i < 500; i++) t.h.tick();
  assert.equal(t.device.pluggedSizeBytes, 48 * MiB);
  let touchedPlugged = 0;
  for (let p = (64 * MiB) / 4096; p < (112 * MiB) / 4096; p++) if (t.h.guest.memory.log.bits.test(p)) touchedPlugged++;
  assert.ok(touchedPlugged > 1000, 'the workload uses plugged memory');
  t.mem.setRequestedSize(16 * MiB);
  for (let i = 0; i < 2000; i++) t.h.tick();
  assert.ok(t.device.pluggedSizeBytes < 48 * MiB, 'some blocks were unplugged under churn');
  t.mem.setRequestedSize(32 * MiB);
  for (let i = 0; i < 500; i++) t.h.tick();
  assert.deepEqual(violations, []);
  assertAgree(t);
  assert.deepEqual(auditBuddy(t.allocator), []);
});
