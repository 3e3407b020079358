// Tests for CompactBacking: the content function (zero page, version in bytes 0..7, determinism,
// byte reads agreeing with materialized pages), the version semantics of byte-level writes
// (byte 0 exact, other writes bump the generation, no-op writes change nothing), exact pages,
// page transfer to and from a bytes backing, 16-bit versions, and memory per page at 16M pages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BytesBacking } from './bytes-backing.ts';
import { CompactBacking, CompactPageError } from './compact-backing.ts';
import { GuestMemoryError } from './guest-memory.ts';
import { PAGE_SIZE_BYTES, digestPageBytes } from './page-content.ts';
import { EXACT_PAGE_VERSION, transferPage } from './page-store.ts';

function materialized(mem: CompactBacking, pageIndex: number): Uint8Array {
  const out = new Uint8Array(PAGE_SIZE_BYTES);
  mem.materializePage(pageIndex, out);
  return out;
}

test('compact content: version 0 is zero, bytes 0..7 hold the version, the rest is deterministic', () => {
  const mem = new CompactBacking(8);
  assert.ok(mem.isZeroPage(5));
  assert.deepEqual(materialized(mem, 5), new Uint8Array(PAGE_SIZE_BYTES));
  mem.setVersion(5, 0x01020304);
  const page = materialized(mem, 5);
  assert.deepEqual([...page.subarray(0, 8)], [4, 3, 2, 1, 0, 0, 0, 0]);
  assert.ok(!mem.isZeroPage(5));
  const twin = new CompactBacking(8);
  twin.setVersion(5, 0x01020304);
  assert.deepEqual(materialized(twin, 5), page, 'same (page, version), same bytes');
  twin.setVersion(6, 0x01020304);
  assert.notDeepEqual(materialized(twin, 6).subarray(8), page.subarray(8), 'the page index matters');
  // Pseudo-random: roughly half the bits of the body are set.
  let ones = 0;
  for (let i = 8; i < PAGE_SIZE_BYTES; i++) for (let b = 0; b < 8; b++) ones += (page[i] >> b) & 1;
  assert.ok(Math.abs(ones / ((PAGE_SIZE_BYTES - 8) * 8) - 0.5) < 0.03, `bit balance ${ones}`);
});

test('compact byte reads agree with the materialized page', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 20 }), fc.integer({ min: 1, max: 0xfffffe00 }), fc.array(fc.integer({ min: 0, max: 2 * PAGE_SIZE_BYTES - 8 }), { minLength: 1, maxLength: 10 }), (base, version, offsets) => {
      const mem = new CompactBacking(base + 2);
      mem.setVersion(base, version);
      mem.setVersion(base + 1, (version ^ 0x55) >>> 0);
      const bytes = new Uint8Array(2 * PAGE_SIZE_BYTES);
      mem.copyPageOut(base, bytes, 0);
      mem.copyPageOut(base + 1, bytes, PAGE_SIZE_BYTES);
      const view = new DataView(bytes.buffer);
      const gpa0 = base * PAGE_SIZE_BYTES;
      for (const at of offsets) {
        assert.equal(mem.readU8(gpa0 + at), bytes[at]);
        assert.equal(mem.readLe16(gpa0 + at), view.getUint16(at, true));
        assert.equal(mem.readLe32(gpa0 + at), view.getUint32(at, true));
        assert.equal(mem.readLe64(gpa0 + at), Number(view.getBigUint64(at, true)));
      }
      assert.deepEqual(mem.read(gpa0 + 3, PAGE_SIZE_BYTES + 10), bytes.slice(3, PAGE_SIZE_BYTES + 13));
      assert.deepEqual(mem.read(gpa0, 2 * PAGE_SIZE_BYTES), bytes);
    }),
    { numRuns: 50 },
  );
});

test('compact bumps and byte-0 writes coincide with a byte-0 incrementer for 255 steps', () => {
  const bumped = new CompactBacking(4);
  const incremented = new CompactBacking(4);
  for (let step = 1; step <= 255; step++) {
    bumped.bumpPage(2);
    const gpa = 2 * PAGE_SIZE_BYTES;
    incremented.writeU8(gpa, (incremented.readU8(gpa) + 1) & 0xff);
    assert.equal(incremented.readU8(gpa), step);
    assert.equal(bumped.pageVersion(2), step);
    assert.ok(bumped.pageEquals(incremented, 2), `step ${step}`);
  }
  // The 256th increment wraps byte 0 (version low byte 0, a zero page again); a bump carries.
  incremented.writeU8(2 * PAGE_SIZE_BYTES, 0);
  bumped.bumpPage(2);
  assert.ok(incremented.isZeroPage(2));
  assert.equal(bumped.pageVersion(2), 256);
});

