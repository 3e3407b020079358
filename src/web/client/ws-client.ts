/// <reference lib="dom" />
/**
 * The page's side of the dashboard API: a WebSocket to the server (the token in the query,
 * as the page got it) carrying the typed RPC of rpc.ts. Reconnects a bounded number of times
 * with growing delays (Vitest's client does the same), then gives up and says so.
 */
import type { DashboardEvents, DashboardHandlers } from '../api-types.ts';
import { TOKEN_PARAM, WS_PATH } from '../api-types.ts';
import { RpcPeer, type LocalImpl, type RemoteProxy } from '../rpc.ts';

const RECONNECTS_MAX = 8;

export type ConnectionState = 'connecting' | 'open' | 'closed' | 'gave-up';

export class DashboardConnection {
  private socket: WebSocket | null = null;
  private peer: RpcPeer<DashboardEvents, DashboardHandlers> | null = null;
  private tries = 0;

  constructor(
    private readonly token: string,
    private readonly events: LocalImpl<DashboardEvents>,
    private readonly onState: (state: ConnectionState) => void,
    private readonly onOpen: () => void,
  ) {}

  /** The server's handlers (rejects while disconnected). */
  get api(): RemoteProxy<DashboardHandlers> {
    if (this.peer === null) throw new Error('not connected');
    return this.peer.remote;
  }

  connect(): void {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}${WS_PATH}?${TOKEN_PARAM}=${encodeURIComponent(this.token)}`);
    this.socket = socket;
    this.onState('connecting');
    const peer = new RpcPeer<DashboardEvents, DashboardHandlers>(this.events, (text) => socket.send(text));
    socket.addEventListener('open', () => {
      this.tries = 0;
      this.peer = peer;
      this.onState('open');
      this.onOpen();
    });
    socket.addEventListener('message', (e) => void peer.receive(String(e.data)));
    socket.addEventListener('close', () => {
      peer.close('connection closed');
      if (this.peer === peer) this.peer = null;
      if (this.socket !== socket) return;
      if (this.tries >= RECONNECTS_MAX) {
        this.onState('gave-up');
        return;
      }
      this.onState('closed');
      const delay = Math.min(5000, 250 * 2 ** this.tries++);
      setTimeout(() => this.connect(), delay);
    });
  }
}
