/**
 * The control block's fault rings: each recorded fault comes back with its latency, start and
 * page, in order, from a second view over the same shared buffers (as the main thread reads
 * what a vCPU worker wrote); the rings of two vCPUs do not overlap.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STAT_FAULTS, STAT_FAULT_WAIT_NS_MAX, VcpuControl } from './vcpu-control.ts';

test('fault records: latency, start and page per fault, per vCPU, seen through shared buffers', () => {
  const main = new VcpuControl(2);
  const worker = new VcpuControl(2, { control: main.controlBuffer, stats: main.statsBuffer });
  worker.recordFaultLatency(0, 500, 1_000, 42);
  worker.recordFaultLatency(0, 700, 9_000, 43);
  worker.recordFaultLatency(1, 300, 2_000, 7);
  assert.deepEqual(main.faultRecords(0), [
    { latencyNs: 500, startNs: 1_000, page: 42 },
    { latencyNs: 700, startNs: 9_000, page: 43 },
  ]);
  assert.deepEqual(main.faultRecords(1), [{ latencyNs: 300, startNs: 2_000, page: 7 }]);
  assert.deepEqual(main.faultLatencies(0), [500, 700]);
  assert.equal(main.stat(0, STAT_FAULTS), 2);
  assert.equal(main.stat(0, STAT_FAULT_WAIT_NS_MAX), 700);
});
