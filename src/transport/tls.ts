/**
 * TLS over tcp: (or unix:) with x509 credentials laid out like QEMU's tls-creds-x509 `dir`:
 *
 *   ca-cert.pem                      the CA that signs the peer (both endpoints)
 *   server-cert.pem, server-key.pem  the server endpoint's certificate and key
 *   client-cert.pem, client-key.pem  the client endpoint's (optional unless the server verifies peers)
 *
 * As in QEMU, the client (the migration source) checks the server's certificate against the
 * CA and against `tls-hostname`, or the URI's host when none is given; with `verifyPeer` (on
 * by default, as QEMU's verify-peer) the server demands a client certificate from the same CA.
 * A failure is a typed error: TRANSPORT_ERR_TLS_VERIFY (untrusted certificate),
 * TRANSPORT_ERR_TLS_HOSTNAME (wrong name) or TRANSPORT_ERR_TLS_HANDSHAKE (anything else,
 * including a peer that gave up during the handshake).
 *
 * We own the raw TCP socket under every TLS session so that `destroy` can reset it. Each
 * accepted socket gets its own (never listening) tls.Server: Node's server-side peer check
 * lives there, and the one-to-one mapping keeps raw and TLS sockets paired.
 */
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import type { SocketAddress } from './uri.ts';
import { formatMigrationUri } from './uri.ts';
import { StreamChannel } from './stream-channel.ts';
import { ChannelListener, connectRawSocket, describePeer, listenSocket, probeReset, resetSocket, type ListenOptions, type SocketChannelOptions } from './socket.ts';
import {
  fromNodeError, TransportError, TRANSPORT_ERR_BAD_ADDRESS, TRANSPORT_ERR_RESET, TRANSPORT_ERR_TIMEOUT,
  TRANSPORT_ERR_TLS_CREDS, TRANSPORT_ERR_TLS_HANDSHAKE, TRANSPORT_ERR_TLS_VERIFY,
} from './errors.ts';

export type TlsEndpoint = 'client' | 'server';

/** PEM contents loaded from a tls-creds-x509 dir for one endpoint. */
export interface TlsCreds {
  readonly endpoint: TlsEndpoint;
  readonly ca: Buffer;
  /** Our certificate and key (absent for a client dir without client-cert.pem). */
  readonly cert: Buffer | null;
  readonly key: Buffer | null;
  /** Server: demand and verify a client certificate (QEMU's verify-peer, default on). */
  readonly verifyPeer: boolean;
}

function readPem(dir: string, name: string, required: boolean): Buffer | null {
  try {
    return readFileSync(join(dir, name));
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TransportError(TRANSPORT_ERR_TLS_CREDS, `Cannot read ${join(dir, name)}: ${(error as Error).message}`, { cause: error });
  }
}

/** Loads tls-creds-x509 files for `endpoint` from `dir`; throws TRANSPORT_ERR_TLS_CREDS. */
export function loadTlsCreds(dir: string, endpoint: TlsEndpoint, verifyPeer = true): TlsCreds {
  const ca = readPem(dir, 'ca-cert.pem', true) as Buffer;
  const cert = readPem(dir, `${endpoint}-cert.pem`, endpoint === 'server');
  const key = readPem(dir, `${endpoint}-key.pem`, endpoint === 'server' || cert !== null);
  return { endpoint, ca, cert, key, verifyPeer };
}

export interface TlsConnectOptions extends SocketChannelOptions {
  readonly creds: TlsCreds;
  /** The name the server's certificate must carry (QEMU's tls-hostname); default the URI host. */
  readonly hostname?: string;
  /** Deadline for connect plus handshake. Default 10 s. */
  readonly timeoutMs?: number;
}

/** A reset or EOF in mid-handshake is a handshake failure, whatever errno came with it. */
function handshakeError(error: unknown, what: string): TransportError {
  const mapped = fromNodeError(error, 'tls', what);
  if (mapped.code !== TRANSPORT_ERR_RESET) return mapped;
  return new TransportError(TRANSPORT_ERR_TLS_HANDSHAKE, `TLS handshake failed for ${what}: the peer closed the connection (it may not trust our certificate)`, { cause: error, sysCode: mapped.sysCode ?? undefined });
}

