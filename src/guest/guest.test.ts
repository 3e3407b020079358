// The Guest assembly: memory layout (kernel, vring window, boot RAM, virtio-mem region),
// dirty logging of guest and device writes, the invariant helpers (free bytes, held hint
// bytes, pageIsFreeInGuest), probe failures, compact backings and determinism.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrecopyNotifyReason as R } from '../devices/balloon/free-page-hint.ts';
import { MiB } from '../lib/units.ts';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { CompactBacking } from '../memory/compact-backing.ts';
import { auditBuddy } from './allocator/audit.ts';
import { TestHost } from './drivers/test-host.ts';
import { Guest } from './guest.ts';
import { NOT_STALLED } from './workloads/index.ts';

const RUNNING = { vmRunning: true, postcopyRam: false };

test('layout: reserved kernel with the vring window at its end, boot RAM managed, the rest not present', () => {
  const guest = new Guest({ backing: new BytesBacking(96 * MiB), bootRamBytes: 64 * MiB, kernelReservedBytes: 8 * MiB });
  assert.equal(guest.kernelPages, 2048);
  assert.equal(guest.bootRamPages, 16384);
  assert.deepEqual(guest.allocator.reservedRangeList(), [{ start: 0, end: 2048 }, { start: 16384, end: 24576 }]);
  assert.equal(guest.kernelMemory.startGpa, 7 * MiB);
  assert.equal(guest.kernelMemory.endGpa, 8 * MiB);
  assert.equal(guest.freeBytes(), 56 * MiB);
  assert.equal(guest.heldHintBytes(), 0);
  assert.equal(guest.balloon, null);
  assert.ok(!guest.pageIsFreeInGuest(0) && guest.pageIsFreeInGuest(2048) && !guest.pageIsFreeInGuest(16384));
  assert.deepEqual(auditBuddy(guest.allocator), []);
});

test('default kernel size: bootRam / 16 clamped to [2, 16] MiB', () => {
  assert.equal(new Guest({ backing: new BytesBacking(16 * MiB) }).kernelPages, 512);
  assert.equal(new Guest({ backing: new BytesBacking(128 * MiB) }).kernelPages, 2048);
  assert.equal(new Guest({ backing: new BytesBacking(512 * MiB) }).kernelPages, 4096);
});

test('guest and device writes land in the dirty log; dirty pages outside the kernel are allocator-managed', () => {
  const host = new TestHost({ memoryBytes: 64 * MiB, guest: { workload: { kind: 'churn', usedTargetBytes: 8 * MiB, rateBytesPerS: 64 * MiB } } });
  const { guest } = host;
  guest.memory.log.bits.clearAll();
  for (let i = 0; i < 20; i++) host.tick();
  host.balloon!.precopyNotify(R.AfterBitmapSync, RUNNING);
  for (let i = 0; i < 20; i++) host.tick();
  const log = guest.memory.log.bits;
  const usedRing = host.balloon!.core.queues[3].currentLayout!.usedGpa;
  assert.ok(log.test(Math.floor(usedRing / 4096)), 'the device wrote the used ring through the guest memory');
  let dirtyOutsideKernel = 0;
  for (let p = log.nextSet(guest.kernelPages); p >= 0; p = log.nextSet(p + 1)) {
    dirtyOutsideKernel++;
    assert.ok(guest.allocator.isAllocated(p) || guest.pageIsFreeInGuest(p), `page ${p} is neither allocated nor free`);
  }
  assert.ok(dirtyOutsideKernel > 0);
  assert.equal(guest.step(host.nowNs + 1), NOT_STALLED);
});

test('pageIsFreeInGuest covers held hints; heldHintBytes and freeBytes add up', () => {
  const host = new TestHost({ memoryBytes: 64 * MiB });
  const { guest } = host;
  const free = guest.freeBytes();
  host.balloon!.precopyNotify(R.AfterBitmapSync, RUNNING);
  host.settle();
  assert.ok(guest.heldHintBytes() > 0);
  assert.equal(guest.freeBytes() + guest.heldHintBytes(), free);
  for (const r of guest.heldHintRanges()!) {
    const pfn = r.start / 4096;
    assert.ok(!guest.allocator.isFree(pfn) && guest.pageIsFreeInGuest(pfn) && guest.pageIsFreeInGuest(r.end / 4096 - 1));
  }
});

test('a device the driver cannot use is listed in probeErrors and the driver stays unbound', () => {
  // The virtio-mem region overlaps boot RAM: the guest already manages those pages.
  const host = new TestHost({ memoryBytes: 64 * MiB, virtioMem: { addrBytes: 32 * MiB, regionSizeBytes: 32 * MiB } });
  assert.equal(host.guest.virtioMem, null);
  assert.equal(host.guest.probeErrors[0]?.code, 'DRIVER_ERR_BAD_CONFIG');
  assert.ok(host.guest.balloon !== null);
});

test('a compact backing works: ring pages are made exact as they are handed out', () => {
  const backing = new CompactBacking((256 * MiB) / 4096);
  const host = new TestHost({ memoryBytes: 256 * MiB, backing });
  assert.ok(backing.exactPageCount > 0 && backing.exactPageCount < 128);
  host.balloon!.balloon(240 * MiB);
  host.settle(); // Inflate first: a hint round running alongside would pin the memory.
  host.balloon!.precopyNotify(R.AfterBitmapSync, RUNNING);
  host.settle();
  assert.equal(host.balloon!.device.actualPages, 4096);
  assert.ok(host.guest.heldHintBytes() > 0);
  assert.deepEqual(host.hints.toArray(), host.guest.heldHintRanges()!.toArray());
});

test('the same seed and step times give the same guest', () => {
  const run = () => {
    const host = new TestHost({ memoryBytes: 64 * MiB, guest: { seed: 42, workload: { kind: 'churn', usedTargetBytes: 16 * MiB, rateBytesPerS: 32 * MiB } } });
    for (let i = 0; i < 30; i++) host.tick();
    host.balloon!.precopyNotify(R.AfterBitmapSync, RUNNING);
    for (let i = 0; i < 30; i++) host.tick();
    return { held: host.guest.heldHintRanges()!.toArray(), log: Array.from(host.guest.memory.log.words), free: host.guest.freeBytes() };
  };
  assert.deepEqual(run(), run());
});
