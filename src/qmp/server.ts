/**
 * The QMP server: the only part of qmp/ that touches sockets and files. It accepts clients on a
 * unix socket or TCP, gives each a QmpSession (its own negotiation state), stamps and rate-limits
 * the controller's events and broadcasts them to negotiated clients, and closes cleanly.
 *
 * Safety rules:
 * - A unix socket is created with mode 0600 without a window where it is wider: it is bound
 *   inside a fresh 0700 directory next to the target, chmod-ed, then renamed into place.
 *   An existing path that is not a socket is never touched (QmpServerError
 *   QMP_ERR_PATH_NOT_SOCKET); an existing socket that accepts connections belongs to a live
 *   server (QMP_ERR_ADDRESS_IN_USE); a stale one is replaced.
 * - TCP binds 127.0.0.1 unless a host is given, and a non-loopback host needs `allowRemote`
 *   (QMP has no authentication).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { chmodSync, lstatSync, mkdtempSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { QmpEventEmission, VmController } from './controller.ts';
import { QmpDispatcher } from './dispatch.ts';
import { EventRateLimiter, type StampedEvent } from './events.ts';
import { formatEvent, timestampOfMicros } from './protocol.ts';
import { QmpSession } from './session.ts';

/** Stable codes of server errors. */
export type QmpServerErrorCode = 'QMP_ERR_PATH_NOT_SOCKET' | 'QMP_ERR_ADDRESS_IN_USE' | 'QMP_ERR_NON_LOCAL_HOST' | 'QMP_ERR_LISTEN';

