/**
 * The page-state map: guest pages binned into at most PAGE_MAP_BINS_MAX bins, each bin holding
 * the share of its pages in each state (api-types.ts PAGE_STATES). Built from bitmaps one
 * 32-bit word at a time, so a 1 TiB guest (268 million pages) costs one pass over 8 million
 * words; encoded as base64 bytes for the wire and the report; drawn by the canvas view and the
 * SVG export with the same colours.
 *
 * Pure: no node:*, no DOM; bundled into the browser code as well.
 */
import { PAGE_MAP_BINS_MAX, PAGE_STATES, type PageMapSnapshot, type PageState } from './api-types.ts';

const STATE_COUNT = PAGE_STATES.length;
const S_SENT = 0;
const S_DIRTY = 1;
const S_HINTED = 2;
const S_UNPLUGGED = 3;
const S_MISSING = 4;

/** Colours of the states (and of untouched pages), shared by every view. */
export const PAGE_STATE_COLORS: Readonly<Record<PageState | 'untouched', string>> = {
  sent: '#2e9e5b',
  dirty: '#e4572e',
  hinted: '#3d7edb',
  unplugged: '#5f6368',
  missing: '#b62fc4',
  untouched: '#e3e7ec',
};

/** What each state means, for legends. */
export const PAGE_STATE_LABELS: Readonly<Record<PageState | 'untouched', string>> = {
  sent: 'sent (on the destination)',
  dirty: 'dirty (still to send)',
  hinted: 'hinted free, not sent',
  unplugged: 'unplugged (virtio-mem)',
  missing: 'missing on the destination',
  untouched: 'in flight, before migrate, or not known',
};

/** Bin size and count for `pageCount` pages: the fewest pages per bin that fit PAGE_MAP_BINS_MAX bins. */
export function pageMapGeometry(pageCount: number, binsMax = PAGE_MAP_BINS_MAX): { binPages: number; bins: number } {
  const binPages = Math.max(1, Math.ceil(pageCount / binsMax));
  return { binPages, bins: Math.max(1, Math.ceil(pageCount / binPages)) };
}

