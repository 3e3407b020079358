// Per-vCPU page caches (page-cache.ts), with both sides in one thread over one shared buffer:
// the oracle is the buddy allocator's own accounting (allocated and free page counts) and the
// written map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BuddyAllocator } from '../guest/allocator/buddy.ts';
import { ChurnWorkload } from '../guest/workloads/churn.ts';
import { ArrayPageTarget } from '../guest/workloads/array-target.ts';
import { Prng } from '../lib/prng.ts';
import { createPageCacheBuffer, PageCacheHost, REFILL_WATERMARKS, refillWatermarks, VcpuPageCache } from './page-cache.ts';

const PAGES = 65536;
const WATERMARKS = refillWatermarks(PAGES);

function setup(): { allocator: BuddyAllocator; host: PageCacheHost; cache: VcpuPageCache } {
  const allocator = new BuddyAllocator({ pageCount: PAGES });
  const buffer = createPageCacheBuffer(PAGES);
  return { allocator, host: new PageCacheHost(allocator, [buffer]), cache: new VcpuPageCache(buffer) };
}

test('watermarks: the full table from 2 GiB up, proportionally fewer below, at least one block', () => {
  assert.deepEqual(refillWatermarks(524288), REFILL_WATERMARKS);
  assert.deepEqual(refillWatermarks(4 * 524288), REFILL_WATERMARKS);
  assert.deepEqual(refillWatermarks(65536), [8, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(refillWatermarks(1024), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
});

test('a service fills every order to its watermark from the buddy allocator', () => {
  const { allocator, host } = setup();
  host.service();
  const stocked = WATERMARKS.reduce((sum, n, order) => sum + n * 2 ** order, 0);
  assert.equal(allocator.allocatedPages, stocked);
  assert.equal(host.blocksRefilled, WATERMARKS.reduce((a, b) => a + b, 0));
  host.service();
  assert.equal(allocator.allocatedPages, stocked, 'a full cache takes nothing more');
});

test('blocks taken by the vCPU are allocated; freed ones go back to the allocator at the next service', () => {
  const { allocator, host, cache } = setup();
  host.service();
  const stocked = allocator.allocatedPages;
  const a = cache.allocReclaiming(3);
  const b = cache.allocReclaiming(0);
  assert.ok(a >= 0 && b >= 0 && a % 8 === 0);
  assert.equal(allocator.allocatedOrderAt(a), 3);
  assert.equal(allocator.allocatedOrderAt(b), 0);
  cache.markWritten(a + 5);
  assert.equal(host.isWritten(a + 5), true);
  cache.free(a, 3);
  assert.equal(host.isWritten(a + 5), false, 'freeing clears the written map');
  assert.equal(allocator.isAllocated(a), true, 'the buddy free waits for the service');
  host.service();
  assert.equal(host.blocksFreed, 1);
  // The service freed `a`, then refilled orders 3 and 0: only `b` is held beyond the stock.
  assert.equal(allocator.allocatedPages, stocked + 1);
});

test('an empty ring fails the allocation (after its bounded wait)', () => {
  const { cache } = setup();
  assert.equal(cache.allocReclaiming(10), -1);
  assert.equal(cache.misses, 1);
});

test('churn over a cache keeps the allocator consistent: allocated = stock + held by the workload', () => {
  const { allocator, host, cache } = setup();
  const churn = new ChurnWorkload({ allocator: cache, usedTargetBytes: 64 * 1024 * 1024, rateBytesPerS: 4096 * 10_000, lifetimeMeanNs: 5e6 }, new Prng(3));
  const target = new ArrayPageTarget(PAGES);
  for (let t = 1; t <= 200; t++) {
    host.service();
    churn.step(t * 1e6, target);
    cache.flush();
  }
  host.service();
  assert.ok(churn.blocksFreed > 100, `blocks freed: ${churn.blocksFreed}`);
  const stock = WATERMARKS.reduce((sum, n, order) => sum + n * 2 ** order, 0);
  assert.equal(allocator.allocatedPages, stock + churn.usedPages);
  assert.equal(allocator.freePages + allocator.allocatedPages, PAGES);
});
