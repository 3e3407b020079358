// Tests for RamBlockList: QEMU's RAM list order (largest max length first, ties in insertion
// order) on the block set a QEMU 7.2 `-M pc -m 128M` guest has, address lookups in both
// directions, and rejection of malformed lists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RamBlockError, RamBlockList, type RamBlockSpec } from './ram-block.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

test('blocks are ordered as QEMU orders its RAM list (pc machine, 128M)', () => {
  // Offsets are our flat layout; the used and max lengths are QEMU 7.2's for `-M pc -m 128M`.
  const specs: RamBlockSpec[] = [
    { name: '/rom@etc/acpi/rsdp', offsetBytes: 0, sizeBytes: 4 * KiB, maxSizeBytes: 4 * KiB },
    { name: 'pc.ram', offsetBytes: 4 * MiB, sizeBytes: 128 * MiB },
    { name: 'pc.bios', offsetBytes: 132 * MiB, sizeBytes: 256 * KiB },
    { name: '/rom@etc/table-loader', offsetBytes: 133 * MiB, sizeBytes: 4 * KiB, maxSizeBytes: 64 * KiB },
    { name: 'pc.rom', offsetBytes: 134 * MiB, sizeBytes: 128 * KiB },
    { name: '/rom@etc/acpi/tables', offsetBytes: 135 * MiB, sizeBytes: 128 * KiB, maxSizeBytes: 2 * MiB },
  ];
  const list = new RamBlockList(specs);
  assert.deepEqual(
    list.blocks.map((b) => b.name),
    ['pc.ram', '/rom@etc/acpi/tables', 'pc.bios', 'pc.rom', '/rom@etc/table-loader', '/rom@etc/acpi/rsdp'],
  );
  assert.equal(list.totalBytes, 128 * MiB + 256 * KiB + 128 * KiB + 128 * KiB + 8 * KiB);
  assert.equal(list.endBytes, 137 * MiB);
});

test('blocks of equal max length keep insertion order', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 12 }), (sizes) => {
      let offset = 0;
      const specs = sizes.map((pages, i) => {
        const spec = { name: `b${i}`, offsetBytes: offset, sizeBytes: pages * 4096 };
        offset += pages * 4096;
        return spec;
      });
      const names = new RamBlockList(specs).blocks.map((b) => b.name);
      const expected = specs.map((s, i) => ({ s, i })).sort((a, b) => b.s.sizeBytes - a.s.sizeBytes || a.i - b.i).map((x) => x.s.name);
      assert.deepEqual(names, expected);
    }),
  );
});

test('gpa <-> (block, offset) lookups', () => {
  const list = new RamBlockList([
    { name: 'ram', offsetBytes: 0, sizeBytes: 16 * MiB },
    { name: 'vmem', offsetBytes: 32 * MiB, sizeBytes: 8 * MiB, maxSizeBytes: 16 * MiB },
  ]);
  assert.equal(list.byName('ram')?.pageCount, 4096);
  assert.equal(list.byName('nope'), undefined);
  assert.throws(() => list.requireByName('nope'), (e: unknown) => e instanceof RamBlockError && e.reason === 'unknown-block');
  assert.equal(list.blockAt(0)?.name, 'ram');
  assert.equal(list.blockAt(16 * MiB - 1)?.name, 'ram');
  assert.equal(list.blockAt(16 * MiB), undefined, 'the gap between blocks');
  assert.equal(list.blockAt(40 * MiB), undefined, 'reserved but unused tail of vmem');
  assert.deepEqual(list.locate(32 * MiB + 5), { block: list.byName('vmem'), offsetBytes: 5 });
  assert.equal(list.toGpa('vmem', 4096), 32 * MiB + 4096);
  assert.equal(list.toPageIndex('vmem', 1), 8193);
  assert.equal(list.blockOfPage(8192)?.name, 'vmem');
  assert.throws(() => list.toGpa('vmem', 8 * MiB), (e: unknown) => e instanceof RamBlockError && e.reason === 'out-of-range');
  assert.equal(RamBlockList.single('ram', 16 * MiB).blocks[0].sizeBytes, 16 * MiB);
});

test('malformed block lists are rejected with a reason', () => {
  const reason = (specs: RamBlockSpec[]): string => {
    try {
      new RamBlockList(specs);
      return 'accepted';
    } catch (e) {
      assert.ok(e instanceof RamBlockError);
      return e.reason;
    }
  };
  assert.equal(reason([{ name: '', offsetBytes: 0, sizeBytes: 4096 }]), 'bad-name');
  assert.equal(reason([{ name: 'x'.repeat(256), offsetBytes: 0, sizeBytes: 4096 }]), 'bad-name');
  assert.equal(reason([{ name: 'x'.repeat(255), offsetBytes: 0, sizeBytes: 4096 }]), 'accepted');
  assert.equal(reason([{ name: 'a', offsetBytes: 0, sizeBytes: 4096 }, { name: 'a', offsetBytes: 4096, sizeBytes: 4096 }]), 'duplicate-name');
  assert.equal(reason([{ name: 'a', offsetBytes: 100, sizeBytes: 4096 }]), 'bad-geometry');
  assert.equal(reason([{ name: 'a', offsetBytes: 0, sizeBytes: 0 }]), 'bad-geometry');
  assert.equal(reason([{ name: 'a', offsetBytes: 0, sizeBytes: 8192, maxSizeBytes: 4096 }]), 'bad-geometry');
  assert.equal(reason([{ name: 'a', offsetBytes: 0, sizeBytes: 4096, maxSizeBytes: 8192 }, { name: 'b', offsetBytes: 4096, sizeBytes: 4096 }]), 'overlap');
});
