/// <reference lib="dom" />
/**
 * Everything shown about one run, used by the dashboard (updated as events arrive) and the
 * static report (drawn once): the status line, the headline figures and invariant verdicts,
 * the status and iteration timeline with the latest marks, the page-state map and the charts.
 *
 * The status element (`.run-status`) carries `data-status` (the source's status, or the
 * final one) and `data-finished` for tests.
 */
import type { RunView } from '../api-types.ts';
import { latencyQuantileNs, migrationStartNs } from '../run-view.ts';
import { shortNs } from '../series.ts';
import { timelineSvg } from '../svg-charts.ts';
import { RunCharts } from './charts.ts';
import { card, el, fmtBytes } from './dom.ts';
import { PageMapView } from './page-map-view.ts';

const MARKS_SHOWN = 12;

export class RunPanel {
  readonly root: HTMLElement;
  private readonly status: HTMLElement;
  private readonly headline: HTMLElement;
  private readonly figures: HTMLElement;
  private readonly invariants: HTMLElement;
  private readonly timeline: HTMLElement;
  private readonly marks: HTMLElement;
  private readonly pageMap = new PageMapView();
  private readonly charts = new RunCharts();
  private view: RunView | null = null;

  constructor() {
    this.status = el('span', { class: 'run-status', attrs: { 'data-status': 'none', 'data-finished': 'false' }, text: 'none' });
    this.headline = el('span', { class: 'run-headline' });
    this.figures = el('dl', { class: 'figures' });
    this.invariants = el('table', { class: 'invariants' });
    const timelineCard = card('Status and iterations', 'timeline', () => (this.view === null ? '<svg xmlns="http://www.w3.org/2000/svg"/>' : timelineSvg(this.view)));
    this.timeline = el('div', { class: 'timeline' });
    this.marks = el('ul', { class: 'marks' });
    timelineCard.body.append(this.timeline, this.marks);
    const summaryCard = card('Summary', null, null);
    summaryCard.body.append(this.figures, this.invariants);
    this.root = el('div', { class: 'run-panel' }, [
      el('div', { class: 'run-line' }, [this.status, this.headline]),
      el('div', { class: 'grid two' }, [summaryCard.card, this.pageMap.card]),
      el('div', { class: 'grid one' }, [timelineCard.card]),
      el('div', { class: 'grid two' }, this.charts.cards),
    ]);
  }

  update(view: RunView): void {
    this.view = view;
    const src = view.statuses.filter((s) => s.side === 'source').at(-1)?.to ?? 'none';
    const status = view.summary?.status ?? src;
    this.status.textContent = view.summary === null ? status : `${status}${view.summary.ok === null ? '' : view.summary.ok ? ' · PASS' : ' · FAIL'}`;
    this.status.dataset.status = status;
    this.status.dataset.finished = String(view.summary !== null);
    this.status.className = `run-status s-${status}${view.summary?.ok === false ? ' fail' : ''}`;
    const start = migrationStartNs(view);
    const last = view.samples.at(-1);
    const parts = [`${view.info.scenario}`, `seed ${view.info.seed}`, `${view.info.pageCount.toLocaleString('en-US')} pages`];
    if (view.info.kind !== 'report') parts.push(view.info.kind);
    if (start !== null && last !== undefined) parts.push(`t = ${+((last.tNs - start) / 1e6).toFixed(1)} ms`, `remaining ${fmtBytes(last.remainingBytes)}`);
    this.headline.textContent = parts.join(' · ');
    this.renderSummary(view);
    this.timeline.innerHTML = timelineSvg(view, Math.max(640, Math.min(1600, this.timeline.clientWidth || 900)));
    const at = (ns: number): string => (start === null ? '' : `${+((ns - start) / 1e6).toFixed(2)} ms `);
    this.marks.replaceChildren(
      ...view.marks.filter((m) => m.kind !== 'notifier').slice(-MARKS_SHOWN).map((m) => el('li', {
        text: `${at(m.tNs)}${m.side}: ${m.text}${m.count === undefined ? '' : ` ×${m.count} (until ${at(m.lastTNs ?? m.tNs).trim()})`}`,
      })),
    );
    this.pageMap.update(view);
    this.charts.update(view);
  }

  /** Shows page-map snapshot `index` (for links such as report.html#map=6). */
  showSnapshot(index: number): void {
    this.pageMap.select(index);
  }

  private renderSummary(view: RunView): void {
    const s = view.summary;
    const rows: (readonly [string, string])[] = s === null ? [['status', 'running…']] : [...s.figures];
    const h = view.latency;
    if (h.waits > 0) {
      rows.push(['page waits', `${h.waits} (p50 ≤ ${shortNs(latencyQuantileNs(h, 0.5) ?? 0)}, p99 ≤ ${shortNs(latencyQuantileNs(h, 0.99) ?? 0)}, max ${shortNs(h.maxNs)})`]);
    }
    if (s?.error !== null && s?.error !== undefined) rows.push(['error', s.error]);
    if (s?.traceHash !== null && s?.traceHash !== undefined) rows.push(['trace-hash', s.traceHash]);
    this.figures.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
    if (s === null || s.invariants === null) {
      this.invariants.replaceChildren(...(s === null ? [] : [el('caption', { text: 'A trace holds no invariant verdicts; run livemig sim to check them.' })]));
      return;
    }
    this.invariants.replaceChildren(
      el('caption', { text: 'Invariants' }),
      ...s.invariants.map((v) => el('tr', { class: v.ok ? 'ok' : 'fail' }, [el('td', { text: v.ok ? 'ok' : 'FAIL' }), el('td', { text: v.name }), el('td', { text: v.detail })])),
    );
  }
}
