/**
 * Driver-side split queue tests: ring layout and alignment, direct and indirect chains as
 * written to memory, the free list, kick suppression, callbacks, reset, and a hostile
 * device writing a bad used ring. Also the bump allocator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_DESC_F_INDIRECT as INDIRECT, VIRTQ_DESC_F_NEXT as NEXT,
  VIRTQ_DESC_F_WRITE as WRITE, featureSet,
} from '../../devices/virtio/constants.ts';
import { ArrayGuestMemory } from '../../devices/virtio/test-memory.ts';
import { BumpAllocator, GpaAllocatorError } from './bump-allocator.ts';
import { SplitQueueDriver } from './split-queue-driver.ts';

const DATA = 0x8000;
const seg = (i: number, lengthBytes = 16) => ({ gpa: DATA + 0x100 * i, lengthBytes });

function makeDriver(queueSize: number, features = 0n, start = 0) {
  const mem = new ArrayGuestMemory(0x10000);
  mem.bytes.fill(0xff, 0, DATA);
  const driver = new SplitQueueDriver<string>(mem, new BumpAllocator(start, DATA), { queueSize, features });
  return { mem, driver, ring: driver.ring };
}

/** Plays the device: returns head `id` with `len` on the used ring. */
function deviceUse(ring: SplitQueueDriver<string>['ring'], id: number, len: number): void {
  const idx = ring.readUsedIdx();
  ring.writeUsedElem(idx, { id, len });
  ring.setUsedIdx(idx + 1);
}

test('the rings are aligned and zeroed wherever the allocator starts', () => {
  const { driver, mem } = makeDriver(8, 0n, 3);
  const { descGpa, availGpa, usedGpa } = driver.layout;
  assert.equal(descGpa % 16, 0);
  assert.equal(availGpa % 2, 0);
  assert.equal(usedGpa % 4, 0);
  assert.ok(mem.read(descGpa, 128).every((b) => b === 0));
  assert.ok(mem.read(availGpa, 22).every((b) => b === 0));
  assert.ok(mem.read(usedGpa, 70).every((b) => b === 0));
});

test('a direct chain takes descriptors from the free list and is published', () => {
  const { driver, ring } = makeDriver(8);
  assert.ok(driver.add([seg(0, 10), seg(1, 20)], [seg(2, 30)], 'a'));
  assert.deepEqual(ring.readDescriptor(0), { addr: BigInt(DATA), len: 10, flags: NEXT, next: 1 });
  assert.deepEqual(ring.readDescriptor(1), { addr: BigInt(DATA + 0x100), len: 20, flags: NEXT, next: 2 });
  assert.deepEqual(ring.readDescriptor(2), { addr: BigInt(DATA + 0x200), len: 30, flags: WRITE, next: 0 });
  assert.equal(ring.readAvailIdx(), 1);
  assert.equal(driver.numFreeDescriptors, 5);
  assert.ok(driver.add([seg(3)], [], 'b'));
  assert.equal(ring.readAvailIdx(), 2);
  assert.equal(driver.numFreeDescriptors, 4);
});

test('the free list runs out, refills on getUsed, and reuses freed heads first', () => {
  const { driver, ring } = makeDriver(4);
  for (const t of ['a', 'b', 'c', 'd']) assert.ok(driver.add([], [seg(0)], t));
  assert.equal(driver.add([], [seg(0)], 'e'), false);
  assert.equal(driver.numFreeDescriptors, 0);
  deviceUse(ring, 2, 5);
  assert.deepEqual(driver.getUsed(), { token: 'c', usedLengthBytes: 5 });
  assert.equal(driver.getUsed(), null);
  assert.ok(driver.add([seg(1)], [], 'e'));
  assert.equal(ring.readDescriptor(2).len, 16, 'head 2 was reused');
  assert.equal(ring.readDescriptor(2).flags, 0);
});

test('indirect tables are used for multi-segment buffers when negotiated', () => {
  const { driver, ring, mem } = makeDriver(4, featureSet(VIRTIO_RING_F_INDIRECT_DESC));
  assert.ok(driver.add([seg(0)], [seg(1), seg(2)], 'multi'));
  const head = ring.readDescriptor(0);
  assert.equal(head.flags, INDIRECT);
  assert.equal(head.len, 48);
  const table = Number(head.addr);
  assert.equal(table % 16, 0);
  assert.deepEqual([mem.readLe16(table + 12), mem.readLe16(table + 28), mem.readLe16(table + 44)], [NEXT, WRITE | NEXT, WRITE]);
  assert.equal(driver.numFreeDescriptors, 3, 'one descriptor for three segments');
  assert.ok(driver.add([seg(3)], [], 'single'));
  assert.equal(ring.readDescriptor(1).flags, 0, 'a single segment goes direct');
  deviceUse(ring, 0, 0);
  assert.equal(driver.getUsed()?.token, 'multi');
  assert.equal(driver.numFreeDescriptors, 3);
});

