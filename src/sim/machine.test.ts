// The guest's boot layout: `kernel-data-layout: spread` puts the boot data's whole 4 MiB
// blocks evenly through the lower `kernel-data-span` of RAM, the rest low in reserved, and
// leaves the guest as much free memory as `low` does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMachine } from './machine.ts';
import { loadScenario } from './scenario/scenario.ts';

const BLOCK_PAGES = 1024;

function machineOf(layout: string): ReturnType<typeof buildMachine> {
  // 256 MiB: reserved 16 MiB (4 MiB of it low data in the low layout), 8 MiB + 8 KiB of boot data.
  const kernelData = 8 * 1024 * 1024 + 8192;
  const reserved = layout.endsWith('low') ? 16 * 1024 * 1024 : 16 * 1024 * 1024 - 8 * 1024 * 1024;
  const yaml = `guest: { memory: 256M, backing: compact, reserved: ${reserved}, kernel-data: ${kernelData}, ${layout} }\n`;
  return buildMachine(loadScenario(yaml), 1, () => {});
}

function dataPages(m: ReturnType<typeof buildMachine>): number[] {
  const out: number[] = [];
  for (let p = 0; p < m.pageCount; p++) if (!m.sourceBacking.isZeroPage(p)) out.push(p);
  return out;
}

test('spread boot data: whole 4 MiB blocks evenly through the span, the rest low, the same free memory', () => {
  const low = machineOf('kernel-data-layout: low');
  const spread = machineOf('kernel-data-layout: spread, kernel-data-span: 0.5');
  const lowData = dataPages(low).filter((p) => p < low.kernelPages.start);
  const spreadData = dataPages(spread).filter((p) => p < spread.kernelPages.start || p >= spread.kernelPages.end);
  assert.equal(lowData.length, 2050, '8 MiB + 8 KiB from page 0');
  assert.equal(spreadData.length, 2050);
  // Reserved is 2048 pages (8 MiB, so free blocks start at block 2); 2 whole blocks over blocks
  // [2, 32) (the lower half of 64), at 2 + floor((i + 0.5) * 30 / 2) = 9 and 24.
  const high = spreadData.filter((p) => p >= spread.kernelPages.end);
  assert.deepEqual([high[0], high[BLOCK_PAGES - 1], high[BLOCK_PAGES], high.at(-1)], [9 * BLOCK_PAGES, 10 * BLOCK_PAGES - 1, 24 * BLOCK_PAGES, 25 * BLOCK_PAGES - 1]);
  assert.equal(high.length, 2 * BLOCK_PAGES);
  assert.deepEqual(spreadData.filter((p) => p < spread.kernelPages.start), [0, 1], 'the 8 KiB left over lie low');
  assert.equal(spread.guest.allocator.freePages, low.guest.allocator.freePages, 'the guest keeps as much memory either way');
  assert.equal(spread.guest.allocator.isFree(9 * BLOCK_PAGES), false);
});

test('spread boot data that does not fit in the span is a clear error', () => {
  const yaml = 'guest: { memory: 64M, backing: compact, reserved: 8M, kernel-data: 48M, kernel-data-layout: spread, kernel-data-span: 0.5 }\n';
  assert.throws(() => buildMachine(loadScenario(yaml), 1, () => {}), /guest.kernel-data: 12 blocks of 4 MiB do not fit in the 6 free blocks/);
});

test('kernel-data-low keeps that much boot data low; only the rest is spread, and free memory is the same', () => {
  const low = machineOf('kernel-data-layout: low');
  // 4 MiB of the 8 MiB + 8 KiB stay low: reserved 12 MiB (low data 4 MiB + 8 KiB, then the rings).
  const yaml = `guest: { memory: 256M, backing: compact, reserved: ${12 * 1024 * 1024}, kernel-data: ${8 * 1024 * 1024 + 8192}, kernel-data-layout: spread, kernel-data-span: 0.5, kernel-data-low: 4M }\n`;
  const m = buildMachine(loadScenario(yaml), 1, () => {});
  const data = dataPages(m).filter((p) => p < m.kernelPages.start || p >= m.kernelPages.end);
  const lowData = data.filter((p) => p < m.kernelPages.start);
  assert.deepEqual([lowData.length, lowData[0], lowData.at(-1)], [BLOCK_PAGES + 2, 0, BLOCK_PAGES + 1]);
  // One block spread over blocks [3, 32): at 3 + floor(0.5 * 29) = 17.
  const high = data.filter((p) => p >= m.kernelPages.end);
  assert.deepEqual([high.length, high[0], high.at(-1)], [BLOCK_PAGES, 17 * BLOCK_PAGES, 18 * BLOCK_PAGES - 1]);
  assert.equal(m.guest.allocator.freePages, low.guest.allocator.freePages);
});

test('kernel-data-low beyond reserved is a clear error', () => {
  const yaml = 'guest: { memory: 64M, backing: compact, reserved: 4M, kernel-data: 16M, kernel-data-layout: spread, kernel-data-low: 8M }\n';
  assert.throws(() => loadScenario(yaml), /guest.kernel-data: must leave the last MiB of guest.reserved \(the rings\) free/);
});

test('fragmented-zero: those pages stay out of the allocator, spread over the fragmented blocks below each pinned page', () => {
  // 64 MiB, reserved 8 MiB (blocks 0-1): fragmented blocks 2, 3 and 4, each with its last page pinned.
  const base = 'guest: { memory: 64M, backing: compact, reserved: 8M, fragmented: 12M';
  const plain = buildMachine(loadScenario(`${base} }\n`), 1, () => {});
  const m = buildMachine(loadScenario(`${base}, fragmented-zero: ${5 * 4096} }\n`), 1, () => {});
  assert.equal(m.guest.allocator.freePages, plain.guest.allocator.freePages - 5);
  // 5 pages over 3 blocks: floor((i + 1) * 5 / 3) - floor(i * 5 / 3) = 1, 2, 2.
  const taken = (first: number, end: number) => {
    const out: number[] = [];
    for (let p = first; p < end; p++) if (!m.guest.allocator.isFree(p)) out.push(p);
    return out;
  };
  assert.deepEqual(taken(2 * BLOCK_PAGES, 5 * BLOCK_PAGES), [3 * BLOCK_PAGES - 2, 3 * BLOCK_PAGES - 1, 4 * BLOCK_PAGES - 3, 4 * BLOCK_PAGES - 2, 4 * BLOCK_PAGES - 1, 5 * BLOCK_PAGES - 3, 5 * BLOCK_PAGES - 2, 5 * BLOCK_PAGES - 1]);
  assert.deepEqual(dataPages(m).filter((p) => p >= 2 * BLOCK_PAGES), [3 * BLOCK_PAGES - 1, 4 * BLOCK_PAGES - 1, 5 * BLOCK_PAGES - 1], 'only the pinned pages hold data');
  assert.throws(() => buildMachine(loadScenario(`${base}, fragmented-zero: ${3 * 1024 * 4096} }\n`), 1, () => {}), /guest.fragmented-zero: 3072 pages do not fit in the free pages of 3 fragmented blocks/);
});
