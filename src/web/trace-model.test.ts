// A trace as a run view: statuses, iteration rows, folded marks, the latency histogram from
// fault/page-ready, the page map the trace supports (hinted, missing until placed, the rest
// sent once completed), the summary, and traces that are not livemig traces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fnv1a64Hex } from '../sim/trace.ts';
import { latencyQuantileNs } from './run-view.ts';
import { seriesOf, statusPhases } from './series.ts';
import { parseTrace, runViewFromTrace } from './trace-model.ts';

const MS = 1_000_000;
const TRACE = [
  { t: 0, ev: 'run', scenario: 'unit', seed: 7, pages: 1000, backing: 'bytes' },
  { t: 10 * MS, ev: 'status', side: 'source', from: 'none', to: 'setup' },
  { t: 10 * MS, ev: 'status', side: 'source', from: 'setup', to: 'active' },
  { t: 10 * MS, ev: 'sync', count: 1, remaining: 4096000 },
  { t: 10 * MS, ev: 'iteration', n: 1, transferred: 0, remaining: 4096000, dirtyRate: 0, mbps: 0 },
  { t: 12 * MS, ev: 'hint', page: 100, count: 50, cmdId: 1 },
  { t: 20 * MS, ev: 'iteration', n: 2, transferred: 2048000, remaining: 1024000, dirtyRate: 1000, mbps: 1600 },
  { t: 21 * MS, ev: 'mark', side: 'source', name: 'request-not-dirty' },
  { t: 22 * MS, ev: 'mark', side: 'source', name: 'request-not-dirty' },
  { t: 25 * MS, ev: 'status', side: 'source', from: 'active', to: 'postcopy-active' },
  { t: 25 * MS, ev: 'guest', side: 'destination', action: 'run' },
  { t: 26 * MS, ev: 'fault', page: 900 },
  { t: 26 * MS + 5000, ev: 'page-ready', page: 900, waited: 5000 },
  { t: 27 * MS, ev: 'fault', page: 901 },
  { t: 30 * MS, ev: 'status', side: 'source', from: 'postcopy-active', to: 'completed' },
  { t: 40 * MS, ev: 'end', status: 'completed', reason: 'completed' },
].map((r) => JSON.stringify(r)).join('\n') + '\n';

test('a trace becomes a view: statuses, rows, folded marks, latency, summary', () => {
  const { view, errors } = runViewFromTrace(TRACE);
  assert.deepEqual(errors, []);
  assert.equal(view.info.scenario, 'unit');
  assert.equal(view.info.seed, 7);
  assert.equal(view.info.pageMapOrigin, 'trace');
  assert.equal(view.statuses.length, 4);
  assert.equal(view.iterations.length, 2);
  const folded = view.marks.find((m) => m.text === 'request-not-dirty');
  assert.equal(folded?.count, 2);
  assert.equal(view.latency.faults, 2);
  assert.equal(view.latency.waits, 1);
  assert.equal(latencyQuantileNs(view.latency, 0.5), 5000);
  assert.equal(view.summary?.status, 'completed');
  assert.equal(view.summary?.ok, null);
  assert.equal(view.summary?.traceHash, fnv1a64Hex(TRACE));
  assert.deepEqual(statusPhases(view).map((p) => `${p.side}:${p.status}`), ['source:setup', 'source:active', 'source:postcopy-active', 'source:completed']);
});

test('the series start at migrate and end at zero remaining once completed', () => {
  const { view } = runViewFromTrace(TRACE);
  const s = seriesOf(view);
  assert.equal(s.t[0], 0);
  assert.equal(s.remainingMiB.at(-1), 0);
  assert.ok(s.throughputMbps.some((v) => v !== null && v > 0));
});

test('the page map: hinted, missing until placed, placed pages sent, all sent after completion', () => {
  const { view } = runViewFromTrace(TRACE);
  const byReason = (pred: (tNs: number) => boolean) => view.pageMaps.filter((m) => pred(m.tNs)).at(-1);
  const postcopy = byReason((t) => t === 25 * MS);
  assert.equal(postcopy?.totals.hinted, 50);
  const end = view.pageMaps.at(-1);
  assert.deepEqual(end?.totals, { sent: 950, dirty: 0, hinted: 50, unplugged: 0, missing: 0 });
  const waiting = runViewFromTrace(TRACE.split('\n').filter((l) => !l.includes('"to":"completed"')).join('\n')).view.pageMaps.at(-1);
  assert.deepEqual(waiting?.totals, { sent: 1, dirty: 0, hinted: 50, unplugged: 0, missing: 1 }, 'page 900 placed, page 901 still missing');
});

test('lines that are not records are reported; a file without a run record is refused', () => {
  const parsed = parseTrace('{"t":1,"ev":"x"}\nnope\n{"a":1}\n');
  assert.equal(parsed.lines.length, 1);
  assert.equal(parsed.errors.length, 2);
  assert.throws(() => runViewFromTrace('hello\n'), /not a livemig trace/);
});
