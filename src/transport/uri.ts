/**
 * Migration URIs, parsed the way QEMU 7.2's `migrate` and `migrate-incoming` read them
 * (migration/migration.c, util/qemu-sockets.c `inet_parse`), plus our own `file:`:
 *
 *   tcp:HOST:PORT        HOST is a name, an IPv4 address or `[IPv6]`; an empty HOST
 *                        (`tcp::4444`) means every address when listening. PORT 0 asks for an
 *                        ephemeral port when listening.
 *   unix:PATH            a unix stream socket.
 *   exec:COMMAND         run by `/bin/sh -c`; outgoing writes its stdin, incoming reads its stdout.
 *   file:PATH[,offset=N] ours (QEMU 7.2 has none): the stream is written to or read from PATH,
 *                        starting N bytes in (N takes K/M/G suffixes, as QEMU's later file: does).
 *
 * `fd:`, `vsock:` and `rdma:` are QEMU protocols we do not implement: they give a typed
 * TRANSPORT_ERR_UNSUPPORTED. Anything else gives QEMU's own text, "Parameter 'uri' expects a
 * valid migration protocol". Pure: no I/O, no node:* imports.
 */
import { parseSizeBytes } from '../lib/units.ts';
import { TransportError, TRANSPORT_ERR_BAD_ADDRESS, TRANSPORT_ERR_BAD_URI, TRANSPORT_ERR_UNSUPPORTED } from './errors.ts';

/** QEMU's error for a URI with no known scheme (QERR_INVALID_PARAMETER_VALUE, "uri"). */
export const BAD_PROTOCOL_TEXT = "Parameter 'uri' expects a valid migration protocol";

export interface TcpAddress {
  readonly kind: 'tcp';
  /** Host name or address without brackets; '' means every address (listen only). */
  readonly host: string;
  /** 0..65535; 0 asks the kernel for an ephemeral port when listening. */
  readonly port: number;
}

export interface UnixAddress {
  readonly kind: 'unix';
  readonly path: string;
}

/** A socket address: the part of a URI that tcp/unix adapters and multi-channel helpers need. */
export type SocketAddress = TcpAddress | UnixAddress;

export interface ExecUri {
  readonly kind: 'exec';
  /** The command line, run by /bin/sh -c. */
  readonly command: string;
}

export interface FileUri {
  readonly kind: 'file';
  readonly path: string;
  /** Where the stream starts in the file. */
  readonly offsetBytes: number;
}

export type MigrationUri = SocketAddress | ExecUri | FileUri;

/** Schemes QEMU 7.2 accepts that we refuse as unsupported. */
const UNSUPPORTED_SCHEMES = ['fd', 'vsock', 'rdma'] as const;

function badAddress(message: string): TransportError {
  return new TransportError(TRANSPORT_ERR_BAD_ADDRESS, message);
}

/** Parses a port: decimal digits, 0..65535. */
function parsePort(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw badAddress(`error parsing port in address '${whole}'`);
  }
  return Number(text);
}

/** Parses `HOST:PORT`, `[V6]:PORT` or `:PORT` (QEMU's inet_parse shapes, without options). */
export function parseTcpHostPort(text: string): TcpAddress {
  if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\]:(.*)$/.exec(text);
    if (m === null || !m[1].includes(':')) throw badAddress(`error parsing IPv6 address '${text}'`);
    return { kind: 'tcp', host: m[1], port: parsePort(m[2], text) };
  }
  const colon = text.indexOf(':');
  if (colon < 0 || text.indexOf(':', colon + 1) >= 0) throw badAddress(`error parsing address '${text}'`);
  const host = text.slice(0, colon);
  if (/[\s,/]/.test(host)) throw badAddress(`error parsing address '${text}'`);
  return { kind: 'tcp', host, port: parsePort(text.slice(colon + 1), text) };
}

function parseFile(rest: string): FileUri {
  const comma = rest.lastIndexOf(',offset=');
  const path = comma < 0 ? rest : rest.slice(0, comma);
  if (path === '') throw badAddress('file: migration needs a path');
  if (comma < 0) return { kind: 'file', path, offsetBytes: 0 };
  const offsetText = rest.slice(comma + ',offset='.length);
  const offsetBytes = /^\d/.test(offsetText) ? parseSizeBytes(offsetText) : null;
  if (offsetBytes === null || !Number.isInteger(offsetBytes)) {
    throw badAddress(`file: offset '${offsetText}' is not a size`);
  }
  return { kind: 'file', path, offsetBytes };
}

/** Parses a migration URI; throws TransportError (BAD_URI, UNSUPPORTED or BAD_ADDRESS). */
export function parseMigrationUri(uri: string): MigrationUri {
  const colon = uri.indexOf(':');
  const scheme = colon < 0 ? '' : uri.slice(0, colon);
  const rest = colon < 0 ? '' : uri.slice(colon + 1);
  switch (scheme) {
    case 'tcp':
      return parseTcpHostPort(rest);
    case 'unix':
      if (rest === '') throw badAddress('unix: migration needs a socket path');
      return { kind: 'unix', path: rest };
    case 'exec':
      if (rest.trim() === '') throw badAddress('exec: migration needs a command');
      return { kind: 'exec', command: rest };
    case 'file':
      return parseFile(rest);
    default:
      if ((UNSUPPORTED_SCHEMES as readonly string[]).includes(scheme)) {
        throw new TransportError(TRANSPORT_ERR_UNSUPPORTED, `Migration URI scheme '${scheme}:' is not supported by livemig`);
      }
      throw new TransportError(TRANSPORT_ERR_BAD_URI, BAD_PROTOCOL_TEXT);
  }
}

/** Formats a tcp host for a URI: IPv6 addresses get brackets. */
export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The URI text of a parsed URI; `parseMigrationUri(formatMigrationUri(u))` equals `u`. */
export function formatMigrationUri(uri: MigrationUri): string {
  switch (uri.kind) {
    case 'tcp':
      return `tcp:${formatHost(uri.host)}:${uri.port}`;
    case 'unix':
      return `unix:${uri.path}`;
    case 'exec':
      return `exec:${uri.command}`;
    case 'file':
      // A path that itself contains ",offset=" keeps an explicit offset so that it parses back.
      return uri.offsetBytes === 0 && !uri.path.includes(',offset=') ? `file:${uri.path}` : `file:${uri.path},offset=${uri.offsetBytes}`;
  }
}

/** True for the transports that can carry several channels (multifd, postcopy-preempt). */
export function supportsMultipleChannels(uri: MigrationUri): uri is SocketAddress {
  return uri.kind === 'tcp' || uri.kind === 'unix';
}
