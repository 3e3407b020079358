// The observer only reads: a watched run has the same trace hash as an unwatched one. It
// yields what the views need: progress samples in time order, one iteration row per sync,
// page maps from the world (dirty pages shrinking into sent ones, missing pages once the
// guest runs on the destination in postcopy), and the summary with the verdicts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadScenario } from '../sim/scenario/scenario.ts';
import { runScenario } from '../sim/runner.ts';
import { RunObserver, runObserved } from './observer.ts';
import { RunViewBuilder } from './run-view.ts';
import type { RunView } from './api-types.ts';
import { TINY_POSTCOPY, TINY_PRECOPY } from './web.test-util.ts';

function watched(text: string, pacing: 'report' | 'live' = 'report'): { view: RunView; hash: string; plainHash: string; syncs: number } {
  const builder = new RunViewBuilder();
  let wall = 0;
  const observer = new RunObserver({ pacing, sink: builder, wallNowMs: () => (wall += 7) });
  const result = runObserved(loadScenario(text), undefined, observer);
  const plain = runScenario(loadScenario(text));
  return { view: builder.view() as RunView, hash: result.traceHash, plainHash: plain.traceHash, syncs: result.progress.length };
}

test('a watched precopy run: same trace hash, samples, rows and maps', () => {
  const { view, hash, plainHash, syncs } = watched(TINY_PRECOPY);
  assert.equal(hash, plainHash);
  assert.equal(view.info.scenario, 'tiny');
  assert.equal(view.info.pageMapOrigin, 'world');
  assert.equal(view.iterations.length, syncs);
  assert.ok(view.samples.length > 5);
  for (let i = 1; i < view.samples.length; i++) assert.ok(view.samples[i].tNs >= view.samples[i - 1].tNs);
  assert.ok(view.samples.some((s) => (s.dirtiedPages ?? 0) > 0), 'the dirty log is counted');
  const first = view.pageMaps.find((m) => m.totals.dirty > 0);
  assert.ok(first !== undefined, 'a map shows dirty pages');
  const last = view.pageMaps.at(-1);
  assert.equal(last?.totals.sent, view.info.pageCount);
  assert.equal(view.summary?.ok, true);
  assert.equal(view.summary?.status, 'completed');
  assert.ok((view.summary?.invariants?.length ?? 0) >= 7);
});

test('a watched postcopy run shows missing pages on the destination, then none', () => {
  const { view, hash, plainHash } = watched(TINY_POSTCOPY);
  assert.equal(hash, plainHash);
  assert.ok(view.statuses.some((s) => s.to === 'postcopy-active'));
  assert.ok(view.pageMaps.some((m) => m.totals.missing > 0), 'missing pages while postcopy runs');
  assert.equal(view.pageMaps.at(-1)?.totals.missing, 0);
});

test('live pacing also keeps the trace hash and ends with a summary', () => {
  const { view, hash, plainHash } = watched(TINY_PRECOPY, 'live');
  assert.equal(hash, plainHash);
  assert.ok(view.pageMaps.length >= 2);
  assert.equal(view.summary?.status, 'completed');
});
