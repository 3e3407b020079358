// Tests of destination postcopy blocktime (facts §3.9), computed by hand: per-vCPU sums, and a
// total that only counts the intervals during which every vCPU was blocked at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostcopyBlocktime } from './blocktime.ts';

const MS = 1_000_000;

test('blocktime: the total counts only the interval when all vCPUs were blocked (hand computed)', () => {
  const bt = new PostcopyBlocktime(2, 1000 * MS);
  bt.faultBegin(0, 0xa000, 1010 * MS); // vCPU 0 blocked from 10 ms
  bt.faultBegin(1, 0xb000, 1020 * MS); // vCPU 1 blocked from 20 ms: all blocked from 20
  assert.equal(bt.blockedVcpuCount(), 2);
  bt.pagePlaced(0xa000, 1050 * MS); // vCPU 0 += 40; all were down → total += 50 − 20
  bt.pagePlaced(0xb000, 1070 * MS); // vCPU 1 += 50; only one was down → total unchanged
  assert.equal(bt.totalBlocktimeMs(), 30);
  assert.deepEqual(bt.perVcpuBlocktimeMs(), [40, 50]);
  assert.equal(bt.blockedVcpuCount(), 0);
  assert.deepEqual(bt.toQueryFields(), { 'postcopy-blocktime': 30, 'postcopy-vcpu-blocktime': [40, 50] });
});

test('blocktime: one page releasing several vCPUs, a page that was already there, a lone vCPU', () => {
  const shared = new PostcopyBlocktime(2, 0);
  shared.faultBegin(0, 0, 10 * MS); // page 0 is tracked like any other
  shared.faultBegin(1, 0, 15 * MS);
  shared.pagePlaced(0, 40 * MS);
  assert.deepEqual([shared.totalBlocktimeMs(), ...shared.perVcpuBlocktimeMs()], [25, 30, 25]);

  const late = new PostcopyBlocktime(1, 0);
  late.faultBegin(0, 7, 5 * MS, true);
  late.pagePlaced(7, 9 * MS);
  assert.deepEqual([late.totalBlocktimeMs(), ...late.perVcpuBlocktimeMs(), late.blockedVcpuCount()], [0, 0, 0]);

  const single = new PostcopyBlocktime(1, 0);
  single.faultBegin(0, 1, 100 * MS);
  single.pagePlaced(2, 110 * MS); // another page: vCPU stays blocked
  single.pagePlaced(1, 130 * MS);
  assert.deepEqual([single.totalBlocktimeMs(), ...single.perVcpuBlocktimeMs()], [30, 30]);
});
