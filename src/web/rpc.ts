/**
 * A small typed RPC over any text transport (the dashboard's WebSocket), like birpc in
 * Vitest: one side serves `Local` methods, and calls the other side's `Remote` methods
 * through a typed proxy (`peer.remote.startRun(...)` resolves with the result) or sends
 * them fire-and-forget as events (`encodeEvent`). Frames are `WireMessage`s (api-types.ts).
 *
 * Bounds: at most CALLS_PENDING_MAX calls in flight; a call not answered in
 * CALL_TIMEOUT_MS rejects. Pure apart from the timer of the timeout.
 */
import type { WireMessage } from './api-types.ts';

const CALLS_PENDING_MAX = 64;
const CALL_TIMEOUT_MS = 30_000;

type AnyMethods = { [name: string]: (...args: never[]) => unknown };

/** The callable view of the remote side: every method returns a promise of its result. */
export type RemoteProxy<Remote> = {
  readonly [K in keyof Remote]: Remote[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
};

/** Local implementations may answer synchronously or with a promise. */
export type LocalImpl<Local> = {
  readonly [K in keyof Local]: Local[K] extends (...args: infer A) => infer R ? (...args: A) => R | Promise<R> : never;
};

/** Encodes an event frame (encode once, send to many). */
export function encodeEvent<Events, K extends keyof Events & string>(name: K, ...args: Events[K] extends (...a: infer A) => unknown ? A : never): string {
  const message: WireMessage = { t: 'event', name, args };
  return JSON.stringify(message);
}

/** Parses a frame; null when it is not a well-formed WireMessage. */
export function decodeFrame(text: string): WireMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  if (m.t === 'call' && typeof m.id === 'number' && typeof m.method === 'string' && Array.isArray(m.args)) return m as WireMessage;
  if (m.t === 'result' && typeof m.id === 'number' && typeof m.ok === 'boolean') return m as WireMessage;
  if (m.t === 'event' && typeof m.name === 'string' && Array.isArray(m.args)) return m as WireMessage;
  return null;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class RpcPeer<Local, Remote> {
  /** Calls the remote side. */
  readonly remote: RemoteProxy<Remote>;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly local: LocalImpl<Local>,
    private readonly send: (text: string) => void,
  ) {
    this.remote = new Proxy({}, {
      get: (_target, method) => (typeof method === 'string' ? (...args: unknown[]) => this.call(method, args) : undefined),
    }) as RemoteProxy<Remote>;
  }

  private call(method: string, args: unknown[]): Promise<unknown> {
    if (this.pending.size >= CALLS_PENDING_MAX) return Promise.reject(new Error(`more than ${CALLS_PENDING_MAX} calls in flight`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.send(JSON.stringify({ t: 'call', id, method, args } satisfies WireMessage));
    });
  }

  /** Handles one incoming frame. Events go to the local method of that name; unknown names are ignored. */
  async receive(text: string): Promise<void> {
    const message = decodeFrame(text);
    if (message === null) return;
    if (message.t === 'result') {
      const entry = this.pending.get(message.id);
      if (entry === undefined) return;
      this.pending.delete(message.id);
      clearTimeout(entry.timer);
      if (message.ok) entry.resolve(message.value);
      else entry.reject(new Error(message.error));
      return;
    }
    const name = message.t === 'call' ? message.method : message.name;
    // Own or class methods only: never Object.prototype's (a call named 'constructor' is unknown).
    const candidate = name in Object.prototype ? undefined : (this.local as unknown as AnyMethods)[name];
    const fn = typeof candidate === 'function' ? candidate : undefined;
    if (message.t === 'event') {
      if (fn !== undefined) (fn as (...a: unknown[]) => unknown)(...message.args);
      return;
    }
    let reply: WireMessage;
    try {
      if (fn === undefined) throw new Error(`unknown method '${name}'`);
      const value = await (fn as (...a: unknown[]) => unknown)(...message.args);
      reply = { t: 'result', id: message.id, ok: true, value: value ?? null };
    } catch (error) {
      reply = { t: 'result', id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    this.send(JSON.stringify(reply));
  }

  /** Rejects every call in flight (the connection closed). */
  close(reason: string): void {
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error(reason));
      this.pending.delete(id);
    }
  }
}
