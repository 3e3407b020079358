// The dashboard and a report in a real browser (playwright-core driving Debian's chromium):
// open the dashboard with its token, start a small simulated migration (hot-set-converges
// shrunk with --set), wait for the status to reach `completed`, check that the page-state map
// was redrawn and changed, and save screenshots. Then open a `livemig sim --report` file and
// check it draws its map and charts with nothing fetched.
//
// Without chromium the tests are skipped with the reason (locally) and fail under CI=true.
// Screenshots go to $LIVEMIG_SCREENSHOT_DIR, else test-output/screenshots/ (a test never
// rewrites tracked files; LIVEMIG_SCREENSHOT_DIR=docs/img refreshes the docs' screenshots). Chromium: $LIVEMIG_CHROMIUM or /usr/bin/chromium.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadScenario } from '../sim/scenario/scenario.ts';
import { runObserved } from './observer.ts';
import { renderReport, reportData, ReportRecorder } from './report-html.ts';
import { DashboardServer } from './server.ts';
import { TINY_POSTCOPY } from './web.test-util.ts';

const CHROMIUM = process.env.LIVEMIG_CHROMIUM ?? '/usr/bin/chromium';
const IN_CI = process.env.CI === 'true';
const root = fileURLToPath(new URL('../../', import.meta.url));
const shots = process.env.LIVEMIG_SCREENSHOT_DIR ?? join(root, 'test-output', 'screenshots');
/** Flags that work as root on a closed network; playwright adds --headless and its own fresh --user-data-dir. */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const missing = existsSync(CHROMIUM) ? null : `chromium not found at ${CHROMIUM} (apt-get install chromium, or set LIVEMIG_CHROMIUM)`;
if (missing !== null && IN_CI) throw new Error(`browser tests need chromium in CI: ${missing}`);
if (missing !== null) console.log(`# skipping the browser tests: ${missing}`);

let browser: Browser | null = null;
/** Script errors of the pages opened (each test asserts there were none). */
const pageErrors: string[] = [];
async function openPage(): Promise<Page> {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => void pageErrors.push(e.message));
  return page;
}
after(async () => browser?.close());

async function mapPixels(page: Page): Promise<string> {
  return page.$eval('#page-map canvas', (c) => (c as HTMLCanvasElement).toDataURL());
}

test('dashboard: a small live migration reaches completed and the page map changes', { skip: missing ?? false, timeout: 180_000 }, async () => {
  const server = await DashboardServer.start({ port: 0, scenariosDir: join(root, 'scenarios') });
  try {
    const page = await openPage();
    const denied = await page.goto(`http://127.0.0.1:${server.port}/`);
    assert.equal(denied?.status(), 403, 'no token, no page');
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(new URL(page.url()).search, '', 'the token leaves the address bar');
    const before = await mapPixels(page);
    await page.selectOption('#scenario', 'hot-set-converges.yaml');
    await page.fill('#overrides', 'guest.memory=256M\nworkload.size=32M');
    await page.click('#start');
    await page.waitForSelector('.run-status[data-finished="true"]', { timeout: 150_000 });
    assert.equal(await page.getAttribute('.run-status', 'data-status'), 'completed');
    const canvas = '#page-map canvas';
    assert.ok(Number(await page.getAttribute(canvas, 'data-version')) >= 2, 'the map was redrawn as the run went');
    assert.notEqual(await mapPixels(page), before, 'the map pixels changed');
    const totals = JSON.parse((await page.getAttribute(canvas, 'data-totals')) ?? '{}') as Record<string, number>;
    assert.equal(totals.sent, 65536, 'every page of the 256 MiB guest ends on the destination');
    assert.ok((await page.$$('.uplot')).length >= 4, 'the four charts');
    mkdirSync(shots, { recursive: true });
    // Mid-migration the map was another picture (dirty pages turning into sent ones): show it.
    const final = await mapPixels(page);
    const snapshots = Number(await page.getAttribute('#page-map input[type=range]', 'max'));
    await page.$eval('#page-map input[type=range]', (el, v) => {
      (el as HTMLInputElement).value = String(v);
      el.dispatchEvent(new Event('input'));
    }, Math.floor(snapshots / 2));
    assert.notEqual(await mapPixels(page), final, 'the map mid-run differs from the end');
    const mid = JSON.parse((await page.getAttribute(canvas, 'data-totals')) ?? '{}') as Record<string, number>;
    assert.ok(mid.sent < 65536, 'not every page was sent mid-run');
    await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true });
    await page.close();
    assert.deepEqual(pageErrors, []);
  } finally {
    await server.close();
  }
});

