// Tests for DirtyTrackingMemory: every write marks exactly the pages it touches (both pages for
// a write across a boundary, every page for a long write), reads mark nothing, page-level
// writers mark their page, and the same holds over a compact backing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitmap } from '../lib/bitmap.ts';
import { BytesBacking } from './bytes-backing.ts';
import { CompactBacking } from './compact-backing.ts';
import { DirtyLog } from './dirty-log.ts';
import { DirtyTrackingMemory } from './dirty-tracking-memory.ts';
import { GuestMemoryError } from './guest-memory.ts';
import { PAGE_SIZE_BYTES } from './page-content.ts';
import { MemoryConfigError } from './page-store.ts';

const PAGES = 6;

function dirtyPages(log: DirtyLog): number[] {
  const bits = new Bitmap(log.pageCount);
  log.sync(bits);
  const out: number[] = [];
  for (let p = bits.nextSet(0); p !== -1; p = bits.nextSet(p + 1)) out.push(p);
  return out;
}

type Write = { width: 1 | 2 | 4 | 8 | 'bytes'; gpa: number; length: number };

const writeArb: fc.Arbitrary<Write> = fc.record({
  width: fc.constantFrom<Write['width']>(1, 2, 4, 8, 'bytes'),
  gpa: fc.oneof(fc.integer({ min: 0, max: PAGES * PAGE_SIZE_BYTES - 8 }), fc.integer({ min: 1, max: PAGES - 2 }).map((p) => p * PAGE_SIZE_BYTES - 3)),
  length: fc.integer({ min: 1, max: 2 * PAGE_SIZE_BYTES + 10 }),
});

test('every write marks exactly the pages it touches, over both backings', () => {
  fc.assert(
    fc.property(fc.boolean(), fc.array(writeArb, { minLength: 1, maxLength: 8 }), (compact, writes) => {
      const backing = compact ? new CompactBacking(PAGES) : new BytesBacking(PAGES * PAGE_SIZE_BYTES);
      const memory = new DirtyTrackingMemory(backing, new DirtyLog(PAGES));
      const expected = new Set<number>();
      for (const w of writes) {
        const length = w.width === 'bytes' ? Math.min(w.length, memory.sizeBytes - w.gpa) : w.width;
        if (w.width === 1) memory.writeU8(w.gpa, 0xa5);
        else if (w.width === 2) memory.writeLe16(w.gpa, 0xa5a5);
        else if (w.width === 4) memory.writeLe32(w.gpa, 0xa5a5a5a5);
        else if (w.width === 8) memory.writeLe64(w.gpa, 0xa5a5a5a5a5);
        else memory.write(w.gpa, new Uint8Array(length).fill(0xa5));
        const first = Math.floor(w.gpa / PAGE_SIZE_BYTES);
        const last = Math.floor((w.gpa + length - 1) / PAGE_SIZE_BYTES);
        for (let p = first; p <= last; p++) expected.add(p);
      }
      memory.readLe64(0);
      memory.read(0, memory.sizeBytes);
      assert.deepEqual(dirtyPages(memory.log), [...expected].sort((a, b) => a - b));
    }),
    { numRuns: 100 },
  );
});

test('page-level writers mark their page; reads and failed writes mark nothing', () => {
  const memory = new DirtyTrackingMemory(new BytesBacking(PAGES * PAGE_SIZE_BYTES), new DirtyLog(PAGES));
  memory.readU8(0);
  memory.readLe16(PAGE_SIZE_BYTES - 1);
  memory.readLe32(10);
  assert.throws(() => memory.writeLe32(PAGES * PAGE_SIZE_BYTES - 2, 1), GuestMemoryError);
  memory.write(100, new Uint8Array(0));
  assert.deepEqual(dirtyPages(memory.log), []);
  memory.writePageFrom(1, new Uint8Array(PAGE_SIZE_BYTES).fill(3));
  memory.zeroPage(3);
  memory.bumpPage(5);
  assert.deepEqual(dirtyPages(memory.log), [1, 3, 5]);
  assert.equal(memory.readU8(PAGE_SIZE_BYTES + 7), 3);
  assert.equal(memory.readLe64(5 * PAGE_SIZE_BYTES), 1);
  assert.equal(DirtyTrackingMemory.gpaOfPage(5), 5 * PAGE_SIZE_BYTES);
});

test('DirtyTrackingMemory refuses a log of the wrong size', () => {
  assert.throws(() => new DirtyTrackingMemory(new CompactBacking(4), new DirtyLog(5)), MemoryConfigError);
});
