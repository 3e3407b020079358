/**
 * host.advised-device-load: at a precopy completion after a postcopy advise, the destination
 * loads its devices that much longer before it sends SHUT, and the source's downtime waits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenario } from './scenario/scenario.ts';
import { runScenario } from './runner.ts';

function run(postcopyRam: boolean, loadMs: number) {
  const yaml = [
    'guest: { memory: 64M }',
    'workload: { kind: idle }',
    'link: { bandwidth: 1G, latency: 25us }',
    `host: { cores: 2, switchover: 2ms, advised-device-load: ${loadMs}ms }`,
    `capabilities: { postcopy-ram: ${postcopyRam} }`,
    '',
  ].join('\n');
  const result = runScenario(loadScenario(yaml));
  assert.equal(result.status, 'completed');
  assert.equal(result.verdicts.filter((v) => !v.ok).length, 0, 'every invariant holds');
  return { downtime: Number(result.source.downtime), total: Number(result.source['total-time']) };
}

test('with postcopy-ram advised the destination loads its devices 40 ms longer: downtime and total time take them', () => {
  const plain = run(true, 0);
  const advised = run(true, 40);
  assert.equal(advised.downtime - plain.downtime, 40);
  assert.equal(advised.total - plain.total, 40);
});

test('without postcopy-ram the cost does not apply', () => {
  assert.deepEqual(run(false, 40), run(false, 0));
});
