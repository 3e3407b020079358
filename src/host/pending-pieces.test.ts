/**
 * PendingPieces: slices are whole pieces, oldest first, at least one piece, and stop once the
 * budget is reached; Infinity takes everything; the byte count and arrival times follow.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PendingPieces } from './pending-pieces.ts';

const KiB = 1024;

test('take: whole pieces in order up to the budget, the rest kept for later', () => {
  const q = new PendingPieces();
  const pieces = Array.from({ length: 10 }, (_, i) => new Uint8Array(64 * KiB).fill(i));
  pieces.forEach((p, i) => q.push(p, 1000 + i));
  assert.equal(q.bytes, 640 * KiB);
  const first = q.take(256 * KiB);
  assert.deepEqual(first.pieces.map((p) => p[0]), [0, 1, 2, 3]);
  assert.deepEqual(first.arrivedNs, [1000, 1001, 1002, 1003]);
  assert.equal(q.bytes, 384 * KiB);
  // A budget that ends inside a piece takes that piece whole.
  const second = q.take(100 * KiB);
  assert.deepEqual(second.pieces.map((p) => p[0]), [4, 5]);
  assert.equal(second.pieces[1], pieces[5], 'the very same piece, not a copy');
  // More data arriving meanwhile goes behind what is left.
  q.push(new Uint8Array(10).fill(99), 2000);
  const rest = q.take(Infinity);
  assert.deepEqual(rest.pieces.map((p) => p[0]), [6, 7, 8, 9, 99]);
  assert.deepEqual(rest.arrivedNs, [1006, 1007, 1008, 1009, 2000]);
  assert.equal(q.bytes, 0);
  assert.equal(q.isEmpty, true);
});

test('take: at least one piece even when it exceeds the budget; without stamps arrivedNs is empty; clear drops all', () => {
  const q = new PendingPieces();
  q.push(new Uint8Array(1024 * KiB));
  q.push(new Uint8Array(1));
  const one = q.take(256 * KiB);
  assert.equal(one.pieces.length, 1);
  assert.deepEqual(one.arrivedNs, []);
  assert.equal(q.bytes, 1);
  q.clear();
  assert.equal(q.isEmpty, true);
  assert.equal(q.bytes, 0);
  assert.deepEqual(q.take(Infinity).pieces, []);
});