function tlsChannel(tlsSocket: TLSSocket, raw: Socket, remoteAddress: string, options: SocketChannelOptions): StreamChannel {
  return new StreamChannel({
    remoteAddress,
    readable: tlsSocket,
    writable: tlsSocket,
    mapError: (error) => fromNodeError(error, 'io', remoteAddress),
    // Resetting the raw socket is enough: the TLS socket on top then fails and closes by
    // itself. Destroying the TLS socket as well, after the reset, can crash Node 20.
    abort: () => resetSocket(raw),
    probeEnd: () => probeReset(raw, remoteAddress),
    highWaterMarkBytes: options.highWaterMarkBytes,
  });
}

/** Runs `start` with a deadline; on timeout or failure the raw socket is reset. */
function handshake(raw: Socket, what: string, timeoutMs: number, start: (done: (result: TLSSocket | TransportError) => void) => void): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (result: TLSSocket | TransportError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (result instanceof TransportError) {
        resetSocket(raw);
        reject(result);
      } else {
        resolve(result);
      }
    };
    const timer = setTimeout(() => done(new TransportError(TRANSPORT_ERR_TIMEOUT, `TLS handshake with ${what} not done within ${timeoutMs} ms`)), timeoutMs);
    // Errors surface through the TLS socket on top; the raw one must not crash the process.
    raw.on('error', () => undefined);
    raw.once('close', () => done(new TransportError(TRANSPORT_ERR_TLS_HANDSHAKE, `TLS handshake failed for ${what}: connection closed`)));
    start(done);
  });
}

/** Connects and completes a TLS handshake as the client endpoint. */
export async function connectTls(address: SocketAddress, options: TlsConnectOptions): Promise<StreamChannel> {
  const what = formatMigrationUri(address);
  const hostname = options.hostname ?? (address.kind === 'tcp' ? address.host : '');
  if (hostname === '') throw new TransportError(TRANSPORT_ERR_BAD_ADDRESS, `TLS to ${what} needs a tls-hostname`);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const raw = await connectRawSocket(address, timeoutMs);
  const tlsSocket = await handshake(raw, what, timeoutMs, (done) => {
    const socket = tlsConnect({
      socket: raw,
      ca: options.creds.ca,
      cert: options.creds.cert ?? undefined,
      key: options.creds.key ?? undefined,
      // SNI takes names only; the identity check below covers IP addresses too.
      servername: isIP(hostname) === 0 ? hostname : undefined,
      checkServerIdentity: (_host, cert) => checkServerIdentity(hostname, cert),
      rejectUnauthorized: true,
    });
    socket.once('error', (error) => done(handshakeError(error, what)));
    socket.once('secureConnect', () => {
      socket.removeAllListeners('error');
      done(socket);
    });
  });
  return tlsChannel(tlsSocket, raw, `${describePeer(raw, address)} (tls)`, options);
}

export interface TlsListenOptions extends Omit<ListenOptions, 'wrap'> {
  readonly creds: TlsCreds;
  /** Deadline for each accepted connection's handshake. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
}

/** Completes the server side of a handshake on an accepted raw socket. */
function acceptTls(raw: Socket, remoteAddress: string, options: TlsListenOptions): Promise<StreamChannel> {
  const { creds } = options;
  const what = `${remoteAddress} (tls)`;
  return handshake(raw, what, options.handshakeTimeoutMs ?? 10_000, (done) => {
    const server = createTlsServer({ ca: creds.ca, cert: creds.cert ?? undefined, key: creds.key ?? undefined, requestCert: creds.verifyPeer, rejectUnauthorized: false });
    server.once('tlsClientError', (error) => done(handshakeError(error, what)));
    server.once('secureConnection', (socket: TLSSocket) => {
      if (creds.verifyPeer && !socket.authorized) {
        const hasCert = Object.keys(socket.getPeerCertificate()).length > 0;
        const why = hasCert ? `client certificate not trusted (${String(socket.authorizationError)})` : 'client sent no certificate';
        done(new TransportError(TRANSPORT_ERR_TLS_VERIFY, `TLS peer check failed for ${what}: ${why}`, { sysCode: String(socket.authorizationError) }));
        return;
      }
      done(socket);
    });
    server.emit('connection', raw);
  }).then((tlsSocket) => tlsChannel(tlsSocket, raw, what, options));
}

/** Binds a TLS listener; each accepted connection is handed out after a good handshake. */
export function listenTls(address: SocketAddress, options: TlsListenOptions): Promise<ChannelListener> {
  if (options.creds.endpoint !== 'server') {
    return Promise.reject(new TransportError(TRANSPORT_ERR_TLS_CREDS, 'A TLS listener needs server-endpoint credentials'));
  }
  return listenSocket(address, { ...options, wrap: (raw, remoteAddress) => acceptTls(raw, remoteAddress, options) });
}
