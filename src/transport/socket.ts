/**
 * TCP and unix-socket adapters: `connectSocket` opens one outgoing channel; `listenSocket`
 * binds a listener that accepts one or more incoming channels (multifd and postcopy-preempt
 * need several) and can stop listening by itself after the number it was told to expect, as
 * QEMU does once it has all its channels.
 *
 * Accepted sockets stay paused (`pauseOnConnect`) until their consumer reads, so the kernel's
 * flow control holds a fast peer back while channels are classified. A listener on a unix
 * path removes a stale socket file before binding (QEMU does too) and removes its own when it
 * stops listening. `destroy` on a TCP channel sends a reset, and the receiving end checks
 * every end of stream for one (probeReset), so an abort is a typed TRANSPORT_ERR_RESET at the
 * peer, never a clean close. Unix sockets have no reset: there a sender's abort reads as a
 * clean end, and it is the stream decoder that reports the stream as truncated.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import type { SocketAddress } from './uri.ts';
import { formatHost, formatMigrationUri } from './uri.ts';
import { StreamChannel } from './stream-channel.ts';
import { fromNodeError, TransportError, TRANSPORT_ERR_CLOSED, TRANSPORT_ERR_RESET, TRANSPORT_ERR_TIMEOUT } from './errors.ts';

export interface SocketChannelOptions {
  /** Write-queue high-water mark of the channel. */
  readonly highWaterMarkBytes?: number;
}

export interface ConnectOptions extends SocketChannelOptions {
  /** Deadline for the connection to be established. Default 10 s. */
  readonly timeoutMs?: number;
}

/** Describes the peer of a connected socket, as a migration URI. */
export function describePeer(socket: Socket, fallback: SocketAddress): string {
  if (socket.remoteAddress !== undefined && socket.remotePort !== undefined) {
    return `tcp:${formatHost(socket.remoteAddress)}:${socket.remotePort}`;
  }
  return formatMigrationUri(fallback);
}

/** Resets a TCP connection (RST), or just destroys a unix one, which has no reset. */
export function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    // Not a TCP handle (unix socket) or already closed: a plain destroy is all there is.
    socket.destroy();
  }
}

/**
 * Called at end of stream (before we have ended our side): tells a reset apart from a clean
 * close. libuv reports a plain EOF when the kernel signals hang-up after a partial read, even
 * if the hang-up was a reset, so a peer's abort can look like a clean end. After a reset the
 * kernel's socket is closed and getpeername fails (ENOTCONN); after a clean FIN it is in
 * CLOSE_WAIT and still has a peer. Node exposes getpeername only on the internal handle, and
 * only for TCP; a unix socket has no reset, so its end is always taken as clean.
 */
export function probeReset(socket: Socket, what: string): TransportError | null {
  const handle = (socket as unknown as { _handle?: { getpeername?: (out: object) => number } | null })._handle;
  if (handle === null || handle === undefined || typeof handle.getpeername !== 'function') return null;
  if (handle.getpeername({}) === 0) return null;
  return new TransportError(TRANSPORT_ERR_RESET, `Connection reset on ${what}: the peer aborted (no clean end of stream)`, { sysCode: 'ECONNRESET' });
}

/** The parts of a net.Socket that its `onread` option sets (Node's stream_base_commons). */
interface UserBufferSocket {
  _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null;
  [key: symbol]: unknown;
}

/**
 * Makes `socket` read into `buffer`, reused for every read, as `net.connect({ onread })`
 * does (Node ≥ 12): libuv reads straight into it and `onRead(nread)` runs synchronously after
 * each read, with no Buffer allocated per read. Node offers `onread` only when it creates the
 * socket, never for a server's accepted sockets, so this sets the same three fields the option
 * sets (found by their symbols' descriptions, which every net.Socket carries, null, from its
 * constructor) and hands the buffer to the handle. Returns false, changing nothing, when the
 * socket does not have them (another Node version, a TLS or already-customized socket): the
 * caller then reads 'data' events as usual.
 */
