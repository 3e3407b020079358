/**
 * The dashboard server: HTTP and a WebSocket on 127.0.0.1 only, guarded by a random token
 * (Vitest's `api/check.ts` pattern). The token comes in the URL the CLI prints; the page is
 * served with it as an HTTP-only SameSite=Strict cookie, so its script, styles and report
 * links need no token in the address. Every request and WebSocket upgrade without the token
 * gets 403; so does a Host that is not the loopback address (DNS rebinding) and a WebSocket
 * Origin from another site.
 *
 * Routes: `/` the page, `/app.js` its script (esbuild bundle), `/uplot.css`, `/report.html`
 * the HTML report of the current run, `/ws` the API (api-types.ts, over rpc.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { loadScenario } from '../sim/scenario/scenario.ts';
import type { DashboardEvents, DashboardHandlers, ScenarioInfo } from './api-types.ts';
import { TOKEN_COOKIE, TOKEN_PARAM, WS_PATH } from './api-types.ts';
import { clientBundle, uplotCss } from './bundle.ts';
import { dashboardHtml } from './page-html.ts';
import { reportData, renderReport } from './report-html.ts';
import { frozenView } from './run-view.ts';
import { RunManager } from './runs.ts';
import { encodeEvent, RpcPeer, type LocalImpl } from './rpc.ts';

/** Largest WebSocket message (a trace picked in the page travels in one). */
const WS_PAYLOAD_MAX = 256 * 1024 * 1024;
/** A page whose socket has this much unsent is skipped for page maps until it drains. */
const WS_BACKLOG_MAPS_MAX = 8 * 1024 * 1024;

export interface DashboardOptions {
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Directory of scenario files (*.yaml). */
  readonly scenariosDir: string;
  /** A trace to offer for replay. */
  readonly traceFile?: string | null;
  /** The token (default: 24 random bytes, base64url). */
  readonly token?: string;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0';
  }
}

export class DashboardServer {
  readonly token: string;
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly runs: RunManager;
  private readonly tokenDigest: Buffer;
  private portValue = 0;

