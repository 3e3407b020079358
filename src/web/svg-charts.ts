/**
 * Charts as standalone SVG text, for docs and papers: `livemig report TRACE --svg DIR` writes
 * them, and the page's "SVG" buttons download the same drawings. Line charts (remaining,
 * throughput, dirty rate), bar charts (latency histogram, policy comparison), the page-state
 * map and the status timeline, all from series.ts and page-map.ts so every view agrees.
 *
 * Pure: strings only; shared by node code and the browser bundle.
 */
import type { CompareEntry, PageMapSnapshot, RunView } from './api-types.ts';
import { PAGE_STATES } from './api-types.ts';
import { binRgb, decodeFractions, gridOf, PAGE_STATE_COLORS, PAGE_STATE_LABELS } from './page-map.ts';
import { latencyBars, seriesOf, statusColor, statusPhases, timelineEndMs } from './series.ts';
import { MiB } from '../lib/units.ts';

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';
const M = { left: 64, right: 16, top: 34, bottom: 44 };
/** Line charts with at most this many points mark each point. */
const SPARSE_POINTS_MAX = 40;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function svgOpen(width: number, height: number, title: string, titleX = M.left): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="11">`
    + `<rect width="${width}" height="${height}" fill="#fff"/>`
    + `<text x="${titleX}" y="20" font-size="13" font-weight="600" fill="#222">${esc(title)}</text>`;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}

export interface LineSeries {
  readonly label: string;
  readonly color: string;
  readonly values: readonly (number | null)[];
  readonly dash?: boolean;
}

export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly x: readonly number[];
  readonly series: readonly LineSeries[];
  readonly width?: number;
  readonly height?: number;
}

export function lineChartSvg(o: LineChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 260;
  const pw = width - M.left - M.right;
  const ph = height - M.top - M.bottom;
  const xs = o.x;
  const xMin = xs.length > 0 ? Math.min(...xs) : 0;
  const xMax = xs.length > 1 ? Math.max(...xs) : xMin + 1;
  let yMax = 0;
  for (const s of o.series) for (const v of s.values) if (v !== null && Number.isFinite(v)) yMax = Math.max(yMax, v);
  yMax = yMax > 0 ? yMax * 1.05 : 1;
  const px = (x: number): number => M.left + ((x - xMin) / (xMax - xMin)) * pw;
  const py = (y: number): number => M.top + ph - (y / yMax) * ph;
  const out = [svgOpen(width, height, o.title)];
  for (const y of niceTicks(0, yMax)) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#eceff2"/>`);
    out.push(`<text x="${M.left - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end" fill="#555">${fmt(y)}</text>`);
  }
  for (const x of niceTicks(xMin, xMax, 6)) {
    out.push(`<text x="${px(x).toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle" fill="#555">${fmt(x)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#c9ced6"/>`);
  for (const s of o.series) {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v) || i >= xs.length) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${px(xs[i]).toFixed(1)},${py(v).toFixed(1)}`;
      pen = true;
    });
    if (d !== '') out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dash === true ? ' stroke-dasharray="4 3"' : ''}/>`);
    // Few points (a trace: one per sync) get markers, so a line between them is not taken for data.
    if (xs.length <= SPARSE_POINTS_MAX) {
      s.values.forEach((v, i) => {
        if (v !== null && Number.isFinite(v) && i < xs.length) out.push(`<circle cx="${px(xs[i]).toFixed(1)}" cy="${py(v).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
      });
    }
  }
  out.push(`<text x="${M.left + pw / 2}" y="${height - 8}" text-anchor="middle" fill="#333">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(o.yLabel)}</text>`);
  o.series.forEach((s, i) => {
    const lx = width - M.right - 210;
    const ly = 14 + i * 13;
    out.push(`<line x1="${lx}" x2="${lx + 16}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash === true ? ' stroke-dasharray="4 3"' : ''}/><text x="${lx + 20}" y="${ly + 4}" fill="#333">${esc(s.label)}</text>`);
  });
  return `${out.join('')}</svg>`;
}

export interface BarChartOptions {
  readonly title: string;
  readonly yLabel: string;
  readonly labels: readonly string[];
  readonly values: readonly number[];
  readonly color?: string;
  readonly width?: number;
  readonly height?: number;
}