export function installSocketReadBuffer(socket: Socket, buffer: Uint8Array, onRead: (nread: number) => void): boolean {
  const target = socket as unknown as UserBufferSocket;
  const symbols = Object.getOwnPropertySymbols(socket);
  const symbol = (description: string): symbol | undefined => symbols.find((s) => s.description === description);
  const kBuffer = symbol('kBuffer');
  const kBufferCb = symbol('kBufferCb');
  const kBufferGen = symbol('kBufferGen');
  const handle = target._handle;
  if (kBuffer === undefined || kBufferCb === undefined || kBufferGen === undefined) return false;
  if (target[kBuffer] !== null || target[kBufferGen] !== null || socket.destroyed) return false;
  if ('encrypted' in socket || handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function') return false;
  target[kBufferCb] = (nread: number): void => onRead(nread);
  target[kBuffer] = buffer;
  handle.useUserBuffer(buffer);
  return true;
}

/** Wraps a connected socket (plain TCP or unix) as a channel. */
export function socketChannel(socket: Socket, remoteAddress: string, options: SocketChannelOptions = {}): StreamChannel {
  return new StreamChannel({
    remoteAddress,
    readable: socket,
    writable: socket,
    mapError: (error) => fromNodeError(error, 'io', remoteAddress),
    abort: () => resetSocket(socket),
    probeEnd: () => probeReset(socket, remoteAddress),
    highWaterMarkBytes: options.highWaterMarkBytes,
    installReadBuffer: (buffer, onRead) => installSocketReadBuffer(socket, buffer, onRead),
  });
}

/** Opens a raw connected socket (also used under TLS). */
export function connectRawSocket(address: SocketAddress, timeoutMs: number): Promise<Socket> {
  const what = formatMigrationUri(address);
  return new Promise((resolve, reject) => {
    const socket = address.kind === 'tcp' ? connect({ host: address.host, port: address.port }) : connect({ path: address.path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TransportError(TRANSPORT_ERR_TIMEOUT, `Cannot connect to ${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(fromNodeError(error, 'connect', what));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      if (address.kind === 'tcp') socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** Connects to a tcp: or unix: address. Rejects with TRANSPORT_ERR_CONNECT or _TIMEOUT. */
export async function connectSocket(address: SocketAddress, options: ConnectOptions = {}): Promise<StreamChannel> {
  const socket = await connectRawSocket(address, options.timeoutMs ?? 10_000);
  return socketChannel(socket, describePeer(socket, address), options);
}

export interface ListenOptions extends SocketChannelOptions {
  /** Stop listening after this many connections; default: keep listening until `close`. */
  readonly expectedConnections?: number;
  /** Turns an accepted socket into a channel (the TLS handshake); default a plain channel. */
  readonly wrap?: (socket: Socket, remoteAddress: string) => Promise<StreamChannel>;
}

/** A bound tcp: or unix: listener handing out accepted connections in arrival order. */
export class ChannelListener {
  /** The bound address (for tcp, the real port when 0 was asked for). */
  readonly address: SocketAddress;
  /** Connections accepted by the kernel so far. */
  acceptedCount = 0;
  private readonly server: Server;
  private readonly options: ListenOptions;
  private readonly queue: Array<Promise<StreamChannel>> = [];
  private readonly waiters: Array<(channel: Promise<StreamChannel>) => void> = [];
  private listening = true;
  private closePromise: Promise<void> | null = null;

  constructor(server: Server, address: SocketAddress, options: ListenOptions) {
    this.server = server;
    this.address = address;
    this.options = options;
    server.on('connection', (socket: Socket) => this.accepted(socket));
  }

  /** The bound address as a URI, e.g. `tcp:127.0.0.1:40123`. */
  get uri(): string {
    return formatMigrationUri(this.address);
  }

  /** True until the listener stopped taking connections (expected count reached, or closed). */
  get isListening(): boolean {
    return this.listening;
  }

  /** The next connection (already accepted or still to come), within `timeoutMs` (default 30 s). */
  accept(timeoutMs = 30_000): Promise<StreamChannel> {
    const queued = this.queue.shift();
    if (queued !== undefined) return queued;
    if (!this.listening) {
      return Promise.reject(new TransportError(TRANSPORT_ERR_CLOSED, `Listener ${this.uri} takes no more connections`));
    }
    return new Promise((resolve, reject) => {
      const waiter = (channel: Promise<StreamChannel>): void => {
        clearTimeout(timer);
        channel.then(resolve, reject);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new TransportError(TRANSPORT_ERR_TIMEOUT, `No connection on ${this.uri} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * Stops listening, destroys connections nobody accepted and removes a unix socket file.
   * Channels already handed out stay open. Idempotent.
   */
  close(): Promise<void> {
    this.closePromise ??= this.stopListening().then(() => {
      for (const channel of this.queue.splice(0)) channel.then((c) => c.destroy(), () => undefined);
      const error = new TransportError(TRANSPORT_ERR_CLOSED, `Listener ${this.uri} closed`);
      for (const waiter of this.waiters.splice(0)) waiter(Promise.reject(error));
    });
    return this.closePromise;
  }

  private accepted(socket: Socket): void {
    this.acceptedCount++;
    // As on the connecting side: no Nagle delay for small writes (a destination's page requests).
    if (this.address.kind === 'tcp') socket.setNoDelay(true);
    const remoteAddress = describePeer(socket, this.address);
    const channel = this.options.wrap !== undefined
      ? this.options.wrap(socket, remoteAddress)
      : Promise.resolve(socketChannel(socket, remoteAddress, this.options));
    // A handshake that fails while queued must not become an unhandled rejection.
    channel.catch(() => undefined);
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(channel);
    else this.queue.push(channel);
    if (this.options.expectedConnections !== undefined && this.acceptedCount >= this.options.expectedConnections) {
      void this.stopListening();
    }
  }

  private stopListening(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => {
      // server.close waits for nothing but the listening handle: accepted sockets are ours.
      this.server.close(() => {
        if (this.address.kind === 'unix') removeSocketFile(this.address.path);
        const error = new TransportError(TRANSPORT_ERR_CLOSED, `Listener ${this.uri} takes no more connections`);
        for (const waiter of this.waiters.splice(0)) waiter(Promise.reject(error));
        resolve();
      });
    });
  }
}

/** Removes `path` when it is a unix socket (never a regular file someone named by mistake). */
export function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Absent already.
  }
}

/** Binds a tcp: or unix: listener. Rejects with TRANSPORT_ERR_LISTEN (address in use, ...). */
export function listenSocket(address: SocketAddress, options: ListenOptions = {}): Promise<ChannelListener> {
  const what = formatMigrationUri(address);
  if (address.kind === 'unix') removeSocketFile(address.path);
  return new Promise((resolve, reject) => {
    const server = createServer({ pauseOnConnect: true });
    server.once('error', (error) => reject(fromNodeError(error, 'listen', what)));
    const onListening = (): void => {
      server.removeAllListeners('error');
      // Errors after binding (EMFILE on accept) are rare; Node keeps listening through them.
      server.on('error', () => undefined);
      const bound = server.address();
      const boundAddress: SocketAddress = address.kind === 'tcp' && bound !== null && typeof bound === 'object'
        ? { kind: 'tcp', host: address.host, port: bound.port }
        : address;
      resolve(new ChannelListener(server, boundAddress, options));
    };
    if (address.kind === 'unix') server.listen({ path: address.path }, onListening);
    else server.listen({ host: address.host === '' ? undefined : address.host, port: address.port }, onListening);
  });
}