test('compact writes elsewhere keep byte 0, bump the generation, and no-op writes change nothing', () => {
  const mem = new CompactBacking(4);
  const gpa = PAGE_SIZE_BYTES;
  mem.writeU8(gpa, 0x42);
  assert.equal(mem.pageVersion(1), 0x42);
  mem.writeLe32(gpa + 100, 0x12345678);
  assert.equal(mem.pageVersion(1), 0x142);
  assert.equal(mem.readU8(gpa), 0x42, 'byte 0 survives');
  // Writing what is already there is not a change.
  mem.writeLe32(gpa + 200, mem.readLe32(gpa + 200));
  mem.write(gpa + 5, mem.read(gpa + 5, 300));
  assert.equal(mem.pageVersion(1), 0x142);
  // A wider write that changes only byte 0 acts as a byte-0 write.
  mem.writeLe16(gpa, (mem.readU8(gpa + 1) << 8) | 0x55);
  assert.equal(mem.pageVersion(1), 0x155);
  // A write covering byte 0 and more: byte 0 as written, next generation.
  mem.writeLe16(gpa, 0xff07);
  assert.equal(mem.pageVersion(1), 0x207);
  // Writing zeros to a zero page leaves it zero; a whole-page write of zeros makes a zero page.
  mem.write(2 * PAGE_SIZE_BYTES + 10, new Uint8Array(50));
  assert.ok(mem.isZeroPage(2));
  mem.write(gpa, new Uint8Array(PAGE_SIZE_BYTES));
  assert.ok(mem.isZeroPage(1));
  // A write across a page boundary changes both pages.
  mem.writeLe32(2 * PAGE_SIZE_BYTES - 2, 0x01010101);
  assert.equal(mem.pageVersion(1), 0x100);
  assert.equal(mem.pageVersion(2), 0x101);
  assert.throws(() => mem.writeU8(4 * PAGE_SIZE_BYTES, 1), GuestMemoryError);
});

test('compact generations wrap below the reserved top values, for 32- and 16-bit versions', () => {
  for (const bits of [32, 16] as const) {
    const mem = new CompactBacking(2, { versionBits: bits });
    assert.equal(mem.versionLimit, 2 ** bits - 256);
    assert.throws(() => mem.setVersion(0, mem.versionLimit), CompactPageError);
    mem.setVersion(0, mem.versionLimit - 1);
    mem.bumpPage(0);
    assert.equal(mem.pageVersion(0), 256, 'bump past the limit wraps to generation 1');
    mem.setVersion(1, mem.versionLimit - 256 + 9);
    mem.writeU8(PAGE_SIZE_BYTES + 3, 0xaa);
    assert.equal(mem.pageVersion(1), 256 + 9, 'a write in the last generation wraps to generation 1');
    assert.equal(mem.bookkeepingBytes(), 2 * (bits / 8));
  }
});

test('compact writePageFrom accepts representable pages and keeps others as bounded exact pages', () => {
  const source = new CompactBacking(6);
  source.setVersion(1, 77);
  const dest = new CompactBacking(6, { exactPageLimit: 2 });
  const page = new Uint8Array(PAGE_SIZE_BYTES + 3);
  source.copyPageOut(1, page, 3);
  dest.writePageFrom(1, page, 3);
  assert.equal(dest.pageVersion(1), 77);
  dest.writePageFrom(2, new Uint8Array(PAGE_SIZE_BYTES));
  assert.equal(dest.pageVersion(2), 0);
  // Bytes of page 1's version do not represent page 3: they become an exact page.
  dest.writePageFrom(3, page, 3);
  assert.equal(dest.pageVersion(3), EXACT_PAGE_VERSION);
  assert.deepEqual(dest.read(3 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES), page.subarray(3));
  const arbitrary = new Uint8Array(PAGE_SIZE_BYTES).fill(9);
  dest.writePageFrom(4, arbitrary);
  assert.equal(dest.exactPageCount, 2);
  assert.throws(() => dest.writePageFrom(5, arbitrary), (e: unknown) => e instanceof CompactPageError && e.reason === 'not-representable');
  // Making an exact page representable again releases its slot.
  dest.zeroPage(4);
  assert.equal(dest.exactPageCount, 1);
  dest.writePageFrom(5, arbitrary);
  assert.equal(dest.pageDigest(5), digestPageBytes(arbitrary));
});