  private constructor(private readonly options: DashboardOptions) {
    this.token = options.token ?? randomBytes(24).toString('base64url');
    this.tokenDigest = digest(this.token);
    this.runs = new RunManager((name, ...args) => this.broadcast(name, ...args));
    this.http = createServer((req, res) => this.onRequest(req, res));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: WS_PAYLOAD_MAX });
    this.http.on('upgrade', (req, socket, head) => {
      if (!this.allowed(req) || new URL(req.url ?? '/', 'http://x').pathname !== WS_PATH || !this.sameOrigin(req)) {
        socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  /** Listens on 127.0.0.1. */
  static async start(options: DashboardOptions): Promise<DashboardServer> {
    const server = new DashboardServer(options);
    clientBundle('dashboard');
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen(options.port, '127.0.0.1', () => resolve());
    });
    server.portValue = (server.http.address() as AddressInfo).port;
    return server;
  }

  get port(): number {
    return this.portValue;
  }

  /** The URL to open (it carries the token). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/?${TOKEN_PARAM}=${this.token}`;
  }

  async close(): Promise<void> {
    this.runs.cancel();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /** Token from the query or the cookie, compared in constant time; Host must be loopback. */
  private allowed(req: IncomingMessage): boolean {
    const host = req.headers.host ?? '';
    if (![`127.0.0.1:${this.port}`, `localhost:${this.port}`].includes(host)) return false;
    const url = new URL(req.url ?? '/', 'http://x');
    const cookie = (req.headers.cookie ?? '').split(';').map((c) => c.trim().split('=')).find(([k]) => k === TOKEN_COOKIE)?.[1];
    const given = url.searchParams.get(TOKEN_PARAM) ?? (cookie === undefined ? null : decodeURIComponent(cookie));
    return given !== null && timingSafeEqual(digest(given), this.tokenDigest);
  }

  private sameOrigin(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    return origin === undefined || origin === `http://${req.headers.host}`;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (!this.allowed(req)) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' }).end('forbidden: open the URL livemig dashboard printed (it carries the token)\n');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    try {
      if (req.method !== 'GET') res.writeHead(405).end();
      else if (path === '/') this.sendPage(res);
      else if (path === '/app.js') res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(clientBundle('dashboard'));
      else if (path === '/uplot.css') res.writeHead(200, { 'Content-Type': 'text/css; charset=utf-8' }).end(uplotCss());
      else if (path === '/report.html') this.sendReport(res);
      else if (path === '/favicon.ico') res.writeHead(204).end();
      else res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    } catch (error) {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${(error as Error).message}\n`);
    }
  }

  private sendPage(res: ServerResponse): void {
    const host = `127.0.0.1:${this.port} localhost:${this.port}`;
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Set-Cookie': `${TOKEN_COOKIE}=${encodeURIComponent(this.token)}; HttpOnly; SameSite=Strict; Path=/`,
      'Content-Security-Policy': `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ${host.split(' ').map((h) => `ws://${h}`).join(' ')}`,
    }).end(dashboardHtml(this.token, version()));
  }

  private sendReport(res: ServerResponse): void {
    const view = this.runs.view.view();
    if (view === null) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no run yet\n');
      return;
    }
    const html = renderReport(reportData(`livemig report: ${view.info.scenario} (${view.info.kind})`, 'livemig dashboard', [frozenView(view)]));
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Disposition': 'attachment; filename="livemig-report.html"' }).end(html);
  }

  private broadcast<K extends keyof DashboardEvents>(name: K, ...args: Parameters<DashboardEvents[K]>): void {
    const frame = (encodeEvent as (n: string, ...a: unknown[]) => string)(name, ...args);
    for (const ws of this.wss.clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (name === 'pageMap' && ws.bufferedAmount > WS_BACKLOG_MAPS_MAX) continue;
      ws.send(frame);
    }
  }

  private onSocket(ws: WebSocket): void {
    const peer = new RpcPeer<DashboardHandlers, DashboardEvents>(this.handlers(), (text) => ws.send(text));
    ws.on('message', (data) => void peer.receive(String(data)));
    ws.on('close', () => peer.close('closed'));
  }

  private scenarios(): ScenarioInfo[] {
    const dir = this.options.scenariosDir;
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort();
    } catch {
      return [];
    }
    return files.map((file) => {
      try {
        const s = loadScenario(readFileSync(join(dir, file), 'utf8'));
        return { file, name: s.name, description: s.description };
      } catch (error) {
        return { file, name: file, description: `(invalid: ${(error as Error).message.split('\n')[0]})` };
      }
    });
  }

  private handlers(): LocalImpl<DashboardHandlers> {
    const traceFile = this.options.traceFile ?? null;
    return {
      hello: () => {
        const current = this.runs.view.view();
        return { version: version(), scenarios: this.scenarios(), traceFile: traceFile === null ? null : basename(traceFile), current: current === null ? null : frozenView(current) };
      },
      startRun: (request) => {
        const file = this.scenarios().find((s) => s.file === request.scenario)?.file;
        if (file === undefined) throw new Error(`no scenario '${request.scenario}'`);
        const seed = request.seed ?? null;
        if (seed !== null && !(Number.isSafeInteger(seed) && seed >= 0 && seed <= 0xffffffff)) throw new Error(`seed ${seed} is not an integer in 0..4294967295`);
        return this.runs.startLive(file, readFileSync(join(this.options.scenariosDir, file), 'utf8'), seed, request.overrides ?? []);
      },
      startRealRun: (request) => {
        const memory = String(request.memory);
        if (!/^\d+[MG]$/.test(memory)) throw new Error(`memory '${memory}': expected a size such as 256M or 2G`);
        const mib = Number(memory.slice(0, -1)) * (memory.endsWith('G') ? 1024 : 1);
        if (mib < 64 || mib > 4096) throw new Error(`memory ${memory}: expected 64M..4G`);
        return this.runs.startReal(memory);
      },
      replay: (request) => {
        const seconds = Math.min(600, Math.max(0, request.seconds ?? 8));
        if (request.text !== null) return this.runs.replay(request.text, request.label ?? 'uploaded trace', seconds);
        if (traceFile === null) throw new Error('no trace was given (livemig dashboard --trace FILE)');
        return this.runs.replay(readFileSync(traceFile, 'utf8'), basename(traceFile), seconds);
      },
      cancel: () => this.runs.cancel(),
    };
  }
}
