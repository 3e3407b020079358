/**
 * Device-side split queue tests over rings written by hand (the driver side has its own
 * tests and the round trip lives in guest/virtio): layout checks, pop/push and the used
 * ring write order, indirect chains, notification suppression both ways, migration restore,
 * u16 wrap-around, the broken-queue policy, and the segment copy helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../lib/assert.ts';
import {
  VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE, featureSet,
} from './constants.ts';
import { VirtioError } from './errors.ts';
import { readFromSegments, writeToSegments } from './segments.ts';
import { SplitQueueDevice } from './split-queue.ts';
import { ArrayGuestMemory, RecordingGuestMemory } from './test-memory.ts';

const N = 8;
const DESC = 0x000;
const AVAIL = 0x100;
const USED = 0x200;
const DATA = 0x1000;
const layout = { queueSize: N, descGpa: DESC, availGpa: AVAIL, usedGpa: USED };

/** A queue over fresh memory plus small writers for the driver's side of the rings. */
function setup(features = 0n, options: ConstructorParameters<typeof SplitQueueDevice>[1] = {}) {
  const mem = new ArrayGuestMemory(0x4000);
  const recorder = new RecordingGuestMemory(mem);
  const queue = new SplitQueueDevice(recorder, options);
  queue.configure({ ...layout, features });
  let availIdx = 0;
  const desc = (i: number, addr: number, len: number, flags: number, next = 0, tableGpa = DESC): void => {
    mem.writeLe32(tableGpa + 16 * i, addr);
    mem.writeLe32(tableGpa + 16 * i + 4, 0);
    mem.writeLe32(tableGpa + 16 * i + 8, len);
    mem.writeLe16(tableGpa + 16 * i + 12, flags);
    mem.writeLe16(tableGpa + 16 * i + 14, next);
  };
  const publish = (head: number): void => {
    mem.writeLe16(AVAIL + 4 + 2 * (availIdx % N), head);
    availIdx = (availIdx + 1) & 0xffff;
    mem.writeLe16(AVAIL + 2, availIdx);
  };
  const setAvailIdx = (idx: number): void => {
    availIdx = idx & 0xffff;
    mem.writeLe16(AVAIL + 2, availIdx);
  };
  return { mem, recorder, queue, desc, publish, setAvailIdx };
}

test('configure checks size, alignment and fit', () => {
  const mem = new ArrayGuestMemory(0x1000);
  const queue = new SplitQueueDevice(mem, { queueSizeMax: 16 });
  const bad = [
    { ...layout, queueSize: 6 }, { ...layout, queueSize: 0 }, { ...layout, queueSize: 32 },
    { ...layout, descGpa: 8 }, { ...layout, availGpa: 0x101 }, { ...layout, usedGpa: 0x202 },
    { ...layout, usedGpa: 0x1000 - 64 }, { ...layout, descGpa: -16 },
  ];
  for (const l of bad) {
    assert.throws(() => queue.configure({ ...l, features: 0n }), (e) => e instanceof VirtioError && e.code === 'VIRTIO_ERR_QUEUE_CONFIG', JSON.stringify(l));
  }
  queue.configure({ ...layout, usedGpa: 0xfb8, features: 0n });
  assert.equal(queue.ready, true);
});

test('pop yields the chain split by direction; push writes the used element before the index', () => {
  const { queue, desc, publish, recorder, mem } = setup();
  desc(3, DATA, 10, VIRTQ_DESC_F_NEXT, 5);
  desc(5, DATA + 0x100, 20, VIRTQ_DESC_F_NEXT, 1);
  desc(1, DATA + 0x200, 30, VIRTQ_DESC_F_WRITE);
  assert.equal(queue.pop(), null);
  publish(3);
  const element = queue.pop();
  assert.ok(element !== null);
  assert.equal(element.headIndex, 3);
  assert.deepEqual(element.readable, [{ gpa: DATA, lengthBytes: 10 }, { gpa: DATA + 0x100, lengthBytes: 20 }]);
  assert.deepEqual(element.writable, [{ gpa: DATA + 0x200, lengthBytes: 30 }]);
  assert.equal(element.readableLengthBytes, 30);
  assert.equal(element.writableLengthBytes, 30);
  assert.equal(queue.lastAvailIdx, 1);
  assert.equal(queue.inUseCount, 1);
  assert.equal(queue.pop(), null);
  recorder.clear();
  queue.push(element, 17);
  assert.deepEqual(recorder.writes, [{ gpa: USED + 4, lengthBytes: 4 }, { gpa: USED + 8, lengthBytes: 4 }, { gpa: USED + 2, lengthBytes: 2 }]);
  assert.equal(mem.readLe32(USED + 4), 3);
  assert.equal(mem.readLe32(USED + 8), 17);
  assert.equal(mem.readLe16(USED + 2), 1);
  assert.equal(queue.inUseCount, 0);
  assert.throws(() => queue.push(element, 0), AssertionError, 'a second push of the same element');
});

