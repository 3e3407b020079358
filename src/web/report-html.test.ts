// Reports are self-contained (no external URL to fetch), their embedded data decodes back to
// the views, page maps are thinned to REPORT_MAPS_MAX, and every SVG chart is one <svg>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { loadScenario } from '../sim/scenario/scenario.ts';
import type { ReportData, RunView } from './api-types.ts';
import { runObserved } from './observer.ts';
import { renderReport, reportData, ReportRecorder, REPORT_MAPS_MAX } from './report-html.ts';
import { compareChartsSvg, niceTicks, runChartsSvg } from './svg-charts.ts';
import { TINY_POSTCOPY } from './web.test-util.ts';

function tinyView(): RunView {
  const recorder = new ReportRecorder(false);
  runObserved(loadScenario(TINY_POSTCOPY), undefined, recorder.observer);
  return recorder.view();
}

test('a report is one self-contained file whose data decodes to the views', () => {
  const view = tinyView();
  const compare = [{ label: 'a', status: 'completed', ok: true, totalTimeMs: 10, downtimeMs: 1, transferredBytes: 1 << 20, maxStallMs: 0.5, postcopyRequests: 3 }];
  const html = renderReport(reportData('t', 'test', [view], compare));
  assert.ok(html.startsWith('<!doctype html>'));
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|@import/i, 'nothing loaded from elsewhere');
  assert.ok(html.length < 1024 * 1024, `${html.length} bytes`);
  const b64 = /<script type="application\/octet-stream" id="report-data">([^<]*)<\/script>/.exec(html)?.[1] ?? '';
  const data = JSON.parse(gunzipSync(Buffer.from(b64, 'base64')).toString('utf8')) as ReportData;
  assert.equal(data.runs[0].info.scenario, 'tiny-postcopy');
  assert.equal(data.runs[0].summary?.status, 'completed');
  assert.equal(data.compare?.[0].label, 'a');
  assert.ok(data.runs[0].pageMaps.length <= REPORT_MAPS_MAX);
  assert.equal(data.runs[0].pageMaps.at(-1)?.tNs, view.pageMaps.at(-1)?.tNs, 'the last map is kept');
});

test('SVG charts: one element each, named for files', () => {
  const charts = runChartsSvg(tinyView());
  assert.deepEqual(charts.map((c) => c.name), ['timeline', 'remaining', 'bandwidth', 'dirty-rate', 'latency', 'page-map']);
  for (const c of [...charts, ...compareChartsSvg([])]) {
    assert.match(c.svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]*>/);
    assert.ok(c.svg.endsWith('</svg>'));
    assert.equal(c.svg.match(/<svg/g)?.length, 1);
    assert.doesNotMatch(c.svg, /NaN|undefined|Infinity/);
  }
});

test('nice ticks are round numbers covering the range', () => {
  assert.deepEqual(niceTicks(0, 100), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(0, 1.2, 4), [0, 0.5, 1]);
  assert.deepEqual(niceTicks(5, 5), [5]);
});
