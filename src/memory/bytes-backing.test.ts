// Tests for BytesBacking: byte-level accessors against a reference byte array (random writes of
// every width, including writes that cross page boundaries), bounds errors, and the page-level
// interface (views, copies in and out at aligned and unaligned offsets, zero pages, bumps,
// digests, comparisons, sharing the buffer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BytesBacking } from './bytes-backing.ts';
import { GuestMemoryError } from './guest-memory.ts';
import { PAGE_SIZE_BYTES, digestPageBytes } from './page-content.ts';
import { MemoryConfigError, PageRangeError } from './page-store.ts';

const PAGES = 4;
const SIZE = PAGES * PAGE_SIZE_BYTES;

type Write = { width: 1 | 2 | 4 | 8 | 0; gpa: number; value: number; bytes: number[] };

const writeArb: fc.Arbitrary<Write> = fc.record({
  width: fc.constantFrom<1 | 2 | 4 | 8 | 0>(1, 2, 4, 8, 0),
  // Addresses cluster near page boundaries so crossings are common.
  gpa: fc.oneof(fc.integer({ min: 0, max: SIZE - 16 }), fc.integer({ min: 1, max: PAGES - 1 }).chain((p) => fc.integer({ min: p * PAGE_SIZE_BYTES - 9, max: p * PAGE_SIZE_BYTES + 1 }))),
  value: fc.maxSafeNat(),
  bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }),
});

/** Applies one write to the backing and to the reference bytes. */
function applyWrite(mem: BytesBacking, ref: Uint8Array, w: Write): void {
  const width = w.width === 0 ? w.bytes.length : w.width;
  let value = w.width === 8 ? w.value : w.value % 2 ** (8 * width);
  if (w.width === 0) mem.write(w.gpa, Uint8Array.from(w.bytes));
  else if (w.width === 1) mem.writeU8(w.gpa, value);
  else if (w.width === 2) mem.writeLe16(w.gpa, value);
  else if (w.width === 4) mem.writeLe32(w.gpa, value);
  else mem.writeLe64(w.gpa, value);
  for (let i = 0; i < width; i++) {
    ref[w.gpa + i] = w.width === 0 ? w.bytes[i] : value % 256;
    value = Math.floor(value / 256);
  }
}

test('BytesBacking byte accessors match a reference byte array', () => {
  fc.assert(
    fc.property(fc.array(writeArb, { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: SIZE - 8 }), { maxLength: 20 }), (writes, probes) => {
      const mem = new BytesBacking(SIZE);
      const ref = new Uint8Array(SIZE);
      for (const w of writes) applyWrite(mem, ref, w);
      assert.deepEqual(mem.read(0, SIZE), ref);
      const view = new DataView(ref.buffer);
      for (const at of probes) {
        assert.equal(mem.readU8(at), ref[at]);
        assert.equal(mem.readLe16(at), view.getUint16(at, true));
        assert.equal(mem.readLe32(at), view.getUint32(at, true));
        assert.equal(mem.readLe64(at), Number(view.getBigUint64(at, true)));
      }
    }),
    { numRuns: 150 },
  );
});

test('BytesBacking rejects accesses outside guest RAM with GuestMemoryError', () => {
  const mem = new BytesBacking(SIZE);
  assert.throws(() => mem.readU8(SIZE), GuestMemoryError);
  assert.throws(() => mem.readLe32(SIZE - 3), GuestMemoryError);
  assert.throws(() => mem.writeLe64(-1, 0), GuestMemoryError);
  assert.throws(() => mem.read(SIZE - 1, 2), GuestMemoryError);
  assert.throws(() => mem.write(1.5, new Uint8Array(1)), GuestMemoryError);
  assert.throws(() => mem.pageView(PAGES), PageRangeError);
  assert.throws(() => mem.isZeroPage(-1), PageRangeError);
  mem.writeLe32(SIZE - 4, 0xdeadbeef);
  assert.equal(mem.readLe32(SIZE - 4), 0xdeadbeef);
});

test('BytesBacking rejects sizes that are not whole pages or too large', () => {
  assert.throws(() => new BytesBacking(100), MemoryConfigError);
  assert.throws(() => new BytesBacking(-4096), MemoryConfigError);
  assert.throws(() => new BytesBacking(2 ** 33), (e: unknown) => e instanceof MemoryConfigError && e.reason === 'too-large');
});

test('BytesBacking page operations: view, copy in and out, zero, bump, digest, equality', () => {
  const mem = new BytesBacking(SIZE);
  const other = new BytesBacking(SIZE);
  assert.equal(mem.pageCount, PAGES);
  for (let p = 0; p < PAGES; p++) assert.ok(mem.isZeroPage(p));

  // pageView shares memory with the backing.
  const view = mem.pageView(2);
  view[100] = 7;
  assert.equal(mem.readU8(2 * PAGE_SIZE_BYTES + 100), 7);
  assert.ok(!mem.isZeroPage(2));
  assert.equal(mem.pageByteOffset(2), 2 * PAGE_SIZE_BYTES);

  // Copies at aligned and unaligned offsets of larger buffers.
  for (const offset of [0, 3, 8, 4097]) {
    const out = new Uint8Array(offset + PAGE_SIZE_BYTES + 5);
    mem.copyPageOut(2, out, offset);
    assert.deepEqual(out.subarray(offset, offset + PAGE_SIZE_BYTES), mem.pageView(2));
    other.writePageFrom(1, out, offset);
    assert.deepEqual(other.pageView(1), mem.pageView(2));
  }
  assert.ok(!mem.pageEquals(other, 2));
  other.writePageFrom(2, mem.pageView(2));
  assert.ok(mem.pageEquals(other, 2));
  assert.equal(mem.pageDigest(2), other.pageDigest(2));
  assert.equal(mem.pageDigest(2), digestPageBytes(mem.pageView(2)));
  assert.notEqual(mem.pageDigest(2), mem.pageDigest(0));

  mem.zeroPage(2);
  assert.ok(mem.isZeroPage(2));
  assert.ok(!mem.pageEquals(other, 2));

  // bumpPage adds one to the little-endian u64 at page offset 0, with carry.
  mem.bumpPage(3);
  assert.equal(mem.readLe64(3 * PAGE_SIZE_BYTES), 1);
  mem.writeLe32(3 * PAGE_SIZE_BYTES, 0xffffffff);
  mem.bumpPage(3);
  assert.equal(mem.readLe64(3 * PAGE_SIZE_BYTES), 2 ** 32);
});

test('BytesBacking over a SharedArrayBuffer is visible through a second view', () => {
  const mem = new BytesBacking(SIZE, { shared: true });
  assert.ok(mem.buffer instanceof SharedArrayBuffer);
  const twin = BytesBacking.over(mem.buffer);
  mem.writeLe16(PAGE_SIZE_BYTES - 1, 0xabcd);
  assert.equal(twin.readLe16(PAGE_SIZE_BYTES - 1), 0xabcd);
  assert.equal(twin.readU8(PAGE_SIZE_BYTES), 0xab);
  assert.equal(twin.sizeBytes, SIZE);
  assert.equal(twin.bookkeepingBytes(), SIZE);
});
