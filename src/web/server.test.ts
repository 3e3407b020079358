// The dashboard server: everything needs the token (query or the page's cookie), the Host must
// be loopback and a WebSocket's Origin the page's own; through the typed API a page lists the
// scenarios, runs one in a worker with events streamed until `finished`, replays a trace, and
// gets usage errors back as rejections. /report.html is the current run's report.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { DashboardEvents, DashboardHandlers, PageMapSnapshot, RunSummary } from './api-types.ts';
import { RpcPeer } from './rpc.ts';
import { DashboardServer } from './server.ts';
import { TINY_PRECOPY } from './web.test-util.ts';

const dir = mkdtempSync(join(tmpdir(), 'livemig-dash-'));
writeFileSync(join(dir, 'tiny.yaml'), TINY_PRECOPY);
const server = await DashboardServer.start({ port: 0, scenariosDir: dir });
after(() => server.close());
const base = `http://127.0.0.1:${server.port}`;

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

interface Client {
  api: RpcPeer<DashboardEvents, DashboardHandlers>['remote'];
  finished: Promise<RunSummary>;
  maps: PageMapSnapshot[];
  close(): void;
}

function connect(query: string, headers: Record<string, string> = {}): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws${query}`, { headers });
  const maps: PageMapSnapshot[] = [];
  let done: (s: RunSummary) => void = () => undefined;
  const finished = new Promise<RunSummary>((resolve) => (done = resolve));
  const peer = new RpcPeer<DashboardEvents, DashboardHandlers>({
    runStarted: () => undefined,
    progress: () => undefined,
    pageMap: (m) => void maps.push(m),
    finished: (s) => done(s),
  }, (text) => ws.send(text));
  ws.on('message', (data) => void peer.receive(String(data)));
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ api: peer.remote, finished, maps, close: () => ws.close() }));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.on('error', reject);
  });
}

test('HTTP: 403 without the token or with a foreign Host; the page sets the cookie', async () => {
  assert.equal((await get('/')).status, 403);
  assert.equal((await get('/app.js')).status, 403);
  assert.equal((await get('/?token=wrong')).status, 403);
  assert.equal((await get(`/?token=${server.token}`, { Host: `evil.example:${server.port}` })).status, 403);
  const page = await get(`/?token=${server.token}`);
  assert.equal(page.status, 200);
  assert.match(String(page.headers['set-cookie']), /livemig_token=.*HttpOnly; SameSite=Strict/);
  assert.match(page.body, /<meta name="livemig-token"/);
  assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
  const script = await get('/app.js', { Cookie: `livemig_token=${encodeURIComponent(server.token)}` });
  assert.equal(script.status, 200);
  assert.ok(script.body.length > 10_000, 'the bundle with uPlot');
});

test('WebSocket: refused without the token or from another origin', async () => {
  await assert.rejects(connect(''), /HTTP 403/);
  await assert.rejects(connect(`?token=${server.token}`, { Origin: 'http://evil.example' }), /HTTP 403/);
});

test('a live run streams maps and finishes completed; /report.html then has it', async () => {
  const client = await connect(`?token=${server.token}`, { Origin: `http://127.0.0.1:${server.port}` });
  try {
    const hello = await client.api.hello();
    assert.deepEqual(hello.scenarios.map((s) => s.name), ['tiny']);
    const info = await client.api.startRun({ scenario: 'tiny.yaml', seed: 3, overrides: ['settle=30ms'] });
    assert.equal(info.kind, 'live');
    assert.equal(info.seed, 3);
    const summary = await client.finished;
    assert.equal(summary.status, 'completed');
    assert.equal(summary.ok, true);
    assert.ok(client.maps.length >= 2);
    const late = await client.api.hello();
    assert.equal(late.current?.summary?.status, 'completed', 'a page joining later gets the run');
    const report = await get(`/report.html?token=${server.token}`);
    assert.equal(report.status, 200);
    assert.match(report.body, /id="report-data"/);
  } finally {
    client.close();
  }
});

test('a real run (livemig start in a child process) streams its events and finishes with every verdict ok', async () => {
  const client = await connect(`?token=${server.token}`, { Origin: `http://127.0.0.1:${server.port}` });
  try {
    await assert.rejects(client.api.startRealRun({ memory: '8G' }), /expected 64M\.\.4G/);
    await assert.rejects(client.api.startRealRun({ memory: 'lots' }), /expected a size/);
    const info = await client.api.startRealRun({ memory: '128M' });
    assert.equal(info.kind, 'live');
    assert.equal(info.pageCount, 32768);
    const summary = await client.finished;
    assert.equal(summary.status, 'completed', summary.error ?? '');
    assert.equal(summary.ok, true);
    assert.ok(summary.invariants !== null && summary.invariants.some((v) => v.name === 'memory-equality'));
    const end = client.maps.at(-1)!;
    assert.equal(end.reason, 'end');
    assert.equal(end.totals.sent + end.totals.hinted, 32768, 'every page reached the destination or was hinted free');
    const view = (await client.api.hello()).current!;
    assert.ok(view.statuses.some((s) => s.side === 'source' && s.to === 'completed'));
  } finally {
    client.close();
  }
});

test('usage errors come back as rejections; a trace replays at once', async () => {
  const client = await connect(`?token=${server.token}`);
  try {
    await assert.rejects(client.api.startRun({ scenario: '../etc/passwd' }), /no scenario/);
    await assert.rejects(client.api.startRun({ scenario: 'tiny.yaml', overrides: ['nonsense'] }), /not key=value/);
    await assert.rejects(client.api.startRun({ scenario: 'tiny.yaml', overrides: ['guest.bogus=1'] }), /bogus/);
    await assert.rejects(client.api.replay({ text: null }), /no trace was given/);
    await assert.rejects(client.api.replay({ text: 'not a trace' }), /not a livemig trace/);
    const trace = [
      { t: 0, ev: 'run', scenario: 'r', seed: 1, pages: 64, backing: 'bytes' },
      { t: 5, ev: 'status', side: 'source', from: 'none', to: 'setup' },
      { t: 9, ev: 'status', side: 'source', from: 'setup', to: 'completed' },
      { t: 9, ev: 'end', status: 'completed', reason: 'completed' },
    ].map((r) => JSON.stringify(r)).join('\n');
    const info = await client.api.replay({ text: trace, seconds: 0 });
    assert.equal(info.kind, 'replay');
    assert.equal((await client.finished).status, 'completed');
    assert.equal(await client.api.cancel(), false, 'nothing runs any more');
  } finally {
    client.close();
  }
});