export function barChartSvg(o: BarChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 260;
  const pw = width - M.left - M.right;
  const ph = height - M.top - M.bottom;
  const yMax = Math.max(1, ...o.values) * 1.08;
  const py = (y: number): number => M.top + ph - (y / yMax) * ph;
  const slot = pw / Math.max(1, o.values.length);
  const out = [svgOpen(width, height, o.title)];
  for (const y of niceTicks(0, yMax)) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#eceff2"/>`);
    out.push(`<text x="${M.left - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end" fill="#555">${fmt(y)}</text>`);
  }
  const every = Math.max(1, Math.ceil(o.labels.length / 12));
  o.values.forEach((v, i) => {
    const x = M.left + i * slot + slot * 0.12;
    out.push(`<rect x="${x.toFixed(1)}" y="${py(v).toFixed(1)}" width="${(slot * 0.76).toFixed(1)}" height="${(M.top + ph - py(v)).toFixed(1)}" fill="${o.color ?? '#3d7edb'}"><title>${esc(o.labels[i])}: ${v}</title></rect>`);
    if (i % every === 0) out.push(`<text x="${(M.left + (i + 0.5) * slot).toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle" fill="#555">${esc(o.labels[i])}</text>`);
  });
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#c9ced6"/>`);
  out.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(o.yLabel)}</text>`);
  return `${out.join('')}</svg>`;
}

/** The page-state map: one cell per bin, runs of equal cells in a row drawn as one rectangle. */
export function pageMapSvg(snapshot: PageMapSnapshot, title = 'Page-state map', width = 640): string {
  const fractions = decodeFractions(snapshot);
  const { columns, rows } = gridOf(snapshot.bins);
  const cell = (width - 32) / columns;
  const cellH = Math.max(3, Math.min(cell, 360 / rows));
  const legendY = M.top + rows * cellH + 18;
  const height = legendY + 14 * 3 + 8;
  const out = [svgOpen(width, height, title, 16), '<g shape-rendering="crispEdges">'];
  for (let row = 0; row < rows; row++) {
    let runStart = 0;
    let runColor = '';
    const flush = (end: number): void => {
      if (runColor === '') return;
      out.push(`<rect x="${(16 + runStart * cell).toFixed(2)}" y="${(M.top + row * cellH).toFixed(2)}" width="${((end - runStart) * cell).toFixed(2)}" height="${cellH.toFixed(2)}" fill="${runColor}"/>`);
    };
    for (let c = 0; c < columns; c++) {
      const b = row * columns + c;
      const color = b < snapshot.bins ? `rgb(${binRgb(fractions, b).join(',')})` : '';
      if (color !== runColor) {
        flush(c);
        runStart = c;
        runColor = color;
      }
    }
    flush(columns);
  }
  out.push('</g>');
  const names = [...PAGE_STATES, 'untouched' as const];
  names.forEach((s, i) => {
    const x = 16 + (i % 2) * 310;
    const y = legendY + Math.floor(i / 2) * 14;
    const count = s === 'untouched' ? snapshot.pageCount - PAGE_STATES.reduce((a, k) => a + snapshot.totals[k], 0) : snapshot.totals[s];
    out.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${PAGE_STATE_COLORS[s]}"/><text x="${x + 14}" y="${y}" fill="#333">${esc(PAGE_STATE_LABELS[s])}: ${count.toLocaleString('en-US')}</text>`);
  });
  return `${out.join('')}</svg>`;
}

