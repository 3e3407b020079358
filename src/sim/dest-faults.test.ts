import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DestinationFaults, HUGE_PAGE_PAGES } from './dest-faults.ts';

test('the first write into each 2 MiB region costs one fault; later writes into it cost nothing', () => {
  const faults = new DestinationFaults(4 * HUGE_PAGE_PAGES, 3_000_000);
  faults.onWrite(0);
  faults.onWrite(511); // same region
  faults.onWrite(512); // the second region
  assert.equal(faults.takeStallNs(), 2 * 3_000_000);
  assert.equal(faults.takeStallNs(), 0, 'taking resets the pending count');
  faults.onWrite(1); // already written
  faults.onWrite(4 * HUGE_PAGE_PAGES - 1); // the last region
  assert.equal(faults.takeStallNs(), 3_000_000);
  assert.equal(faults.faults, 3);
  assert.equal(faults.stalledNs, 3 * 3_000_000);
});

test('a negative cost is refused', () => {
  assert.throws(() => new DestinationFaults(512, -1), /must be >= 0/);
});
