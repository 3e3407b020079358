// Property: random request sequences (plug, unplug, unplug-all, state, requested-size changes,
// migration busy toggles) keep plugged size == popcount × block size, keep every plugged
// block inside the usable region, never let an acknowledged plug exceed the requested size
// (nor, while requested size only grows, any moment), and agree with a set-of-blocks model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitmap } from '../../lib/bitmap.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { ElementBuilder } from '../test-elements.ts';
import { VirtioMemDevice } from './virtio-mem-device.ts';
import { decodeVirtioMemResponse, encodeVirtioMemRequest, type VirtioMemRequest } from './virtio-mem-requests.ts';

const MiB = 1024 * 1024;
const BLOCK = MiB;
const BLOCKS = 512;
const BASE = 128 * MiB;

type Op =
  | { op: 'request'; request: VirtioMemRequest }
  | { op: 'requested'; blocks: number }
  | { op: 'busy'; busy: boolean }
  /** Unplug up to `length` blocks of the plugged run that starts at the pick-th plugged block. */
  | { op: 'unplug-plugged'; pick: number; length: number };

const blockAddr = fc.oneof(
  { weight: 9, arbitrary: fc.integer({ min: -2, max: 400 }).map((b) => BigInt(BASE + b * BLOCK)) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
);
const nbBlocks = fc.integer({ min: 0, max: 40 });
const opArb = (requestedArb: fc.Arbitrary<number>): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ addr: blockAddr, nbBlocks }).map(({ addr, nbBlocks }) => ({ op: 'request' as const, request: { type: 'plug' as const, addr, nbBlocks } })) },
    { weight: 4, arbitrary: fc.record({ addr: blockAddr, nbBlocks }).map(({ addr, nbBlocks }) => ({ op: 'request' as const, request: { type: 'unplug' as const, addr, nbBlocks } })) },
    { weight: 2, arbitrary: fc.record({ addr: blockAddr, nbBlocks }).map(({ addr, nbBlocks }) => ({ op: 'request' as const, request: { type: 'state' as const, addr, nbBlocks } })) },
    { weight: 1, arbitrary: fc.constant<Op>({ op: 'request', request: { type: 'unplug-all' } }) },
    { weight: 2, arbitrary: requestedArb.map((blocks) => ({ op: 'requested' as const, blocks })) },
    { weight: 1, arbitrary: fc.boolean().map((busy) => ({ op: 'busy' as const, busy })) },
    { weight: 3, arbitrary: fc.record({ pick: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }).map((r) => ({ op: 'unplug-plugged' as const, ...r })) },
  );

/** Turns an 'unplug-plugged' pick into a concrete request over the model (null if nothing is plugged). */
function unplugPlugged(model: Set<number>, pick: number, length: number): VirtioMemRequest | null {
  if (model.size === 0) return null;
  const first = [...model].sort((a, b) => a - b)[pick % model.size];
  let n = 1;
  while (n < length && model.has(first + n)) n++;
  return { type: 'unplug', addr: BigInt(BASE + first * BLOCK), nbBlocks: n };
}

function run(ops: readonly Op[], requestedOnlyGrows: boolean): void {
  const memory = new BytesBacking(64 * 1024);
  const device = new VirtioMemDevice({ addrBytes: BASE, regionSizeBytes: BLOCKS * BLOCK, blockSizeBytes: BLOCK, requestedSizeBytes: 16 * BLOCK });
  const model = new Set<number>();
  for (const step of ops) {
    if (step.op === 'requested') {
      const bytes = requestedOnlyGrows ? Math.max(device.requestedSizeBytes, step.blocks * BLOCK) : step.blocks * BLOCK;
      assert.equal(device.setRequestedSize(bytes), null);
    } else if (step.op === 'busy') {
      device.migrationBusy = step.busy;
    } else {
      const request = step.op === 'request' ? step.request : unplugPlugged(model, step.pick, step.length);
      if (request === null) continue;
      const builder = new ElementBuilder(memory, 0);
      const element = builder.element([encodeVirtioMemRequest(request)], [builder.reserve(10)]);
      const [effect] = device.handleRequest(memory, element);
      assert.equal(effect.kind, 'push');
      const response = decodeVirtioMemResponse(memory.read(element.writable[0].gpa, 10));
      assert.ok(response !== null);
      if (response.type === 'ack' && request.type !== 'state') applyToModel(model, request);
      if (response.type === 'ack' && request.type === 'plug') assert.ok(device.pluggedSizeBytes <= device.requestedSizeBytes);
      if (step.op === 'unplug-plugged') assert.equal(response.type, device.migrationBusy ? 'busy' : 'ack');
      if (request.type === 'state') assert.ok(response.type === 'ack' || response.type === 'error');
      if (response.type === 'nack') assert.equal(request.type, 'plug');
      if (response.type === 'busy') assert.ok(device.migrationBusy);
    }
    checkInvariants(device, model, requestedOnlyGrows);
  }
}

function applyToModel(model: Set<number>, request: VirtioMemRequest): void {
  if (request.type === 'unplug-all') {
    model.clear();
    return;
  }
  if (request.type !== 'plug' && request.type !== 'unplug') return;
  const first = Number((request.addr - BigInt(BASE)) / BigInt(BLOCK));
  for (let b = first; b < first + request.nbBlocks; b++) {
    if (request.type === 'plug') model.add(b);
    else model.delete(b);
  }
}

function checkInvariants(device: VirtioMemDevice, model: Set<number>, requestedOnlyGrows: boolean): void {
  const state = device.captureState();
  const bitmap = new Bitmap(BLOCKS, state.pluggedWords.slice());
  assert.equal(device.pluggedSizeBytes, bitmap.count() * BLOCK);
  assert.equal(device.pluggedRanges().total(), device.pluggedSizeBytes);
  assert.equal(bitmap.count(), model.size);
  for (const b of model) assert.ok(device.isPlugged(BASE + b * BLOCK));
  assert.ok(device.usableRegionSizeBytes <= BLOCKS * BLOCK);
  assert.equal(device.usableRegionSizeBytes % BLOCK, 0);
  assert.ok(device.pluggedSizeBytes <= device.usableRegionSizeBytes);
  for (const range of device.pluggedRanges()) assert.ok(range.start >= BASE && range.end <= BASE + device.usableRegionSizeBytes);
  if (requestedOnlyGrows) assert.ok(device.pluggedSizeBytes <= device.requestedSizeBytes);
}

test('random request sequences keep the plugged accounting exact and bounded', () => {
  fc.assert(fc.property(fc.array(opArb(fc.integer({ min: 0, max: 80 })), { maxLength: 80 }), (ops) => run(ops, false)), { numRuns: 300 });
});

test('while requested size only grows, plugged size never exceeds it', () => {
  fc.assert(fc.property(fc.array(opArb(fc.integer({ min: 0, max: 80 })), { maxLength: 80 }), (ops) => run(ops, true)), { numRuns: 300 });
});