/** The bitmaps a map is classified from (words of lib/bitmap.ts layout); null means all clear. */
export interface PageMapInputs {
  readonly pageCount: number;
  /** Pages on the destination. */
  readonly received: Uint32Array | null;
  /** Pages the source still has to send. */
  readonly dirty: Uint32Array | null;
  /** Pages a free page hint cleared. */
  readonly hinted: Uint32Array | null;
  readonly unplugged: Uint32Array | null;
  /**
   * Missing pages: given explicitly, or (`true`) every page not received, not hinted and not
   * unplugged, because the guest runs on the destination; false for none.
   */
  readonly missing: Uint32Array | boolean;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Per-bin page counts of each state: counts[bin × STATE_COUNT + state]. */
export function classifyPages(inputs: PageMapInputs, binsMax = PAGE_MAP_BINS_MAX): { binPages: number; bins: number; counts: Uint32Array } {
  const { pageCount } = inputs;
  const { binPages, bins } = pageMapGeometry(pageCount, binsMax);
  const counts = new Uint32Array(bins * STATE_COUNT);
  const words = Math.ceil(pageCount / 32);
  const word = (a: Uint32Array | null, w: number): number => (a === null ? 0 : a[w] | 0);
  const explicitMissing = typeof inputs.missing === 'boolean' ? null : inputs.missing;
  const onDestination = inputs.missing === true;
  const masks = new Int32Array(STATE_COUNT);
  for (let w = 0; w < words; w++) {
    const valid = w === words - 1 && pageCount % 32 !== 0 ? (1 << (pageCount % 32)) - 1 : -1;
    const u = word(inputs.unplugged, w) & valid;
    const r = word(inputs.received, w) & valid;
    const d = word(inputs.dirty, w) & valid;
    const h = word(inputs.hinted, w) & valid;
    const m = explicitMissing !== null ? word(explicitMissing, w) & ~r & ~u & valid : onDestination ? ~r & ~h & ~u & valid : 0;
    if ((u | r | d | h | m) === 0) continue;
    masks[S_UNPLUGGED] = u;
    masks[S_MISSING] = m;
    masks[S_DIRTY] = d & ~u & ~m;
    masks[S_HINTED] = h & ~r & ~u & ~d & ~m;
    masks[S_SENT] = r & ~u & ~d & ~m;
    const first = w * 32;
    const b0 = Math.floor(first / binPages);
    const b1 = Math.floor(Math.min(first + 31, pageCount - 1) / binPages);
    if (b0 === b1) {
      for (let s = 0; s < STATE_COUNT; s++) if (masks[s] !== 0) counts[b0 * STATE_COUNT + s] += popcount(masks[s]);
      continue;
    }
    for (let b = b0; b <= b1; b++) {
      const lo = Math.max(b * binPages - first, 0);
      const hi = Math.min((b + 1) * binPages - first, 32);
      const span = hi - lo === 32 ? -1 : (((1 << (hi - lo)) - 1) << lo);
      for (let s = 0; s < STATE_COUNT; s++) counts[b * STATE_COUNT + s] += popcount(masks[s] & span);
    }
  }
  return { binPages, bins, counts };
}

/** Pages in bin `b`. */
export function binSize(pageCount: number, binPages: number, b: number): number {
  return Math.min(binPages, pageCount - b * binPages);
}

function toBase64(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** A snapshot of classified counts. */
export function snapshotOf(inputs: PageMapInputs, tNs: number, reason: string, binsMax = PAGE_MAP_BINS_MAX): PageMapSnapshot {
  const { binPages, bins, counts } = classifyPages(inputs, binsMax);
  const bytes = new Uint8Array(bins * STATE_COUNT);
  const totals = [0, 0, 0, 0, 0];
  for (let b = 0; b < bins; b++) {
    const size = binSize(inputs.pageCount, binPages, b);
    for (let s = 0; s < STATE_COUNT; s++) {
      const c = counts[b * STATE_COUNT + s];
      totals[s] += c;
      // A state with any page in the bin gets at least 1, so single pages stay visible.
      bytes[b * STATE_COUNT + s] = c === 0 ? 0 : Math.max(1, Math.round((255 * c) / size));
    }
  }
  const named = Object.fromEntries(PAGE_STATES.map((name, s) => [name, totals[s]])) as Record<PageState, number>;
  return { tNs, pageCount: inputs.pageCount, binPages, bins, fractions: toBase64(bytes), totals: named, reason };
}

/** The bytes of a snapshot's fractions (bins × 5). */
export function decodeFractions(snapshot: PageMapSnapshot): Uint8Array {
  return fromBase64(snapshot.fractions);
}

function rgbOf(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

const STATE_RGB = PAGE_STATES.map((s) => rgbOf(PAGE_STATE_COLORS[s]));
const UNTOUCHED_RGB = rgbOf(PAGE_STATE_COLORS.untouched);

/** Colour of bin `b`: the states' colours mixed by their shares (untouched fills the rest). */
export function binRgb(fractions: Uint8Array, b: number): [number, number, number] {
  let rest = 255;
  const rgb = [0, 0, 0];
  for (let s = 0; s < STATE_COUNT; s++) {
    const f = fractions[b * STATE_COUNT + s];
    if (f === 0) continue;
    rest -= f;
    for (let c = 0; c < 3; c++) rgb[c] += f * STATE_RGB[s][c];
  }
  if (rest > 0) for (let c = 0; c < 3; c++) rgb[c] += rest * UNTOUCHED_RGB[c];
  const total = Math.max(255, 255 - rest);
  return [Math.round(rgb[0] / total), Math.round(rgb[1] / total), Math.round(rgb[2] / total)];
}

/** Grid of the map: columns per row for `bins` bins (64 for a full map). */
export function gridOf(bins: number): { columns: number; rows: number } {
  const columns = Math.min(64, Math.max(1, Math.ceil(Math.sqrt(bins * 1.6))));
  return { columns, rows: Math.ceil(bins / columns) };
}
