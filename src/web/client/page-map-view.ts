/// <reference lib="dom" />
/**
 * The page-state map on a canvas: one cell per bin (up to 4096 bins over all guest pages, page
 * 0 at the top left, row by row), coloured by the mix of its pages' states. A slider walks
 * through the snapshots a view holds; at its right end it follows the newest. The canvas
 * carries `data-version` (bumped on every draw), `data-snapshot` (index shown) and
 * `data-totals` (pages per state) for tests.
 */
import type { PageMapSnapshot, RunView } from '../api-types.ts';
import { PAGE_STATES } from '../api-types.ts';
import { binRgb, decodeFractions, gridOf, PAGE_STATE_COLORS, PAGE_STATE_LABELS } from '../page-map.ts';
import { migrationStartNs } from '../run-view.ts';
import { pageMapSvg } from '../svg-charts.ts';
import { card, el } from './dom.ts';

const CANVAS_WIDTH = 640;

export class PageMapView {
  readonly card: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly slider: HTMLInputElement;
  private readonly caption: HTMLElement;
  private readonly legend: HTMLElement;
  private snapshots: readonly PageMapSnapshot[] = [];
  private shown = -1;
  private follow = true;
  private version = 0;
  private startNs = 0;
  private origin: 'world' | 'trace' = 'world';

  constructor() {
    const c = card('Page-state map', 'page-map', () => {
      const snap = this.snapshots[this.shown];
      return snap === undefined ? '<svg xmlns="http://www.w3.org/2000/svg"/>' : pageMapSvg(snap, `Page-state map (${this.timeText(snap)})`);
    });
    this.card = c.card;
    this.card.id = 'page-map';
    this.canvas = el('canvas', { attrs: { width: String(CANVAS_WIDTH), height: '320', 'data-version': '0', 'aria-label': 'page-state map' } });
    this.slider = el('input', { attrs: { type: 'range', min: '0', max: '0', value: '0', 'aria-label': 'snapshot' } });
    this.caption = el('span', { class: 'map-caption' });
    this.legend = el('div', { class: 'legend' });
    this.slider.addEventListener('input', () => {
      const i = Number(this.slider.value);
      this.follow = i >= this.snapshots.length - 1;
      this.draw(i);
    });
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    c.body.append(this.canvas, el('div', { class: 'map-controls' }, [this.slider, this.caption]), this.legend);
  }

  update(view: RunView): void {
    this.snapshots = view.pageMaps;
    this.startNs = migrationStartNs(view) ?? 0;
    this.origin = view.info.pageMapOrigin;
    this.slider.max = String(Math.max(0, this.snapshots.length - 1));
    const index = this.follow ? this.snapshots.length - 1 : Math.min(this.shown, this.snapshots.length - 1);
    this.slider.value = String(Math.max(0, index));
    if (index !== this.shown || this.follow) this.draw(index);
  }

  /** Shows snapshot `index` (clamped) and stops following the newest. */
  select(index: number): void {
    const i = Math.max(0, Math.min(index, this.snapshots.length - 1));
    this.follow = i >= this.snapshots.length - 1;
    this.slider.value = String(i);
    this.draw(i);
  }

  private timeText(snap: PageMapSnapshot): string {
    const ms = (snap.tNs - this.startNs) / 1e6;
    return `${ms < 0 ? 'before migrate' : `${+ms.toFixed(1)} ms`}, ${snap.reason}`;
  }

  private draw(index: number): void {
    const snap = this.snapshots[index];
    this.shown = index;
    const ctx = this.canvas.getContext('2d');
    if (snap === undefined || ctx === null) return;
    const fractions = decodeFractions(snap);
    const { columns, rows } = gridOf(snap.bins);
    const cell = CANVAS_WIDTH / columns;
    const cellH = Math.max(3, Math.min(cell, 320 / rows));
    const height = Math.ceil(rows * cellH);
    if (this.canvas.height !== height) this.canvas.height = height;
    const image = ctx.createImageData(CANVAS_WIDTH, height);
    for (let b = 0; b < snap.bins; b++) {
      const [r, g, bl] = binRgb(fractions, b);
      const x0 = Math.round((b % columns) * cell);
      const x1 = Math.round(((b % columns) + 1) * cell);
      const y0 = Math.round(Math.floor(b / columns) * cellH);
      const y1 = Math.round((Math.floor(b / columns) + 1) * cellH);
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const o = (y * CANVAS_WIDTH + x) * 4;
          image.data[o] = r;
          image.data[o + 1] = g;
          image.data[o + 2] = bl;
          image.data[o + 3] = 255;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    this.version++;
    this.canvas.dataset.version = String(this.version);
    this.canvas.dataset.snapshot = String(index);
    this.canvas.dataset.totals = JSON.stringify(snap.totals);
    this.caption.textContent = `${index + 1}/${this.snapshots.length}: ${this.timeText(snap)} · ${snap.pageCount.toLocaleString('en-US')} pages, ${snap.binPages.toLocaleString('en-US')} per cell`;
    const untouched = snap.pageCount - PAGE_STATES.reduce((a, s) => a + snap.totals[s], 0);
    this.legend.replaceChildren(
      ...[...PAGE_STATES, 'untouched' as const].map((s) =>
        el('span', { class: 'legend-item' }, [
          el('i', { attrs: { style: `background:${PAGE_STATE_COLORS[s]}` } }),
          `${PAGE_STATE_LABELS[s]}: ${(s === 'untouched' ? untouched : snap.totals[s]).toLocaleString('en-US')}`,
        ]),
      ),
      ...(this.origin === 'trace' ? [el('div', { class: 'note', text: 'Rebuilt from the trace: hinted pages, faulted pages (missing until placed) and, after completion, the rest as sent. Runs (livemig sim --report, the dashboard) show every state.' })] : []),
    );
  }

  private hover(e: MouseEvent): void {
    const snap = this.snapshots[this.shown];
    if (snap === undefined) return;
    const { columns } = gridOf(snap.bins);
    const rect = this.canvas.getBoundingClientRect();
    const cell = rect.width / columns;
    const rows = Math.ceil(snap.bins / columns);
    const b = Math.floor((e.clientY - rect.top) / (rect.height / rows)) * columns + Math.floor((e.clientX - rect.left) / cell);
    if (b < 0 || b >= snap.bins) return;
    const f = decodeFractions(snap);
    const parts = PAGE_STATES.map((s, i) => [s, f[b * PAGE_STATES.length + i]] as const).filter(([, v]) => v > 0).map(([s, v]) => `${s} ${Math.round((v / 255) * 100)}%`);
    const first = b * snap.binPages;
    this.canvas.title = `pages ${first.toLocaleString('en-US')}–${(Math.min(first + snap.binPages, snap.pageCount) - 1).toLocaleString('en-US')}: ${parts.join(', ') || 'untouched'}`;
  }
}