test('dashboard: a real run (two livemig VMs over loopback TCP) reaches completed with every verdict ok', { skip: missing ?? false, timeout: 180_000 }, async () => {
  const server = await DashboardServer.start({ port: 0, scenariosDir: join(root, 'scenarios') });
  try {
    const page = await openPage();
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.selectOption('#real-memory', '256M');
    await page.click('#start-real');
    await page.waitForSelector('.run-status[data-finished="true"]', { timeout: 150_000 });
    assert.equal(await page.getAttribute('.run-status', 'data-status'), 'completed');
    const totals = JSON.parse((await page.getAttribute('#page-map canvas', 'data-totals')) ?? '{}') as Record<string, number>;
    assert.equal(totals.sent + totals.hinted, 65536, 'every page is on the destination or was hinted free');
    assert.ok(totals.hinted > 0, 'the balloon hinted free memory');
    assert.ok((await page.$$('.uplot')).length >= 4, 'the four charts');
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'dashboard-real.png'), fullPage: true });
    await page.close();
    assert.deepEqual(pageErrors, []);
  } finally {
    await server.close();
  }
});

test('report: a livemig sim --report file draws its map and charts offline', { skip: missing ?? false, timeout: 120_000 }, async () => {
  const recorder = new ReportRecorder(false);
  runObserved(loadScenario(TINY_POSTCOPY), undefined, recorder.observer);
  const file = join(mkdtempSync(join(tmpdir(), 'livemig-report-')), 'report.html');
  writeFileSync(file, renderReport(reportData('livemig report: tiny-postcopy', 'the browser test', [recorder.view()])));
  const page = await openPage();
  const requests: string[] = [];
  page.on('request', (r) => void (r.url().startsWith('file:') || r.url().startsWith('data:') || requests.push(r.url())));
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector('body[data-ready="true"]');
  assert.deepEqual(requests, [], 'nothing fetched');
  assert.equal(await page.getAttribute('.run-status', 'data-status'), 'completed');
  assert.ok(Number(await page.getAttribute('#page-map canvas', 'data-version')) >= 1);
  assert.ok((await page.$$('.uplot')).length >= 4);
  // Walk the snapshots with the slider: postcopy shows missing pages; picture the one where
  // missing and sent pages are most even.
  const slider = '#page-map input[type=range]';
  const count = Number(await page.getAttribute(slider, 'max')) + 1;
  let most = { index: -1, missing: 0, score: -1 };
  for (let i = 0; i < count; i++) {
    await page.$eval(slider, (el, v) => {
      (el as HTMLInputElement).value = String(v);
      el.dispatchEvent(new Event('input'));
    }, i);
    const totals = JSON.parse((await page.getAttribute('#page-map canvas', 'data-totals')) ?? '{}') as Record<string, number>;
    const score = Math.min(totals.missing, totals.sent);
    if (totals.missing > 0 && score > most.score) most = { index: i, missing: totals.missing, score };
  }
  assert.ok(most.missing > 0, 'a snapshot shows pages missing on the destination');
  await page.$eval(slider, (el, v) => {
    (el as HTMLInputElement).value = String(v);
    el.dispatchEvent(new Event('input'));
  }, most.index);
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, 'report.png'), fullPage: true });
  await page.close();
  assert.deepEqual(pageErrors, []);
});