test('compact exact pages read back byte writes exactly; bumps increment the u64 at 0', () => {
  const mem = new CompactBacking(4);
  mem.setVersion(2, 5);
  const before = materialized(mem, 2);
  mem.makeExact(2);
  assert.ok(mem.isExactPage(2));
  assert.deepEqual(materialized(mem, 2), before, 'makeExact keeps the content');
  const gpa = 2 * PAGE_SIZE_BYTES;
  mem.writeLe32(gpa + 64, 0xcafef00d);
  mem.write(gpa + 1000, Uint8Array.of(1, 2, 3));
  assert.equal(mem.readLe32(gpa + 64), 0xcafef00d);
  assert.deepEqual(mem.read(gpa + 1000, 3), Uint8Array.of(1, 2, 3));
  mem.bumpPage(2);
  assert.equal(mem.readLe64(gpa), 6);
  assert.ok(!mem.isZeroPage(2));
  // A pinned page stays exact through zeroing and representable page writes.
  mem.zeroPage(2);
  assert.ok(mem.isExactPage(2) && mem.isZeroPage(2));
  const other = new CompactBacking(4);
  other.setVersion(2, 9);
  mem.writePageFrom(2, materialized(other, 2));
  assert.ok(mem.isExactPage(2));
  assert.ok(mem.pageEquals(other, 2));
  mem.writeU8(gpa + 3000, 0x77);
  assert.equal(mem.readU8(gpa + 3000), 0x77);
  assert.equal(mem.exactPageCount, 1);
});

test('pages move between compact and bytes backings in both directions', () => {
  const compact = new CompactBacking(8);
  const bytes = new BytesBacking(8 * PAGE_SIZE_BYTES);
  const back = new CompactBacking(8, { versionBits: 16 });
  const scratch = new Uint8Array(PAGE_SIZE_BYTES);
  for (let p = 0; p < 8; p++) if (p % 3 !== 0) compact.setVersion(p, 1000 + p);
  compact.makeExact(7);
  compact.writeU8(7 * PAGE_SIZE_BYTES + 9, 0x99);
  for (let p = 0; p < 8; p++) {
    transferPage(compact, bytes, p, scratch);
    transferPage(bytes, back, p, scratch);
    assert.ok(compact.pageEquals(bytes, p), `compact -> bytes page ${p}`);
    assert.ok(bytes.pageEquals(compact, p));
    assert.ok(back.pageEquals(compact, p), `bytes -> compact page ${p}`);
    assert.equal(back.pageDigest(p), bytes.pageDigest(p));
    assert.equal(compact.isZeroPage(p), bytes.isZeroPage(p));
  }
  assert.equal(back.pageVersion(4), 1004, 'a materialized page comes back as its version');
  assert.equal(back.pageVersion(7), EXACT_PAGE_VERSION);
  // Compact to compact moves the version without bytes.
  const copy = new CompactBacking(8);
  for (let p = 0; p < 8; p++) transferPage(compact, copy, p, scratch);
  for (let p = 0; p < 7; p++) assert.equal(copy.pageVersion(p), compact.pageVersion(p));
  assert.ok(copy.pageEquals(compact, 7));
});

test('a 64 GiB compact guest (16M pages) costs 4 bytes per page', (t) => {
  const pageCount = 16 * 1024 * 1024;
  const before = process.memoryUsage().arrayBuffers;
  const mem = new CompactBacking(pageCount);
  mem.bumpPage(pageCount - 1);
  const measured = process.memoryUsage().arrayBuffers - before;
  assert.equal(mem.bookkeepingBytes() / pageCount, 4);
  // The process-wide counter can only bound from above: a garbage collection during the
  // measurement frees buffers of earlier tests and makes the difference smaller (seen in CI).
  assert.ok(measured < pageCount * 4 * 1.1, `measured ${measured} bytes`);
  t.diagnostic(`CompactBacking 16M pages: ${mem.bookkeepingBytes()} bytes counted, ${measured} bytes of array buffers measured, ${(measured / pageCount).toFixed(3)} B/page`);
  const small = new CompactBacking(pageCount, { versionBits: 16 });
  assert.equal(small.bookkeepingBytes() / pageCount, 2);
});

test('zeroPages: the same store as zeroPage on each page, across spans and with an exact page', () => {
  const make = (): CompactBacking => {
    const s = new CompactBacking(40000 * 4096);
    for (const p of [0, 5, 16383, 16384, 20000, 39999]) s.setVersion(p, 7);
    const odd = new Uint8Array(4096);
    odd[100] = 1;
    odd[4000] = 2;
    s.writePageFrom(17000, odd, 0); // an exact page
    return s;
  };
  const ranged = make();
  const single = make();
  ranged.zeroPages(3, 39999);
  for (let p = 3; p < 39999; p++) single.zeroPage(p);
  for (let p = 0; p < 40000; p++) assert.equal(ranged.pageVersion(p), single.pageVersion(p), `page ${p}`);
  assert.equal(ranged.isZeroPage(17000), true);
  assert.equal(ranged.pageVersion(39999), 7);
  assert.equal(ranged.pageVersion(0), 7);
});