test('kick honours NO_NOTIFY, or avail_event with EVENT_IDX', () => {
  const plain = makeDriver(8);
  plain.driver.add([seg(0)], [], 'a');
  assert.equal(plain.driver.kick(), true);
  plain.mem.writeLe16(plain.driver.layout.usedGpa, 1);
  plain.driver.add([seg(0)], [], 'b');
  assert.equal(plain.driver.kick(), false);

  const ev = makeDriver(8, featureSet(VIRTIO_RING_F_EVENT_IDX));
  const availEventGpa = ev.driver.layout.usedGpa + 4 + 8 * 8;
  ev.driver.add([seg(0)], [], 'a');
  assert.equal(ev.driver.kick(), true, 'avail_event 0 lies in [0, 1)');
  ev.driver.add([seg(0)], [], 'b');
  assert.equal(ev.driver.kick(), false, 'the device has not caught up to index 1');
  ev.mem.writeLe16(availEventGpa, 2);
  ev.driver.add([seg(0)], [], 'c');
  ev.driver.add([seg(0)], [], 'd');
  assert.equal(ev.driver.kick(), true, 'avail_event 2 lies in [2, 4)');
  assert.equal(ev.driver.kick(), false, 'nothing added');
});

test('callbacks: avail flags, or used_event with EVENT_IDX', () => {
  const plain = makeDriver(8);
  plain.driver.disableCallbacks();
  assert.equal(plain.ring.readAvailFlags(), 1);
  assert.equal(plain.driver.enableCallbacks(), true);
  assert.equal(plain.ring.readAvailFlags(), 0);

  const ev = makeDriver(8, featureSet(VIRTIO_RING_F_EVENT_IDX));
  ev.driver.add([], [seg(0)], 'a');
  ev.driver.add([], [seg(1)], 'b');
  deviceUse(ev.ring, 0, 1);
  assert.equal(ev.driver.getUsed()?.token, 'a');
  assert.equal(ev.ring.readUsedEvent(), 1, 'used_event follows consumption');
  ev.driver.disableCallbacks();
  assert.equal(ev.ring.readAvailFlags(), 0, 'flags stay 0 with EVENT_IDX');
  deviceUse(ev.ring, 1, 1);
  assert.equal(ev.driver.getUsed()?.token, 'b');
  assert.equal(ev.ring.readUsedEvent(), 0, 'used_event is not advanced while disabled');
  assert.equal(ev.driver.enableCallbacks(), true);
  assert.equal(ev.ring.readUsedEvent(), 2);
  ev.driver.add([], [seg(0)], 'c');
  deviceUse(ev.ring, 0, 1);
  ev.driver.disableCallbacks();
  assert.equal(ev.driver.enableCallbacks(), false, 'a used buffer is pending');
});

test('a hostile used ring breaks the driver queue with a typed error', () => {
  const jump = makeDriver(4);
  jump.driver.add([seg(0)], [], 'a');
  jump.ring.setUsedIdx(5);
  assert.equal(jump.driver.getUsed(), null);
  assert.equal(jump.driver.error?.code, 'VIRTIO_ERR_USED_IDX_JUMP');
  assert.equal(jump.driver.add([seg(0)], [], 'b'), false, 'a broken queue takes no buffers');

  const range = makeDriver(4);
  range.driver.add([seg(0)], [], 'a');
  deviceUse(range.ring, 9, 0);
  assert.equal(range.driver.getUsed(), null);
  assert.equal(range.driver.error?.code, 'VIRTIO_ERR_USED_ID_RANGE');

  const notHead = makeDriver(4);
  notHead.driver.add([seg(0), seg(1)], [], 'a');
  deviceUse(notHead.ring, 1, 0);
  assert.equal(notHead.driver.getUsed(), null);
  assert.equal(notHead.driver.error?.code, 'VIRTIO_ERR_USED_ID_NOT_HEAD');
  assert.deepEqual(notHead.driver.reset(), ['a'], 'reset hands back what was outstanding');
  assert.equal(notHead.driver.broken, false);
  assert.equal(notHead.driver.numFreeDescriptors, 4);
});

test('a device scribbling on the descriptor table cannot corrupt the free list', () => {
  const { driver, ring } = makeDriver(4);
  driver.add([seg(0), seg(1), seg(2)], [], 'a');
  for (let i = 0; i < 4; i++) ring.writeDescriptor(i, { addr: 0, len: 0, flags: 0xffff, next: 0xffff });
  deviceUse(ring, 0, 0);
  assert.equal(driver.getUsed()?.token, 'a');
  assert.equal(driver.numFreeDescriptors, 4);
  for (const t of ['b', 'c', 'd', 'e']) assert.ok(driver.add([seg(0)], [], t));
  assert.deepEqual(Array.from({ length: 4 }, (_, i) => ring.readDescriptor(i).len), [16, 16, 16, 16]);
});

test('the bump allocator aligns, and reports exhaustion with a code', () => {
  const a = new BumpAllocator(0x10, 0x100);
  assert.equal(a.allocate(3, 1), 0x10);
  assert.equal(a.allocate(8, 16), 0x20);
  assert.equal(a.allocate(0xd0, 4), 0x28);
  assert.throws(() => a.allocate(16, 4), (e) => e instanceof GpaAllocatorError && e.code === 'GUEST_ERR_ALLOC_EXHAUSTED');
  assert.throws(() => a.allocate(1, 3), RangeError);
});
