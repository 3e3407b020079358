// The fault tracker: waits per vCPU, the REQ_PAGES / REQ_PAGES_ID naming rule, release of
// every waiter of a page, stall accounting, release at the end, and blocktime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from '../../lib/assert.ts';
import { decodeReturnPath } from '../../format/return-path.ts';
import { concatBytes } from '../../lib/bytes.ts';
import { FaultTracker } from './fault-tracker.ts';

const MS = 1_000_000;

test('fault tracker: requests name the block only when it changes', () => {
  const t = new FaultTracker(1);
  const bytes = [t.request('a', 0x1000, 4096), t.request('a', 0x2000, 4096), t.request('b', 0, 4096), t.request('a', 0x3000, 4096)];
  assert.deepEqual(
    decodeReturnPath(concatBytes(bytes)).map((m) => `${m.kind} ${'blockName' in m ? m.blockName : ''}`),
    ['req-pages-id a', 'req-pages a', 'req-pages-id b', 'req-pages-id a'],
  );
  assert.equal(t.requestsSent, 4);
  assert.equal(bytes[1].length, 16); // header 4 + be64 + be32
});

test('fault tracker: a page releases all its waiters; stalls are per vCPU; nothing else is touched', () => {
  const t = new FaultTracker(3);
  assert.equal(t.hasWaiters(5), false);
  assert.equal(t.block(0, 5, 10 * MS), false);
  assert.equal(t.block(1, 5, 15 * MS), true);
  assert.equal(t.block(2, 6, 16 * MS), false);
  assert.throws(() => t.block(0, 7, 17 * MS), AssertionError); // a waiting vCPU cannot fault
  assert.equal(t.release(4, 18 * MS), 0);
  assert.equal(t.release(5, 30 * MS), 2);
  assert.equal(t.hasWaiters(5), false);
  assert.deepEqual(t.outstanding(), [{ vcpuIndex: 2, pageIndex: 6, sinceNs: 16 * MS }]);
  assert.deepEqual(t.maxStallNsPerVcpu(), [20 * MS, 15 * MS, 0]);
  assert.deepEqual(t.releaseAll(100 * MS), [6]);
  assert.deepEqual(t.outstanding(), []);
  assert.equal(t.releasedAtEnd, 1);
  assert.equal(t.maxStallNsOverall(), 84 * MS);
  assert.deepEqual(t.totalStallNsPerVcpu(), [20 * MS, 15 * MS, 84 * MS]);
  assert.equal(t.isWaiting(2), false);
  assert.throws(() => t.block(3, 1, 0), AssertionError);
});

test('fault tracker: blocktime only once enabled; a present-page fault begins and ends at once', () => {
  const t = new FaultTracker(2);
  assert.equal(t.blocktimeFields(), null);
  t.enableBlocktime(1000 * MS);
  t.notePresentFault(1, 3, 1005 * MS);
  t.block(0, 8, 1010 * MS);
  t.block(1, 9, 1020 * MS);
  t.release(8, 1050 * MS);
  t.release(9, 1070 * MS);
  assert.deepEqual(t.blocktimeFields(), { 'postcopy-blocktime': 30, 'postcopy-vcpu-blocktime': [40, 50] });
  assert.equal(t.faults, 3);
  assert.equal(t.faultsWaited, 2);
});
