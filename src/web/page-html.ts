/**
 * The HTML shells of the two pages: the dashboard (its script is served by the server) and
 * the self-contained report (script, styles and data inlined). One stylesheet for both.
 */

/** Styles of both pages (uPlot's own CSS is added next to it). */
export const PAGE_CSS = `
:root { color-scheme: light; --fg: #1f2328; --muted: #5f6b76; --line: #d8dee4; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 12px; padding: 10px 18px; background: #fff; border-bottom: 1px solid var(--line); }
header h1 { font-size: 17px; margin: 0; }
main { padding: 14px 18px; max-width: 1480px; margin: 0 auto; }
h2 { font-size: 16px; margin: 18px 0 8px; }
.badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #eef1f4; color: var(--muted); }
.badge[data-state="open"] { background: #dff3e6; color: #1c6b3c; }
.controls { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: flex-end; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.controls label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 3px; }
.controls select, .controls input, .controls textarea { font: inherit; font-size: 13px; }
.controls textarea { width: 260px; height: 44px; font-family: ui-monospace, monospace; }
button { font: inherit; font-size: 13px; padding: 4px 12px; border: 1px solid #b9c1c9; border-radius: 6px; background: #fff; cursor: pointer; }
button.primary { background: #1f6feb; border-color: #1f6feb; color: #fff; }
.message { color: var(--muted); min-height: 1.4em; margin: 6px 2px; }
.message.error { color: #b42318; }
.run-line { display: flex; gap: 12px; align-items: center; margin: 10px 0; }
.run-status { font-weight: 600; padding: 3px 10px; border-radius: 6px; background: #eef1f4; }
.run-status.s-completed { background: #dff3e6; color: #1c6b3c; }
.run-status.s-active, .run-status.s-setup { background: #e3edfb; color: #1d4f9a; }
.run-status.s-postcopy-active { background: #fdeedd; color: #8a4b08; }
.run-status.s-failed, .run-status.s-cancelled, .run-status.fail { background: #fde4e1; color: #b42318; }
.run-headline { color: var(--muted); }
.grid { display: grid; gap: 12px; margin-bottom: 12px; }
.grid.two { grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); }
.grid.one { grid-template-columns: 1fr; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px 10px; min-width: 0; }
.card-head { display: flex; justify-content: space-between; align-items: center; }
.card-head h3 { font-size: 14px; margin: 2px 0 6px; }
.exports button { font-size: 11px; padding: 1px 7px; margin-left: 4px; }
.figures { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 8px; }
.figures dt { color: var(--muted); }
.figures dd { margin: 0; font-variant-numeric: tabular-nums; word-break: break-all; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; color: var(--muted); }
td, th { border-top: 1px solid #eef0f2; padding: 3px 6px; vertical-align: top; text-align: left; }
tr.ok td:first-child { color: #1c6b3c; font-weight: 600; }
tr.fail td:first-child, tr.fail td { color: #b42318; }
.timeline svg { width: 100%; height: auto; }
.marks { list-style: none; padding: 0; margin: 6px 0 0; font-size: 12px; color: var(--muted); max-height: 120px; columns: 2; overflow: auto; font-family: ui-monospace, monospace; }
#page-map canvas { width: 100%; max-width: 720px; image-rendering: pixelated; border: 1px solid var(--line); display: block; }
.map-controls { display: flex; gap: 10px; align-items: center; margin: 6px 0; }
.map-controls input { width: 320px; }
.map-caption { color: var(--muted); font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; }
.legend-item i { display: inline-block; width: 11px; height: 11px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }
.note { flex-basis: 100%; color: var(--muted); font-size: 12px; }
.compare-section svg, .card-body > svg { width: 100%; height: auto; }
footer { color: var(--muted); font-size: 12px; padding: 12px 18px 24px; }
`;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Script text made safe inside <script>: no closing tag can appear. */
export function scriptSafe(code: string): string {
  return code.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** The dashboard page; its script and uPlot's CSS are served by the server. */
export function dashboardHtml(token: string, version: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>livemig dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="livemig-token" content="${esc(token)}">
<link rel="stylesheet" href="/uplot.css"><style>${PAGE_CSS}</style></head>
<body>
<header><h1>livemig dashboard</h1><span class="badge" id="connection">connecting</span><span class="badge">v${esc(version)}</span></header>
<main>
<form class="controls" id="controls">
  <label>scenario <select id="scenario"></select></label>
  <label>seed <input id="seed" type="number" min="0" placeholder="scenario's" style="width:110px"></label>
  <label>--set overrides (one per line) <textarea id="overrides" placeholder="guest.memory=256M"></textarea></label>
  <button type="button" id="start" class="primary">Run</button>
  <label>real run, RAM per VM <select id="real-memory"><option>256M</option><option selected>1G</option><option>2G</option></select></label>
  <button type="button" id="start-real">Run livemig start</button>
  <label>replay pace <select id="replay-seconds"><option value="0">at once</option><option value="4">4 s</option><option value="8" selected>8 s</option><option value="20">20 s</option></select></label>
  <button type="button" id="replay-file" hidden>Replay</button>
  <label>replay a trace file <input type="file" id="trace-upload" accept=".jsonl,.json,.txt"></label>
  <button type="button" id="cancel">Stop</button>
  <a href="/report.html" id="download-report" download="livemig-report.html">Download report</a>
</form>
<div class="message" id="message"></div>
<div id="app"></div>
</main>
<script src="/app.js"></script>
</body></html>
`;
}

/** The self-contained report: styles, uPlot, the page script and the gzip'd data inlined. */
export function reportHtml(title: string, footer: string, css: string, script: string, dataBase64: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${css}${PAGE_CSS}</style></head>
<body>
<header><h1>${esc(title)}</h1></header>
<main id="app"></main>
<footer>${esc(footer)}</footer>
<script type="application/octet-stream" id="report-data">${dataBase64}</script>
<script>${scriptSafe(script)}</script>
</body></html>
`;
}
