// Paced free page hinting (the guest lab's calibration): a round runs on the guest's clock,
// each block costs its block time plus, with init_on_alloc, its zeroing. Acceptance criteria:
// a block is reported only when its time is over; init_on_alloc zeroes the block and marks it
// dirty before it is reported; a page that held data zeroes faster than a never-written one;
// the CPU share slows the clock; without pacing the block budget applies as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrecopyNotifyReason as R } from '../../devices/balloon/free-page-hint.ts';
import { Bitmap } from '../../lib/bitmap.ts';
import { MiB, NS_PER_MS } from '../../lib/units.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import type { HintPacing } from './free-page-hint-worker.ts';
import { HINT_BLOCK_PAGES } from './free-page-hint-worker.ts';
import { TestHost } from './test-host.ts';

const RUNNING = { vmRunning: true, postcopyRam: false };
const PACE: HintPacing = { blockNs: 1 * NS_PER_MS, zeroTouchedPageNs: 1_000, zeroFreshPageNs: 5_000 };

function host(options: { initOnAlloc?: boolean; cpuShare?: () => number } = {}): TestHost {
  const memoryBytes = 64 * MiB;
  return new TestHost({
    memoryBytes,
    backing: new CompactBacking(memoryBytes / 4096),
    guest: { kernelReservedBytes: 4 * MiB, balloon: { hintPacing: PACE, initOnAlloc: options.initOnAlloc ?? false, cpuShare: options.cpuShare ?? null } },
  });
}

function startRound(h: TestHost): void {
  h.balloon!.precopyNotify(R.BeforeBitmapSync, RUNNING);
  h.balloon!.precopyNotify(R.AfterBitmapSync, RUNNING);
}

test('without init_on_alloc a block is reported once its block time is over', () => {
  const h = host();
  startRound(h);
  h.tick(); // The round starts (cmd id) and the first block begins.
  assert.equal(h.hintCalls, 0);
  h.tick();
  assert.equal(h.hintCalls, 1, 'one block per 1 ms');
  for (let i = 0; i < 5; i++) h.tick();
  assert.equal(h.hintCalls, 6);
});

test('init_on_alloc zeroes each block page by page and logs it dirty; never-written pages cost more than written ones', () => {
  const h = host({ initOnAlloc: true });
  const memory = h.guest.memory;
  // Write data into the first free 4 MiB block (pages 1024..2047), leave the next one fresh.
  for (let p = 1024; p < 2048; p++) memory.bumpPage(p);
  memory.log.clearRange(0, memory.log.pageCount);
  startRound(h);
  const dirty = new Bitmap(memory.log.pageCount);
  // The driver's clock starts at the first tick: the block is allocated, nothing zeroed yet.
  h.tick();
  memory.log.sync(dirty);
  assert.equal(dirty.countRange(1024, 2048), 0, 'no page\'s time has passed');
  // 1 ms of driver time at 1 µs a touched page: the first 1,000 pages, in order (a sync between
  // finds the block partly written, as QEMU's trace of the lab's end game does).
  h.tick();
  memory.log.sync(dirty);
  assert.equal(dirty.countRange(1024, 2048), 1000, 'a partly zeroed block');
  assert.equal(dirty.countRange(1024, 2024), 1000, 'zeroed from its first page up');
  assert.ok(memory.backing.isZeroPage(1500));
  assert.ok(!memory.backing.isZeroPage(2040), 'the last pages still hold data');
  // Touched block: 1024 × 1 µs of zeroing, then 1 ms for the block: 2.02 ms.
  h.tick();
  memory.log.sync(dirty);
  assert.equal(dirty.countRange(1024, 2048), HINT_BLOCK_PAGES, 'zeroed whole');
  assert.equal(h.hintCalls, 0, '2 ms are not enough');
  h.tick();
  assert.equal(h.hintCalls, 1);
  // The next block is fresh: 1 ms + 1024 × 5 µs ≈ 6.1 ms, done at 8.14 ms of driver time.
  for (let i = 0; i < 5; i++) h.tick();
  assert.equal(h.hintCalls, 1, 'still zeroing the fresh block');
  h.tick();
  assert.equal(h.hintCalls, 2);
});

test('a CPU share of one half doubles the time per block', () => {
  const h = host({ cpuShare: () => 0.5 });
  startRound(h);
  for (let i = 0; i < 11; i++) h.tick();
  assert.equal(h.hintCalls, 5, '10 ms of guest time at half speed: 5 blocks of 1 ms');
});

test('without pacing the block budget per step applies as before', () => {
  const memoryBytes = 64 * MiB;
  const h = new TestHost({ memoryBytes, backing: new CompactBacking(memoryBytes / 4096), guest: { kernelReservedBytes: 4 * MiB, balloon: { hintBlocksPerStep: 3 } } });
  startRound(h);
  h.tick();
  assert.equal(h.hintCalls, 3);
});