/** The server could not start. */
export class QmpServerError extends Error {
  override name = 'QmpServerError';
  constructor(
    readonly code: QmpServerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Where to listen. */
export type QmpListenAddress =
  | { readonly unix: string }
  | { readonly tcp: { readonly host?: string; readonly port: number; readonly allowRemote?: boolean } };

/** Options of the server. */
export interface QmpServerOptions {
  readonly controller: VmController;
  readonly listen: QmpListenAddress;
  /** Longest request line, bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** Wall clock, microseconds since the epoch (event timestamps). */
  readonly clockMicros?: () => number;
  /** Controller exceptions that are not QmpCommandError (bugs). */
  readonly onInternalError?: (command: string, error: unknown) => void;
}

function wallClockMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function probeSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function removeQuietly(remove: () => void): void {
  try {
    remove();
  } catch {
    // Already gone (the normal case after the rename).
  }
}

function listenOn(server: Server, target: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(new QmpServerError('QMP_ERR_LISTEN', `QMP listen failed: ${error.message}`));
    server.once('error', onError);
    server.listen(target, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** A running QMP server. */
export class QmpServer {
  private readonly clients = new Set<{ socket: Socket; session: QmpSession }>();
  private readonly limiter = new EventRateLimiter();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly dispatcher: QmpDispatcher;
  private readonly clock: () => number;
  private unsubscribe: (() => void) | null = null;
  private unixPath: string | null = null;
  private unixInode: number | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly server: Server,
    private readonly options: QmpServerOptions,
  ) {
    this.clock = options.clockMicros ?? wallClockMicros;
    this.dispatcher = new QmpDispatcher(options.controller, { onInternalError: options.onInternalError });
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Starts a server; rejects with QmpServerError when it cannot listen. */
  static async listen(options: QmpServerOptions): Promise<QmpServer> {
    const qmp = new QmpServer(createServer(), options);
    if ('unix' in options.listen) await qmp.listenUnix(options.listen.unix);
    else await qmp.listenTcp(options.listen.tcp);
    qmp.unsubscribe = options.controller.subscribe((event) => qmp.onEvent(event));
    return qmp;
  }

  private async listenUnix(path: string): Promise<void> {
    let existing: ReturnType<typeof lstatSync> | undefined;
    try {
      existing = lstatSync(path);
    } catch {
      existing = undefined;
    }
    if (existing !== undefined) {
      if (!existing.isSocket()) throw new QmpServerError('QMP_ERR_PATH_NOT_SOCKET', `${path} exists and is not a socket; refusing to replace it`);
      if (await probeSocket(path)) throw new QmpServerError('QMP_ERR_ADDRESS_IN_USE', `${path} is a live socket of another server`);
    }
    // A short staging path: sun_path holds 107 bytes and the staging path must fit as well.
    let privateDir: string;
    try {
      privateDir = mkdtempSync(join(dirname(path), '.q'));
    } catch (error) {
      throw new QmpServerError('QMP_ERR_LISTEN', `QMP listen on ${path} failed: ${(error as Error).message}`);
    }
    const staging = join(privateDir, 's');
    try {
      await listenOn(this.server, { path: staging });
      chmodSync(staging, 0o600);
      renameSync(staging, path);
    } catch (error) {
      this.server.close();
      throw error instanceof QmpServerError ? error : new QmpServerError('QMP_ERR_LISTEN', `QMP listen on ${path} failed: ${(error as Error).message}`);
    } finally {
      removeQuietly(() => unlinkSync(staging));
      removeQuietly(() => rmdirSync(privateDir));
    }
    this.unixPath = path;
    this.unixInode = lstatSync(path).ino;
  }

  private async listenTcp(tcp: { readonly host?: string; readonly port: number; readonly allowRemote?: boolean }): Promise<void> {
    const host = tcp.host ?? '127.0.0.1';
    if (!isLoopback(host) && tcp.allowRemote !== true) {
      throw new QmpServerError('QMP_ERR_NON_LOCAL_HOST', `QMP on ${host} would be reachable from other hosts; pass allowRemote to do that`);
    }
    await listenOn(this.server, { host, port: tcp.port });
  }

  /** The bound address: the socket path, or the TCP host and (resolved) port. */
  get address(): { readonly unix: string } | { readonly host: string; readonly port: number } {
    if (this.unixPath !== null) return { unix: this.unixPath };
    const bound = this.server.address();
    if (bound === null || typeof bound === 'string') throw new QmpServerError('QMP_ERR_LISTEN', 'QMP server is not listening');
    return { host: bound.address, port: bound.port };
  }

  /** Connected clients. */
  get clientCount(): number {
    return this.clients.size;
  }

  private accept(socket: Socket): void {
    const client = {
      socket,
      session: new QmpSession(this.dispatcher, {
        send: (line) => {
          if (!socket.destroyed) socket.write(`${line}\n`);
        },
        maxLineBytes: this.options.maxLineBytes,
        onFlowControl: (paused) => (paused ? socket.pause() : socket.resume()),
      }),
    };
    this.clients.add(client);
    socket.on('data', (chunk: Buffer) => client.session.receive(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      client.session.close();
      this.clients.delete(client);
    });
    client.session.start();
  }

  private onEvent(event: QmpEventEmission): void {
    const { timestamp, ...body } = event;
    const stamped: StampedEvent = { ...body, timestamp: timestamp ?? timestampOfMicros(this.clock()) };
    this.apply(event.event, this.limiter.offer(stamped, this.clock() * 1000));
  }

  private apply(eventName: string, action: ReturnType<EventRateLimiter['offer']>): void {
    for (const event of action.deliver) {
      const line = formatEvent(event, event.timestamp);
      for (const client of this.clients) client.session.deliverEvent(line);
    }
    if (action.armAtNs !== null && this.closing === null) {
      const delayMs = Math.max(0, (action.armAtNs - this.clock() * 1000) / 1e6);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.apply(eventName, this.limiter.expire(eventName, this.clock() * 1000));
      }, delayMs);
      timer.unref();
      this.timers.add(timer);
    }
  }

  /** Stops listening, disconnects every client, removes the socket file. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      this.unsubscribe?.();
      this.unsubscribe = null;
      for (const timer of this.timers) clearTimeout(timer);
      this.timers.clear();
      for (const client of this.clients) {
        client.session.close();
        client.socket.destroy();
      }
      this.server.close(() => {
        this.removeSocketFile();
        resolve();
      });
    });
    return this.closing;
  }

  private removeSocketFile(): void {
    if (this.unixPath === null) return;
    try {
      // Only our own socket: a later server may have replaced the path.
      if (lstatSync(this.unixPath).ino === this.unixInode) unlinkSync(this.unixPath);
    } catch {
      // Already gone.
    }
  }
}
