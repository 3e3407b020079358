/**
 * One entry point per direction, from a migration URI to channels:
 *
 *   openOutgoing(uri)  → the main channel of a `migrate` (tcp/unix connect, exec stdin, file write)
 *   openIncoming(uri)  → an IncomingEndpoint for `-incoming`/`migrate-incoming`: a listener for
 *                        tcp/unix (one or more connections), or a one-shot endpoint that hands
 *                        out the exec stdout / file read channel once.
 *
 * TLS applies to tcp: and unix: only (QEMU refuses it for exec: and file: as well); passing
 * `tls` with another scheme is a TRANSPORT_ERR_UNSUPPORTED error.
 */
import { parseMigrationUri, formatMigrationUri, type MigrationUri, type SocketAddress } from './uri.ts';
import type { StreamChannel } from './stream-channel.ts';
import { connectSocket, listenSocket, type ChannelListener } from './socket.ts';
import { connectTls, listenTls, type TlsCreds } from './tls.ts';
import { spawnExecChannel } from './exec.ts';
import { openFileChannel } from './file.ts';
import { TransportError, TRANSPORT_ERR_CLOSED, TRANSPORT_ERR_UNSUPPORTED } from './errors.ts';

export interface OpenOptions {
  /** TLS credentials (client endpoint for outgoing, server endpoint for incoming). */
  readonly tls?: TlsCreds;
  /** QEMU's tls-hostname: the name the server certificate must carry. */
  readonly tlsHostname?: string;
  /** Write-queue high-water mark of the channels. */
  readonly highWaterMarkBytes?: number;
  /** Connect (and handshake) deadline. Default 10 s. */
  readonly timeoutMs?: number;
  /** Incoming tcp/unix: stop listening after this many connections. */
  readonly expectedConnections?: number;
}

/** Where incoming channels come from: a socket listener or a single exec/file channel. */
export interface IncomingEndpoint {
  /** The URI actually bound (a tcp port 0 is replaced by the real port). */
  readonly uri: string;
  /** The next incoming channel. */
  accept(timeoutMs?: number): Promise<StreamChannel>;
  /** Stops listening; channels already accepted stay open. */
  close(): Promise<void>;
}

function asUri(uri: string | MigrationUri): MigrationUri {
  return typeof uri === 'string' ? parseMigrationUri(uri) : uri;
}

function refuseTls(uri: MigrationUri): void {
  throw new TransportError(TRANSPORT_ERR_UNSUPPORTED, `TLS is not available for ${uri.kind}: migration`);
}

/** Opens the outgoing main channel for `uri`. */
export async function openOutgoing(uri: string | MigrationUri, options: OpenOptions = {}): Promise<StreamChannel> {
  const parsed = asUri(uri);
  switch (parsed.kind) {
    case 'tcp':
    case 'unix':
      if (options.tls !== undefined) {
        return connectTls(parsed, { creds: options.tls, hostname: options.tlsHostname, timeoutMs: options.timeoutMs, highWaterMarkBytes: options.highWaterMarkBytes });
      }
      return connectSocket(parsed, options);
    case 'exec':
      if (options.tls !== undefined) refuseTls(parsed);
      return spawnExecChannel(parsed.command, 'outgoing', options);
    case 'file':
      if (options.tls !== undefined) refuseTls(parsed);
      return openFileChannel(parsed.path, 'outgoing', { offsetBytes: parsed.offsetBytes, highWaterMarkBytes: options.highWaterMarkBytes });
  }
}

/** A connector for extra channels (multifd, preempt) with the same TLS settings as the main one. */
export function connectorFor(options: OpenOptions = {}): (address: SocketAddress) => Promise<StreamChannel> {
  return (address) => openOutgoing(address, options);
}

/** Hands out one channel (exec stdout, file read), made at the first accept, then refuses. */
class SingleChannelEndpoint implements IncomingEndpoint {
  readonly uri: string;
  private readonly factory: () => StreamChannel;
  private handedOut = false;

  constructor(uri: string, factory: () => StreamChannel) {
    this.uri = uri;
    this.factory = factory;
  }

  accept(): Promise<StreamChannel> {
    if (this.handedOut) return Promise.reject(new TransportError(TRANSPORT_ERR_CLOSED, `${this.uri} carries a single channel`));
    this.handedOut = true;
    return Promise.resolve(this.factory());
  }

  close(): Promise<void> {
    this.handedOut = true;
    return Promise.resolve();
  }
}

/** Listener adapter so that both kinds share IncomingEndpoint. */
function listenerEndpoint(listener: ChannelListener): IncomingEndpoint & { readonly listener: ChannelListener } {
  return { listener, uri: listener.uri, accept: (timeoutMs) => listener.accept(timeoutMs), close: () => listener.close() };
}

/**
 * Prepares the incoming side of `uri`. For tcp/unix the socket is bound before this resolves
 * (so the URI can be handed to the source); exec commands and files are started or opened
 * only at `accept`, as QEMU starts them when migrate-incoming runs.
 */
export async function openIncoming(uri: string | MigrationUri, options: OpenOptions = {}): Promise<IncomingEndpoint> {
  const parsed = asUri(uri);
  switch (parsed.kind) {
    case 'tcp':
    case 'unix': {
      const listenOptions = { expectedConnections: options.expectedConnections, highWaterMarkBytes: options.highWaterMarkBytes };
      const listener = options.tls !== undefined
        ? await listenTls(parsed, { ...listenOptions, creds: options.tls, handshakeTimeoutMs: options.timeoutMs })
        : await listenSocket(parsed, listenOptions);
      return listenerEndpoint(listener);
    }
    case 'exec':
      if (options.tls !== undefined) refuseTls(parsed);
      return new SingleChannelEndpoint(formatMigrationUri(parsed), () => spawnExecChannel(parsed.command, 'incoming'));
    case 'file':
      if (options.tls !== undefined) refuseTls(parsed);
      return new SingleChannelEndpoint(formatMigrationUri(parsed), () => openFileChannel(parsed.path, 'incoming', { offsetBytes: parsed.offsetBytes }));
  }
}
