/**
 * Fuzz of the device side against hostile rings: random descriptor tables (raw random bytes
 * mixed with near-valid descriptors, indirect tables included), random avail entries and
 * indices, random limits and features. The device may only ever hand out well-formed
 * elements or stop with a typed VirtioError; it never throws anything else, never reads or
 * writes outside guest memory, writes only the used ring and the writable buffers it was
 * given, and does a bounded amount of work per pop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../../lib/prng.ts';
import { fuzzRuns } from '../../testing/fuzz-runs.ts';
import { VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_NOTIFY_ON_EMPTY, featureSet } from './constants.ts';
import { VIRTIO_ERROR_CODES, VirtioError } from './errors.ts';
import { availRingSizeBytes, descTableSizeBytes, usedRingSizeBytes } from './ring-layout.ts';
import { writeToSegments } from './segments.ts';
import { SplitQueueDevice } from './split-queue.ts';
import { ArrayGuestMemory, RecordingGuestMemory, insideAny, type AccessRecord } from './test-memory.ts';

const MEMORY_BYTES = 8192;
const RUNS = fuzzRuns();

interface Case {
  seed: number;
  queueSizeLog2: number;
  indirect: boolean;
  eventIdx: boolean;
  notifyOnEmpty: boolean;
  lastAvailIdx: number;
  availDelta: number;
  /** Whether the avail index and used index may be anything (else: within the queue size). */
  wildIndices: boolean;
  inUseBefore: number;
  maxChainDescriptors: number | null;
  maxTotalLengthBytes: number | null;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  seed: fc.integer(),
  queueSizeLog2: fc.integer({ min: 0, max: 5 }),
  indirect: fc.boolean(),
  eventIdx: fc.boolean(),
  notifyOnEmpty: fc.boolean(),
  lastAvailIdx: fc.integer({ min: 0, max: 0xffff }),
  availDelta: fc.integer({ min: 0, max: 0xffff }),
  wildIndices: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  inUseBefore: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) }),
  maxChainDescriptors: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
  maxTotalLengthBytes: fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: null }),
});

/** A descriptor that is often almost valid, sometimes anything at all. */
function randomDescriptor(prng: Prng, queueSize: number, indirectTableGpas: number[]): [number, number, number, number, number] {
  const addrPick = prng.float();
  let low: number;
  let high = 0;
  if (addrPick < 0.6) low = prng.int(0, MEMORY_BYTES - 1);
  else if (addrPick < 0.75) low = prng.pick(indirectTableGpas);
  else if (addrPick < 0.85) low = MEMORY_BYTES - prng.int(0, 64);
  else { low = prng.u32(); high = prng.chance(0.5) ? prng.u32() : prng.int(0, 3); }
  const lenPick = prng.float();
  const len = lenPick < 0.6 ? prng.int(1, 64) : lenPick < 0.8 ? 16 * prng.int(0, 12) : lenPick < 0.9 ? 0 : prng.u32();
  const flags = prng.chance(0.9) ? prng.int(0, 3) | (prng.chance(0.15) ? 4 : 0) : prng.u32() & 0xffff;
  const next = prng.chance(0.9) ? prng.int(0, queueSize + 1) : prng.u32() & 0xffff;
  return [low, high, len, flags, next];
}

function writeDescriptor(mem: ArrayGuestMemory, gpa: number, [low, high, len, flags, next]: [number, number, number, number, number]): void {
  mem.writeLe32(gpa, low);
  mem.writeLe32(gpa + 4, high);
  mem.writeLe32(gpa + 8, len);
  mem.writeLe16(gpa + 12, flags);
  mem.writeLe16(gpa + 14, next);
}

const codesSeen = new Map<string, number>();
let elementsServed = 0;

