/// <reference lib="dom" />
/**
 * Small DOM helpers for the dashboard and report pages (no framework): element building,
 * number formatting, and exporting a drawing as an SVG or PNG download.
 */
import { formatBytes } from '../../lib/units.ts';

export interface ElProps {
  readonly class?: string;
  readonly text?: string;
  readonly attrs?: Readonly<Record<string, string>>;
}

/** Creates an element with a class, text, attributes and children. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: ElProps = {}, children: readonly (Node | string)[] = []): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class !== undefined) node.className = props.class;
  if (props.text !== undefined) node.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

export function fmtBytes(bytes: number): string {
  return formatBytes(bytes);
}

/** Virtual ns as ms with three decimals at most. */
export function fmtMs(ns: number): string {
  return `${+(ns / 1e6).toFixed(3)} ms`;
}

function saveUrl(url: string, name: string): void {
  const a = el('a', { attrs: { href: url, download: name } });
  document.body.append(a);
  a.click();
  a.remove();
}

/** Downloads SVG text as a file. */
export function downloadSvg(svg: string, name: string): void {
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  saveUrl(url, `${name}.svg`);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Rasterises SVG text at 2× and downloads it as a PNG. */
export function downloadPng(svg: string, name: string): void {
  const img = new Image();
  img.onload = () => {
    const canvas = el('canvas');
    canvas.width = img.width * 2;
    canvas.height = img.height * 2;
    const ctx = canvas.getContext('2d');
    if (ctx === null) return;
    ctx.scale(2, 2);
    ctx.drawImage(img, 0, 0);
    saveUrl(canvas.toDataURL('image/png'), `${name}.png`);
  };
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

/** "SVG" and "PNG" buttons that export what `svgOf` draws. */
export function exportButtons(name: string, svgOf: () => string): HTMLElement {
  const svgButton = el('button', { class: 'export', text: 'SVG', attrs: { type: 'button', title: `download ${name}.svg` } });
  const pngButton = el('button', { class: 'export', text: 'PNG', attrs: { type: 'button', title: `download ${name}.png` } });
  svgButton.addEventListener('click', () => downloadSvg(svgOf(), name));
  pngButton.addEventListener('click', () => downloadPng(svgOf(), name));
  return el('span', { class: 'exports' }, [svgButton, pngButton]);
}

/** A titled card with export buttons; returns the card and its body. */
export function card(title: string, exportName: string | null, svgOf: (() => string) | null): { card: HTMLElement; body: HTMLElement } {
  const head = el('div', { class: 'card-head' }, [el('h3', { text: title })]);
  if (exportName !== null && svgOf !== null) head.append(exportButtons(exportName, svgOf));
  const body = el('div', { class: 'card-body' });
  return { card: el('section', { class: 'card', attrs: { 'data-chart': exportName ?? title } }, [head, body]), body };
}
