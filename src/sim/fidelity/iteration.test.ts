// host.iteration-pages reaches the source engine: how many pages one precopy iteration examines
// decides where the once-per-iteration convergence check falls against the scan. The idle
// 2048 MiB guest at 1 GiB/s (a lab scenario): with the engine's default of 16,384 pages (5.4 ms
// of zero pages) the check comes while the data at the top of RAM (28.7 MiB) is unsent and the
// downtime carries it; with iterations as long as QEMU's over zero pages (51 ms: 154,545 pages
// at 330 ns) the iteration that crosses the threshold finishes the pass and the downtime
// carries almost nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runScenario } from '../runner.ts';
import { loadScenario, parseOverride } from '../scenario/scenario.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const text = readFileSync(join(ROOT, 'scenarios/lab/m2048-idle-1g-hint-off.yaml'), 'utf8');

function downtimeBytes(overrides: string[]): number {
  const result = runScenario(loadScenario(text, overrides.map((o) => parseOverride(o)!)));
  assert.equal(result.status, 'completed');
  return result.source.ram?.['downtime-bytes'] ?? Number.NaN;
}

test('host.iteration-pages sets how far an iteration scans, hence what the downtime carries', () => {
  const MiB = 1024 * 1024;
  const short = downtimeBytes([]);
  const long = downtimeBytes(['host.iteration-pages=154545']);
  assert.ok(short > 28 * MiB, `default iterations: ${short} bytes in the downtime`);
  assert.ok(long < 1 * MiB, `QEMU-long iterations: ${long} bytes in the downtime`);
});
