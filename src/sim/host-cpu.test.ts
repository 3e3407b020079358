// The shared host (host-cpu.ts) and QEMU's bitmap_mutex against hints (hint-gate.ts).
// Acceptance criteria: threads share the cores evenly once there are more busy ones than cores;
// the stream's bandwidth follows the share from the moment it changes; pages the guest wrote
// again cost the rescan cost once each; the switchover charge delays the sender; a hint waits
// while an iteration holds the lock and is released when it expires or ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostCpu } from './host-cpu.ts';
import { LinkDirection } from './link.ts';
import { Scheduler } from './scheduler.ts';

test('two cores: the stream alone runs at full speed, with a hinting vCPU each thread gets 2/3', () => {
  const cpu = new HostCpu({ cores: 2, bandwidthBytesPerSec: 1e9, scanNsPerPage: 300 });
  cpu.update(0, true, false);
  assert.equal(cpu.share(), 1);
  cpu.update(1, false, true);
  assert.equal(cpu.share(), 1);
  cpu.update(2, true, true);
  assert.equal(cpu.share(), 2 / 3);
  assert.equal(cpu.scanCostNs(10), 4500);
  assert.equal(cpu.changes, 1);
});

test('the stream bandwidth follows the share from the change on', () => {
  const scheduler = new Scheduler({ seed: 1 });
  const stream = new LinkDirection<Uint8Array>(scheduler, 's', { bandwidthBytesPerSec: 1e9, latencyNs: 0 });
  const cpu = new HostCpu({ cores: 2, bandwidthBytesPerSec: 1e9, scanNsPerPage: 0 });
  cpu.attach(stream);
  cpu.update(0, true, true);
  // 3000 bytes at 2/3 GB/s: 4500 ns.
  const sent = stream.send(new Uint8Array(0), 3000);
  assert.ok(sent.ok && sent.serializedAtNs === 4500, JSON.stringify(sent));
});

test('pages written again cost the rescan cost once each, the first ones examined', () => {
  const cpu = new HostCpu({ cores: 2, bandwidthBytesPerSec: 1e9, scanNsPerPage: 300, rescanNsPerPage: 700 });
  cpu.onSync(5);
  assert.equal(cpu.scanCostNs(3), 2100);
  assert.equal(cpu.scanCostNs(4), 2 * 700 + 2 * 300);
  assert.equal(cpu.scanCostNs(1), 300);
});

test('a switchover charge keeps the sender busy', () => {
  const scheduler = new Scheduler({ seed: 1 });
  const stream = new LinkDirection<Uint8Array>(scheduler, 's', { bandwidthBytesPerSec: 1e9, latencyNs: 0 });
  assert.equal(stream.chargeSender(2_000_000), 2_000_000);
  const sent = stream.send(new Uint8Array(0), 1000);
  assert.ok(sent.ok && sent.serializedAtNs === 2_001_000);
});
