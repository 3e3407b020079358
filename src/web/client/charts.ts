/// <reference lib="dom" />
/**
 * The interactive charts (uPlot): remaining bytes, bandwidth and dirty rate over time, and the
 * page-request latency histogram. Each sits in a card whose SVG/PNG buttons export the
 * matching drawing of svg-charts.ts (same data, print-friendly).
 */
import uPlot from 'uplot';
import type { RunView } from '../api-types.ts';
import { latencyBars, seriesOf, type RunSeries } from '../series.ts';
import { runChartsSvg } from '../svg-charts.ts';
import { card } from './dom.ts';

const HEIGHT = 220;

interface LineSpec {
  readonly label: string;
  readonly stroke: string;
  readonly dash?: number[];
  readonly pick: (s: RunSeries) => (number | null)[];
}

function widthOf(node: HTMLElement): number {
  return Math.max(280, Math.floor(node.clientWidth || 560) - 4);
}

/** One uPlot chart in a card. */
class Chart {
  readonly card: HTMLElement;
  private plot: uPlot | null = null;
  /** What the plot was made for (a trace's sparse points are drawn with markers). */
  private sparse = false;
  readonly body: HTMLElement;

  constructor(
    title: string,
    exportName: string,
    svgOf: () => string,
    private readonly options: (width: number, sparse: boolean) => uPlot.Options,
  ) {
    const c = card(title, exportName, svgOf);
    this.card = c.card;
    this.body = c.body;
    new ResizeObserver(() => this.plot?.setSize({ width: widthOf(this.body), height: HEIGHT })).observe(this.body);
  }

  setData(data: uPlot.AlignedData, sparse = false): void {
    if (this.plot !== null && this.sparse !== sparse) {
      this.plot.destroy();
      this.plot = null;
    }
    if (this.plot === null) {
      this.sparse = sparse;
      this.plot = new uPlot(this.options(widthOf(this.body), sparse), data, this.body);
      return;
    }
    this.plot.setData(data);
  }
}

function lineOptions(yLabel: string, lines: readonly LineSpec[]): (width: number, sparse: boolean) => uPlot.Options {
  return (width, sparse) => ({
    width,
    height: HEIGHT,
    scales: { x: { time: false } },
    legend: { show: true },
    series: [{ label: 'ms' }, ...lines.map((l) => ({ label: l.label, stroke: l.stroke, width: 1.6, dash: l.dash, points: { show: sparse, size: 6 } }))],
    axes: [{ label: 'ms since migrate', size: 40 }, { label: yLabel, size: 60 }],
  });
}

/** The four charts of a run, updated from its view. */
export class RunCharts {
  readonly cards: HTMLElement[];
  private view: RunView | null = null;
  private readonly lines: { chart: Chart; specs: readonly LineSpec[] }[] = [];
  private readonly latency: Chart;
  private labels: string[] = [];
  private readonly latencyNote: HTMLElement;

  constructor() {
    const svgNamed = (name: string) => (): string => (this.view === null ? '<svg xmlns="http://www.w3.org/2000/svg"/>' : (runChartsSvg(this.view).find((c) => c.name === name)?.svg ?? ''));
    const defs: [string, string, string, LineSpec[]][] = [
      ['Remaining', 'remaining', 'MiB', [{ label: 'remaining MiB', stroke: '#e4572e', pick: (s) => s.remainingMiB }]],
      ['Bandwidth', 'bandwidth', 'Mbit/s', [
        { label: 'throughput (ram.transferred)', stroke: '#3d7edb', pick: (s) => s.throughputMbps },
        { label: 'query-migrate mbps', stroke: '#222', dash: [4, 3], pick: (s) => s.qmpMbps },
      ]],
      ['Dirty rate', 'dirty-rate', 'MiB/s', [
        { label: 'new in the dirty log', stroke: '#b62fc4', pick: (s) => s.dirtyLogMiBs },
        { label: 'query-migrate rate', stroke: '#222', dash: [4, 3], pick: (s) => s.dirtyMiBs },
      ]],
    ];
    for (const [title, name, yLabel, specs] of defs) this.lines.push({ chart: new Chart(title, name, svgNamed(name), lineOptions(yLabel, specs)), specs });
    this.latency = new Chart('Page-request latency', 'latency', svgNamed('latency'), (width) => ({
      width,
      height: HEIGHT,
      scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] } },
      series: [{ label: 'bin' }, { label: 'faults', stroke: '#e08a1e', fill: '#e08a1e', paths: uPlot.paths.bars?.({ size: [0.8, 80] }), points: { show: false } }],
      axes: [{ label: 'wait until the page was placed', size: 40, values: (_u, splits) => splits.map((i) => this.labels[i] ?? '') }, { label: 'faults', size: 60 }],
    }));
    this.latencyNote = document.createElement('div');
    this.latencyNote.className = 'note';
    this.latency.card.append(this.latencyNote);
    this.cards = [...this.lines.map((l) => l.chart.card), this.latency.card];
  }

  update(view: RunView): void {
    this.view = view;
    const s = seriesOf(view);
    const sparse = view.info.pageMapOrigin === 'trace';
    for (const { chart, specs } of this.lines) chart.setData([s.t, ...specs.map((spec) => spec.pick(s))] as uPlot.AlignedData, sparse);
    const bars = latencyBars(view);
    this.labels = bars.labels;
    this.latency.setData([bars.counts.map((_, i) => i), bars.counts]);
    const h = view.latency;
    this.latencyNote.textContent = h.faults === 0 ? 'No page faults on the destination in this run (precopy, or postcopy without a missing page touched).' : `${h.faults} faults, ${h.waits} waits traced.`;
  }
}
