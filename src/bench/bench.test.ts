// The bench runner with its real groups at tiny sizes: rows carry medians of their samples,
// goals and memcpy ratios; --json is one document; --only filters; bad flags exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBench } from './main.ts';
import { makeCodecGroup } from './codec-group.ts';
import { makeMemoryGroup } from './memory-group.ts';
import { median } from './table.ts';
import type { BenchRow } from './table.ts';

const MiB = 1024 * 1024;
const tiny = { ramBytes: 4 * MiB, runs: 3 };
const groups = [makeCodecGroup(tiny, tiny), makeMemoryGroup({ full: 3, quick: 3 })];

async function bench(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runBench(args, { out: (t) => (out += t), err: (t) => (err += t) }, groups);
  return { code, out, err };
}

test('bench --json: every row is the median of its samples, codec rows have the 2 GB/s goal and a memcpy ratio', async () => {
  const r = await bench('--json');
  assert.equal(r.code, 0, r.err);
  const doc = JSON.parse(r.out) as { groups: string[]; rows: Array<BenchRow & { met: boolean | null }> };
  assert.deepEqual(doc.groups, ['codec', 'memory']);
  for (const row of doc.rows) {
    assert.ok(row.samples.length >= 1 && row.samples.every((s) => Number.isFinite(s) && s > 0), row.name);
    assert.equal(row.value, median(row.samples), row.name);
  }
  const codec = doc.rows.filter((x) => x.group === 'codec');
  assert.equal(codec.length, 5);
  for (const row of codec) assert.equal(row.samples.length, 3);
  const goals = codec.filter((x) => x.goal !== undefined);
  assert.deepEqual(goals.map((x) => x.name.split(' ')[0]), ['decode', 'decode', 'encode']);
  for (const row of goals) {
    assert.equal(row.goal?.value, 2);
    assert.equal(row.versus?.name, 'memcpy');
    assert.equal(typeof row.met, 'boolean');
  }
  const tib = doc.rows.find((x) => x.name === 'bookkeeping for a 1 TiB guest');
  assert.ok(tib !== undefined && tib.unit === 'GiB' && tib.goal?.better === 'lower');
});

test('bench table, --only, --list and usage errors', async () => {
  const only = await bench('--only', 'memory', '--quick');
  assert.equal(only.code, 0);
  assert.match(only.out, /^group +figure +median/);
  assert.doesNotMatch(only.out, /^codec/m);
  assert.match(only.out, /dirty-log sync, 64 GiB guest, 1% dirty/);
  assert.match((await bench('--list')).out, /^codec +memcpy limit/m);
  assert.equal((await bench('--only', 'nosuch')).code, 2);
  assert.equal((await bench('--bogus')).code, 2);
});
