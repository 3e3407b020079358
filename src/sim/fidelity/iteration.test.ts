// host.iteration reaches the source engine: QEMU's iterations, bounded by time, put the
// convergence checks where QEMU's trace has them, and that decides what the downtime carries.
// The idle 2048 MiB guest at 1 GiB/s (warm-host lab scenario): QEMU's trace shows checks at about
// 103-106 ms that iterate and a pass that ends before the next one, so the downtime carries
// nothing (1-2 ms; the warm suite's median 1 ms). With 51 ms iterations the simulator does the
// same; with an iteration of one 16,384-page chunk (about 3 ms of zero pages) it checks so often that
// it completes while the data at the top of RAM is unsent, and the downtime carries that data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runScenario } from '../runner.ts';
import { loadScenario } from '../scenario/scenario.ts';
import { simulatedChecks } from './checks.ts';
import { withoutQemuIterations } from './lab-scenario.test-util.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const text = readFileSync(join(ROOT, 'scenarios/lab/warm-host/m2048-idle-1g-hint-off.yaml'), 'utf8');
/** The same scenario with the engine's default iterations: one chunk of up to 16,384 pages each. */
const chunked = withoutQemuIterations(text);

test('the lab scenarios run QEMU\'s iterations: 51 ms, 64 pages between looks at the clock', () => {
  assert.match(text, /iteration: 51ms, iteration-pages: 64/);
  assert.doesNotMatch(chunked, /iteration: |iteration-pages: /);
});

test('host.iteration: checks 51 ms apart, and a pass that ends inside an iteration leaves nothing for the downtime', () => {
  const MiB = 1024 * 1024;
  const qemu = runScenario(loadScenario(text));
  const chunks = runScenario(loadScenario(chunked));
  assert.equal(qemu.status, 'completed');
  assert.equal(chunks.status, 'completed');
  assert.ok(qemu.source.ram!['downtime-bytes'] < 1 * MiB, `51 ms iterations: ${qemu.source.ram!['downtime-bytes']} bytes in the downtime`);
  assert.ok(chunks.source.ram!['downtime-bytes'] > 20 * MiB, `16,384-page iterations: ${chunks.source.ram!['downtime-bytes']} bytes in the downtime`);
  const checkTimesMs = simulatedChecks(loadScenario(text)).filter((e) => e[1] === 'pending').map((e) => e[0]!);
  for (let i = 1; i < checkTimesMs.length - 1; i++) {
    assert.ok(checkTimesMs[i] - checkTimesMs[i - 1] >= 50.9, `checks at ${checkTimesMs.join(', ')} ms`);
  }
});