test('push refuses a used length beyond the writable buffers', () => {
  const { queue, desc, publish } = setup();
  desc(0, DATA, 8, VIRTQ_DESC_F_WRITE);
  publish(0);
  const element = queue.pop();
  assert.ok(element !== null);
  assert.throws(() => queue.push(element, 9), AssertionError);
  queue.push(element, 8);
});

test('an indirect table is walked in place of the head; the head WRITE flag is ignored', () => {
  const { queue, desc, publish } = setup(featureSet(VIRTIO_RING_F_INDIRECT_DESC));
  const table = 0x800;
  desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 2, table);
  desc(2, DATA + 0x10, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1, table);
  desc(1, DATA + 0x20, 4, VIRTQ_DESC_F_WRITE, 0, table);
  desc(6, table, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE);
  publish(6);
  const element = queue.pop();
  assert.ok(element !== null);
  assert.equal(element.headIndex, 6);
  assert.equal(element.indirect, true);
  assert.deepEqual(element.readable.map((s) => s.gpa), [DATA]);
  assert.deepEqual(element.writable.map((s) => s.gpa), [DATA + 0x10, DATA + 0x20]);
});

test('needsNotify without EVENT_IDX follows avail NO_INTERRUPT', () => {
  const { queue, desc, publish, mem } = setup();
  desc(0, DATA, 8, VIRTQ_DESC_F_WRITE);
  publish(0);
  queue.push(queue.pop()!, 0);
  assert.equal(queue.needsNotify(), true);
  mem.writeLe16(AVAIL, 1);
  assert.equal(queue.needsNotify(), false);
});

test('needsNotify with EVENT_IDX fires when used_event is crossed', () => {
  const { queue, desc, publish, mem } = setup(featureSet(VIRTIO_RING_F_EVENT_IDX));
  const serveOne = (): void => {
    desc(0, DATA, 8, VIRTQ_DESC_F_WRITE);
    publish(0);
    queue.push(queue.pop()!, 0);
  };
  const usedEventGpa = AVAIL + 4 + 2 * N;
  mem.writeLe16(usedEventGpa, 0);
  serveOne();
  assert.equal(queue.needsNotify(), true, 'the first decision always notifies');
  serveOne();
  assert.equal(queue.needsNotify(), false, 'used_event 0 was already crossed');
  mem.writeLe16(usedEventGpa, 3);
  serveOne();
  assert.equal(queue.needsNotify(), false, 'used index 3 has not passed used_event 3');
  serveOne();
  assert.equal(queue.needsNotify(), true, 'used index 4 passed used_event 3');
  assert.equal(queue.needsNotify(), false, 'nothing new pushed');
});

test('NOTIFY_ON_EMPTY notifies on an empty ring despite NO_INTERRUPT', () => {
  const { queue, desc, publish, mem } = setup(featureSet(VIRTIO_F_NOTIFY_ON_EMPTY));
  mem.writeLe16(AVAIL, 1);
  desc(0, DATA, 8, VIRTQ_DESC_F_WRITE);
  publish(0);
  publish(0);
  const element = queue.pop()!;
  queue.push(element, 0);
  assert.equal(queue.needsNotify(), false, 'one chain still available');
  queue.push(queue.pop()!, 0);
  assert.equal(queue.needsNotify(), true);
});

