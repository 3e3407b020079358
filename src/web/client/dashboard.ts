/// <reference lib="dom" />
/**
 * The dashboard page: controls to run a scenario in the server (seed and `--set` overrides),
 * run `livemig start` for real (two livemig VMs over loopback TCP), or replay a trace (the one given to `livemig dashboard --trace`, or a file picked here),
 * and the run panel, fed by the server's events through one store (RunViewBuilder) whether
 * the run is live or replayed. Redraws at most once per animation frame.
 */
import type { DashboardEvents, ServerHello } from '../api-types.ts';
import type { LocalImpl } from '../rpc.ts';
import { RunViewBuilder } from '../run-view.ts';
import { el } from './dom.ts';
import { RunPanel } from './run-panel.ts';
import { DashboardConnection, type ConnectionState } from './ws-client.ts';

const store = new RunViewBuilder();
const panel = new RunPanel();
let drawn = -1;
let frame = 0;

function redraw(): void {
  if (frame !== 0) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const view = store.view();
    if (view === null || store.version === drawn) return;
    drawn = store.version;
    panel.update(view);
  });
}

const events: LocalImpl<DashboardEvents> = {
  runStarted: (info) => (store.runStarted(info), redraw()),
  progress: (batch) => (store.progress(batch), redraw()),
  pageMap: (snapshot) => (store.pageMap(snapshot), redraw()),
  finished: (summary) => (store.finished(summary), redraw()),
};

function byId<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function say(text: string, error = false): void {
  const m = byId('message');
  m.textContent = text;
  m.className = error ? 'message error' : 'message';
}

function controls(hello: ServerHello, connection: DashboardConnection): void {
  const select = byId<HTMLSelectElement>('scenario');
  select.replaceChildren(...hello.scenarios.map((s) => el('option', { text: `${s.name} — ${s.description}`, attrs: { value: s.file } })));
  const fileButton = byId<HTMLButtonElement>('replay-file');
  fileButton.hidden = hello.traceFile === null;
  fileButton.textContent = `Replay ${hello.traceFile ?? ''}`;
  const seconds = (): number => Number(byId<HTMLSelectElement>('replay-seconds').value);
  const run = async (what: string, call: () => Promise<unknown>): Promise<void> => {
    try {
      say(`${what}…`);
      await call();
      say(`${what}: started`);
    } catch (error) {
      say(`${what}: ${(error as Error).message}`, true);
    }
  };
  byId('start').onclick = () => void run('run', () => {
    const seedText = byId<HTMLInputElement>('seed').value.trim();
    const overrides = byId<HTMLTextAreaElement>('overrides').value.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    return connection.api.startRun({ scenario: select.value, seed: seedText === '' ? undefined : Number(seedText), overrides });
  });
  byId('start-real').onclick = () => void run('real run', () => connection.api.startRealRun({ memory: byId<HTMLSelectElement>('real-memory').value }));
  fileButton.onclick = () => void run('replay', () => connection.api.replay({ text: null, seconds: seconds() }));
  byId<HTMLInputElement>('trace-upload').onchange = (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file !== undefined) void run('replay', async () => connection.api.replay({ text: await file.text(), label: file.name, seconds: seconds() }));
  };
  byId('cancel').onclick = () => void run('stop', () => connection.api.cancel());
}

function setConnection(state: ConnectionState): void {
  const badge = byId('connection');
  badge.textContent = state === 'gave-up' ? 'disconnected (reload the page)' : state;
  badge.dataset.state = state;
}

function main(): void {
  const token = document.querySelector('meta[name="livemig-token"]')?.getAttribute('content') ?? '';
  // The token stays in the page, not in the address bar (screenshots, shared links).
  history.replaceState(null, '', location.pathname);
  byId('controls').addEventListener('submit', (e) => e.preventDefault());
  byId('app').append(panel.root);
  const connection: DashboardConnection = new DashboardConnection(token, events, setConnection, () => {
    void connection.api.hello().then((hello) => {
      controls(hello, connection);
      if (hello.current !== null) {
        store.load(hello.current);
        redraw();
      }
      document.body.dataset.ready = 'true';
    }, (error: Error) => say(`hello: ${error.message}`, true));
  });
  connection.connect();
}

main();