function runCase(c: Case): void {
  const prng = new Prng(c.seed);
  const inner = new ArrayGuestMemory(MEMORY_BYTES);
  for (let i = 0; i < MEMORY_BYTES; i += 4) inner.writeLe32(i, prng.u32());
  const queueSize = 1 << c.queueSizeLog2;
  const availDelta = c.wildIndices ? c.availDelta : c.availDelta % (queueSize + 1);
  const inUseBefore = c.wildIndices ? c.inUseBefore : c.inUseBefore % (queueSize + 1);
  const descGpa = 0;
  const availGpa = descTableSizeBytes(queueSize);
  const usedGpa = (availGpa + availRingSizeBytes(queueSize) + 3) & ~3;
  const usedArea: AccessRecord = { gpa: usedGpa, lengthBytes: usedRingSizeBytes(queueSize) };

  // Indirect tables at fixed spots in the data area, filled with near-valid descriptors.
  const indirectTableGpas = [0x1000, 0x1400, 0x1800 + 8];
  for (const t of indirectTableGpas) {
    for (let k = 0; k < 12; k++) writeDescriptor(inner, t + 16 * k, randomDescriptor(prng, 12, indirectTableGpas));
  }
  for (let i = 0; i < queueSize; i++) {
    if (prng.chance(0.8)) writeDescriptor(inner, descGpa + 16 * i, randomDescriptor(prng, queueSize, indirectTableGpas));
  }
  for (let slot = 0; slot < queueSize; slot++) {
    if (prng.chance(0.9)) inner.writeLe16(availGpa + 4 + 2 * slot, prng.int(0, queueSize - 1));
  }
  // Sometimes a well-formed chain through distinct descriptors, so walks get deep.
  if (prng.chance(0.3)) {
    const order = Array.from({ length: queueSize }, (_, i) => i).sort(() => prng.float() - 0.5);
    const length = prng.int(1, queueSize);
    const writableFrom = prng.int(0, length);
    for (let k = 0; k < length; k++) {
      const flags = (k + 1 < length ? 1 : 0) | (k >= writableFrom ? 2 : 0);
      writeDescriptor(inner, descGpa + 16 * order[k], [prng.int(0x1c00, 0x1f00), 0, prng.int(1, 64), flags, order[k + 1] ?? 0]);
    }
    inner.writeLe16(availGpa + 4 + 2 * (c.lastAvailIdx & (queueSize - 1)), order[0]);
  }
  // The migrated state is consistent at restore; the avail index moves (maybe wildly) after it.
  inner.writeLe16(availGpa + 2, c.lastAvailIdx);
  inner.writeLe16(usedGpa + 2, (c.lastAvailIdx - inUseBefore) & 0xffff);

  const mem = new RecordingGuestMemory(inner);
  const queue = new SplitQueueDevice(mem, {
    maxChainDescriptors: c.maxChainDescriptors ?? undefined,
    maxTotalLengthBytes: c.maxTotalLengthBytes ?? undefined,
  });
  const features = (c.indirect ? featureSet(VIRTIO_RING_F_INDIRECT_DESC) : 0n)
    | (c.eventIdx ? featureSet(VIRTIO_RING_F_EVENT_IDX) : 0n)
    | (c.notifyOnEmpty ? featureSet(VIRTIO_F_NOTIFY_ON_EMPTY) : 0n);
  queue.configure({ queueSize, descGpa, availGpa, usedGpa, features });
  try {
    queue.restoreLastAvailIdx(c.lastAvailIdx);
  } catch (e) {
    assert.ok(e instanceof VirtioError && e.code === 'VIRTIO_ERR_MIGRATION_INCONSISTENT', `restore threw ${String(e)}`);
    codesSeen.set(e.code, (codesSeen.get(e.code) ?? 0) + 1);
    return;
  }
  inner.writeLe16(availGpa + 2, (c.lastAvailIdx + availDelta) & 0xffff);

  const allowedWrites: AccessRecord[] = [usedArea];
  const readsPerPopMax = 5 * (queueSize + 2) + 10;
  for (let round = 0; round < queueSize + 3; round++) {
    const readsBefore = mem.readCount;
    const element = queue.pop();
    assert.ok(mem.readCount - readsBefore <= readsPerPopMax, `pop did ${mem.readCount - readsBefore} reads`);
    if (element === null) break;
    elementsServed++;
    // A handed-out element is well-formed.
    assert.ok(element.headIndex >= 0 && element.headIndex < queueSize);
    assert.ok(element.readable.length + element.writable.length >= 1);
    assert.ok(element.readable.length + element.writable.length <= Math.min(queueSize, c.maxChainDescriptors ?? queueSize));
    assert.ok(element.readableLengthBytes + element.writableLengthBytes <= (c.maxTotalLengthBytes ?? 0xffffffff));
    for (const s of [...element.readable, ...element.writable]) {
      assert.ok(s.lengthBytes > 0 && s.gpa >= 0 && s.gpa + s.lengthBytes <= MEMORY_BYTES);
    }
    if (!c.indirect) assert.equal(element.indirect, false);
    allowedWrites.push(...element.writable);
    const reply = new Uint8Array(prng.int(0, element.writableLengthBytes));
    reply.fill(0xa5);
    const written = writeToSegments(mem, element.writable, reply);
    if (prng.chance(0.5)) queue.setNotification(prng.chance(0.5));
    queue.push(element, written);
    queue.needsNotify();
  }
  queue.availableCount();

  if (queue.error !== null) {
    assert.ok(queue.error instanceof VirtioError && VIRTIO_ERROR_CODES.has(queue.error.code));
    codesSeen.set(queue.error.code, (codesSeen.get(queue.error.code) ?? 0) + 1);
    assert.equal(queue.pop(), null, 'a broken queue pops nothing');
  }
  assert.deepEqual(mem.outOfRange, []);
  for (const w of mem.writes) {
    assert.ok(insideAny(w.gpa, w.lengthBytes, allowedWrites), `write at 0x${w.gpa.toString(16)} (${w.lengthBytes} bytes) outside the used ring and writable buffers`);
  }
}

test(`${RUNS} hostile rings: only elements or typed VirtioErrors, memory stays in bounds`, () => {
  fc.assert(fc.property(caseArb, (c) => runCase(c)), { numRuns: RUNS });
  // The fuzz must actually reach the checks: most error kinds show up.
  const expected = [
    'VIRTIO_ERR_AVAIL_IDX_JUMP', 'VIRTIO_ERR_NEXT_INDEX', 'VIRTIO_ERR_DESC_LOOP', 'VIRTIO_ERR_CHAIN_TOO_LONG',
    'VIRTIO_ERR_CHAIN_TOO_LARGE', 'VIRTIO_ERR_ADDR_RANGE', 'VIRTIO_ERR_ZERO_LENGTH', 'VIRTIO_ERR_WRONG_DIRECTION',
    'VIRTIO_ERR_INDIRECT_NOT_NEGOTIATED', 'VIRTIO_ERR_INDIRECT_BAD_LENGTH', 'VIRTIO_ERR_INDIRECT_NESTED',
    'VIRTIO_ERR_INDIRECT_WITH_NEXT', 'VIRTIO_ERR_INDIRECT_MISPLACED', 'VIRTIO_ERR_HEAD_INDEX',
  ];
  const missing = expected.filter((code) => !codesSeen.has(code));
  assert.deepEqual(missing, [], `codes seen: ${JSON.stringify([...codesSeen])}`);
  assert.ok(elementsServed > 1000, `only ${elementsServed} well-formed elements were served`);
});