test('setNotification drives used.flags, or avail_event with EVENT_IDX', () => {
  const plain = setup();
  plain.queue.setNotification(false);
  assert.equal(plain.mem.readLe16(USED), 1);
  plain.queue.setNotification(true);
  assert.equal(plain.mem.readLe16(USED), 0);

  const ev = setup(featureSet(VIRTIO_RING_F_EVENT_IDX));
  const availEventGpa = USED + 4 + 8 * N;
  ev.desc(0, DATA, 8, VIRTQ_DESC_F_WRITE);
  ev.publish(0);
  ev.queue.pop();
  assert.equal(ev.mem.readLe16(availEventGpa), 1, 'pop publishes lastAvailIdx as avail_event');
  ev.queue.setNotification(false);
  ev.publish(0);
  ev.queue.pop();
  assert.equal(ev.mem.readLe16(availEventGpa), 1, 'no avail_event updates while disabled');
  ev.publish(0);
  ev.queue.setNotification(true);
  assert.equal(ev.mem.readLe16(availEventGpa), 3, 'enabling publishes the current avail index');
});

test('indices wrap at 2^16', () => {
  const { queue, desc, setAvailIdx, publish, mem } = setup();
  mem.writeLe16(USED + 2, 0xfffe);
  setAvailIdx(0xfffe);
  queue.restoreLastAvailIdx(0xfffe);
  for (let i = 0; i < 4; i++) desc(i, DATA + 16 * i, 16, VIRTQ_DESC_F_WRITE);
  for (let i = 0; i < 4; i++) publish(i);
  assert.equal(mem.readLe16(AVAIL + 2), 2);
  assert.equal(queue.availableCount(), 4);
  for (let i = 0; i < 4; i++) {
    const element = queue.pop();
    assert.ok(element !== null);
    assert.equal(element.headIndex, i);
    queue.push(element, 16);
  }
  assert.equal(queue.lastAvailIdx, 2);
  assert.equal(mem.readLe16(USED + 2), 2);
  assert.equal(queue.pop(), null);
});

test('restoreLastAvailIdx refuses inconsistent indices and keeps the queue', () => {
  const { queue, setAvailIdx, mem } = setup();
  setAvailIdx(20);
  mem.writeLe16(USED + 2, 10);
  assert.throws(() => queue.restoreLastAvailIdx(10), (e) => e instanceof VirtioError && e.code === 'VIRTIO_ERR_MIGRATION_INCONSISTENT');
  assert.throws(() => queue.restoreLastAvailIdx(19), (e) => e instanceof VirtioError && e.code === 'VIRTIO_ERR_MIGRATION_INCONSISTENT');
  assert.equal(queue.lastAvailIdx, 0);
  queue.restoreLastAvailIdx(14);
  assert.equal(queue.lastAvailIdx, 14);
  assert.equal(queue.usedIdx, 10);
  assert.equal(queue.inUseCount, 4);
  assert.equal(queue.availableCount(), 6);
});

test('a broken chain breaks the queue until reset, and nothing is written', () => {
  const reports: string[] = [];
  const { queue, desc, publish, recorder } = setup(0n, { onError: (e) => reports.push(e.code) });
  desc(0, DATA, 8, VIRTQ_DESC_F_NEXT, 0);
  publish(0);
  recorder.clear();
  assert.equal(queue.pop(), null);
  assert.deepEqual(reports, ['VIRTIO_ERR_DESC_LOOP']);
  assert.equal(queue.error?.code, 'VIRTIO_ERR_DESC_LOOP');
  assert.equal(queue.lastAvailIdx, 0, 'the bad chain is not consumed');
  desc(1, DATA, 8, VIRTQ_DESC_F_WRITE);
  publish(1);
  assert.equal(queue.pop(), null, 'a broken queue pops nothing');
  assert.deepEqual(recorder.writes, []);
  queue.reset();
  assert.equal(queue.broken, false);
  assert.equal(queue.pop(), null, 'not set up after reset');
});

test('segment copies cross segment boundaries and never pass the end', () => {
  const mem = new ArrayGuestMemory(0x1000);
  const segments = [{ gpa: 0x10, lengthBytes: 3 }, { gpa: 0x40, lengthBytes: 2 }, { gpa: 0x80, lengthBytes: 4 }];
  const written = writeToSegments(mem, segments, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 1);
  assert.equal(written, 8);
  assert.deepEqual([...mem.read(0x10, 3)], [0, 1, 2]);
  assert.deepEqual([...mem.read(0x40, 2)], [3, 4]);
  assert.deepEqual([...mem.read(0x80, 5)], [5, 6, 7, 8, 0]);
  assert.deepEqual([...readFromSegments(mem, segments, 100, 2)], [2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...readFromSegments(mem, segments, 3)], [0, 1, 2]);
  assert.equal(readFromSegments(mem, segments, 5, 50).length, 0);
});