/** Status lanes of source and destination, with a tick per dirty bitmap sync. */
export function timelineSvg(view: RunView, width = 640): string {
  const height = 120;
  const pw = width - M.left - M.right;
  const end = timelineEndMs(view);
  const start = view.statuses.find((s) => s.side === 'source')?.tNs ?? 0;
  const px = (ms: number): number => M.left + (Math.max(0, ms) / end) * pw;
  const out = [svgOpen(width, height, 'Status timeline')];
  const lanes = { source: M.top, destination: M.top + 26 };
  for (const [side, y] of Object.entries(lanes)) out.push(`<text x="${M.left - 6}" y="${y + 14}" text-anchor="end" fill="#333">${side === 'source' ? 'source' : 'dest'}</text>`);
  for (const p of statusPhases(view)) {
    const x = px(p.fromMs);
    const w = Math.max(0.8, px(p.toMs) - x);
    out.push(`<rect x="${x.toFixed(1)}" y="${lanes[p.side]}" width="${w.toFixed(1)}" height="20" fill="${statusColor(p.status)}"><title>${esc(p.side)} ${esc(p.status)} ${p.fromMs.toFixed(1)}–${p.toMs.toFixed(1)} ms</title></rect>`);
    if (w > 60) out.push(`<text x="${(x + 4).toFixed(1)}" y="${lanes[p.side] + 14}" fill="#fff">${esc(p.status)}</text>`);
  }
  for (const m of view.marks) {
    if (m.kind !== 'guest') continue;
    const x = px((m.tNs - start) / 1e6);
    const y = lanes[m.side] + 20;
    out.push(`<path d="M${x.toFixed(1)},${y} l-4,7 h8 z" fill="#222"><title>${esc(m.side)}: ${esc(m.text)}</title></path>`);
  }
  for (const it of view.iterations) {
    const x = px((it.tNs - start) / 1e6);
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${M.top - 6}" y2="${M.top + 48}" stroke="#222" stroke-width="1"><title>sync ${it.n}</title></line>`);
  }
  for (const x of niceTicks(0, end, 6)) out.push(`<text x="${px(x).toFixed(1)}" y="${M.top + 66}" text-anchor="middle" fill="#555">${fmt(x)}</text>`);
  out.push(`<text x="${M.left + pw / 2}" y="${height - 6}" text-anchor="middle" fill="#333">ms since migrate (lines: dirty bitmap syncs; triangles: the guest stops or runs)</text>`);
  return `${out.join('')}</svg>`;
}

/** Every chart of a run view, named for files (remaining.svg …). */
export function runChartsSvg(view: RunView): { name: string; svg: string }[] {
  const s = seriesOf(view);
  const x = 'ms since migrate';
  const charts = [
    { name: 'timeline', svg: timelineSvg(view) },
    { name: 'remaining', svg: lineChartSvg({ title: 'Remaining', xLabel: x, yLabel: 'MiB', x: s.t, series: [{ label: 'remaining', color: '#e4572e', values: s.remainingMiB }] }) },
    { name: 'bandwidth', svg: lineChartSvg({ title: 'Bandwidth', xLabel: x, yLabel: 'Mbit/s', x: s.t, series: [{ label: 'throughput (ram.transferred)', color: '#3d7edb', values: s.throughputMbps }, { label: 'query-migrate mbps', color: '#222', values: s.qmpMbps, dash: true }] }) },
    { name: 'dirty-rate', svg: lineChartSvg({ title: 'Dirty rate', xLabel: x, yLabel: 'MiB/s', x: s.t, series: [{ label: 'new in the dirty log', color: '#b62fc4', values: s.dirtyLogMiBs }, { label: 'query-migrate rate', color: '#222', values: s.dirtyMiBs, dash: true }] }) },
  ];
  const bars = latencyBars(view);
  charts.push({ name: 'latency', svg: barChartSvg({ title: `Page-request latency (${view.latency.waits} waits)`, yLabel: 'faults', labels: bars.labels, values: bars.counts, color: '#e08a1e' }) });
  const last = view.pageMaps.at(-1);
  if (last !== undefined) charts.push({ name: 'page-map', svg: pageMapSvg(last, `Page-state map at the end (${view.info.pageMapOrigin === 'trace' ? 'from the trace' : 'from the world'})`) });
  return charts;
}

/** The comparison metrics, one bar chart each. */
export function compareChartsSvg(entries: readonly CompareEntry[]): { name: string; svg: string }[] {
  const labels = entries.map((e) => e.label);
  const metric = (name: string, title: string, yLabel: string, values: number[], color: string): { name: string; svg: string } => ({ name, svg: barChartSvg({ title, yLabel, labels, values, color }) });
  return [
    metric('compare-total-time', 'Total time', 'ms', entries.map((e) => e.totalTimeMs ?? 0), '#3d7edb'),
    metric('compare-downtime', 'Downtime', 'ms', entries.map((e) => e.downtimeMs ?? 0), '#e4572e'),
    metric('compare-transferred', 'Transferred', 'MiB', entries.map((e) => e.transferredBytes / MiB), '#2e9e5b'),
    metric('compare-max-stall', 'Longest postcopy stall', 'ms', entries.map((e) => e.maxStallMs), '#e08a1e'),
  ];
}
