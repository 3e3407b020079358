/// <reference lib="dom" />
/**
 * The static report's page: reads the embedded ReportData (gzip, base64, in
 * `<script id="report-data">`), and draws the comparison bars, if any, and one run panel per
 * run. Nothing is fetched: the data, uPlot and this code are all in the file. `#map=N` in
 * the address opens the page maps at snapshot N.
 */
import type { ReportData } from '../api-types.ts';
import { compareChartsSvg } from '../svg-charts.ts';
import { card, el } from './dom.ts';
import { RunPanel } from './run-panel.ts';

async function readData(): Promise<ReportData> {
  const node = document.getElementById('report-data');
  if (node === null) throw new Error('no report data in this page');
  const raw = atob((node.textContent ?? '').trim());
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return JSON.parse(await new Response(stream).text()) as ReportData;
}

function compareSection(data: ReportData): HTMLElement | null {
  if (data.compare === null || data.compare.length === 0) return null;
  const charts = compareChartsSvg(data.compare);
  const cards = charts.map((c) => {
    const k = card(c.name.replace('compare-', '').replace('-', ' '), c.name, () => c.svg);
    k.body.innerHTML = c.svg;
    return k.card;
  });
  const table = el('table', { class: 'compare' }, [
    el('tr', {}, ['run', 'status', 'total-time', 'downtime', 'transferred MiB', 'longest stall', 'requests'].map((h) => el('th', { text: h }))),
    ...data.compare.map((e) => el('tr', { class: e.ok === false ? 'fail' : '' }, [
      e.label, `${e.status}${e.ok === null ? '' : e.ok ? '' : ' (FAIL)'}`, `${e.totalTimeMs ?? '-'} ms`, `${e.downtimeMs ?? '-'} ms`,
      (e.transferredBytes / 2 ** 20).toFixed(1), `${e.maxStallMs.toFixed(3)} ms`, String(e.postcopyRequests),
    ].map((t) => el('td', { text: t })))),
  ]);
  return el('section', { class: 'compare-section' }, [el('h2', { text: 'Policy comparison' }), table, el('div', { class: 'grid two' }, cards)]);
}

async function main(): Promise<void> {
  const app = document.getElementById('app') as HTMLElement;
  let data: ReportData;
  try {
    data = await readData();
  } catch (error) {
    app.textContent = `cannot read the report data: ${(error as Error).message}`;
    return;
  }
  // report.html#map=N opens every run's page map at snapshot N (for docs and screenshots).
  const mapIndex = /(?:^#|&)map=(\d+)/.exec(location.hash)?.[1];
  const compare = compareSection(data);
  if (compare !== null) app.append(compare);
  data.runs.forEach((run, i) => {
    const panel = new RunPanel();
    const label = data.compare?.[i]?.label;
    const heading = el('h2', { text: `${label === undefined ? '' : `${label}: `}${run.info.scenario}${run.info.description === '' ? '' : ` — ${run.info.description}`}` });
    app.append(el('section', { class: 'run' }, [heading, panel.root]));
    panel.update(run);
    if (mapIndex !== undefined) panel.showSnapshot(Number(mapIndex));
  });
  document.body.dataset.ready = 'true';
}

void main();
