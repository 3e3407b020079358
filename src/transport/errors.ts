/**
 * Typed errors of the transport layer. Every failure a channel, listener or URI parser can
 * report is a TransportError with a stable `code` (TRANSPORT_ERR_*), a short message that
 * starts with a capital letter (or is QEMU's exact text where QEMU has one), and, when it
 * came from Node, the original error as `cause` plus its errno/OpenSSL code as `sysCode`.
 *
 * `fromNodeError` is the single place where Node's error codes (ECONNRESET, EPIPE, OpenSSL
 * verification codes, ...) are mapped onto ours, so callers switch on `code` only.
 */

/** The URI names no migration protocol QEMU knows (message is QEMU's exact text). */
export const TRANSPORT_ERR_BAD_URI = 'TRANSPORT_ERR_BAD_URI';
/** The URI names a protocol QEMU knows but livemig does not implement (fd:, vsock:, rdma:). */
export const TRANSPORT_ERR_UNSUPPORTED = 'TRANSPORT_ERR_UNSUPPORTED';
/** The address part of a URI (host, port, path, option) is malformed. */
export const TRANSPORT_ERR_BAD_ADDRESS = 'TRANSPORT_ERR_BAD_ADDRESS';
/** An outgoing connection could not be made (refused, no such socket file, unreachable). */
export const TRANSPORT_ERR_CONNECT = 'TRANSPORT_ERR_CONNECT';
/** A listening socket could not be bound (address in use, permission). */
export const TRANSPORT_ERR_LISTEN = 'TRANSPORT_ERR_LISTEN';
/** The peer reset the connection or closed it while we were writing (ECONNRESET, EPIPE). */
export const TRANSPORT_ERR_RESET = 'TRANSPORT_ERR_RESET';
/** A deadline passed (connect, accept, handshake, channel classification). */
export const TRANSPORT_ERR_TIMEOUT = 'TRANSPORT_ERR_TIMEOUT';
/** The channel was destroyed locally with an error; `cause` is that error. */
export const TRANSPORT_ERR_ABORTED = 'TRANSPORT_ERR_ABORTED';
/** Write or end on a channel that is already closed or ending. */
export const TRANSPORT_ERR_CLOSED = 'TRANSPORT_ERR_CLOSED';
/** The peer's TLS certificate did not verify against our CA. */
export const TRANSPORT_ERR_TLS_VERIFY = 'TRANSPORT_ERR_TLS_VERIFY';
/** The peer's TLS certificate is valid but not for the expected hostname. */
export const TRANSPORT_ERR_TLS_HOSTNAME = 'TRANSPORT_ERR_TLS_HOSTNAME';
/** The TLS handshake failed otherwise (the peer refused our certificate, protocol error). */
export const TRANSPORT_ERR_TLS_HANDSHAKE = 'TRANSPORT_ERR_TLS_HANDSHAKE';
/** The x509 credentials directory is missing a file or holds an unreadable one. */
export const TRANSPORT_ERR_TLS_CREDS = 'TRANSPORT_ERR_TLS_CREDS';
/** The exec: command could not be started. */
export const TRANSPORT_ERR_EXEC_SPAWN = 'TRANSPORT_ERR_EXEC_SPAWN';
/** The exec: command exited with a non-zero status or a signal; `detail` holds its stderr. */
export const TRANSPORT_ERR_EXEC_STATUS = 'TRANSPORT_ERR_EXEC_STATUS';
/** A file: channel could not open, read or write its file. */
export const TRANSPORT_ERR_FILE = 'TRANSPORT_ERR_FILE';
/** A connection arrived that fits no expected migration channel (extra, or unknown magic). */
export const TRANSPORT_ERR_UNEXPECTED_CHANNEL = 'TRANSPORT_ERR_UNEXPECTED_CHANNEL';
/** Any other I/O error Node reported; `sysCode` says which. */
export const TRANSPORT_ERR_IO = 'TRANSPORT_ERR_IO';

export class TransportError extends Error {
  override name = 'TransportError';
  constructor(
    /** Stable machine-readable code, one of the TRANSPORT_ERR_* constants. */
    readonly code: string,
    message: string,
    options: { readonly cause?: unknown; readonly sysCode?: string; readonly detail?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.sysCode = options.sysCode ?? null;
    this.detail = options.detail ?? null;
  }

  /** Node's errno or OpenSSL code of the underlying error (ECONNRESET, ...), when there is one. */
  readonly sysCode: string | null;
  /** Extra text, such as an exec: command's captured stderr. */
  readonly detail: string | null;

  toJSON(): object {
    return { code: this.code, message: this.message, sysCode: this.sysCode, detail: this.detail };
  }
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'ENOTSOCK']);
const LISTEN_CODES = new Set(['EADDRINUSE', 'EACCES', 'EPERM', 'EINVAL']);
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
]);

/** Which operation failed, so that ENOENT or EACCES can be told apart by context. */
export type ErrorContext = 'connect' | 'listen' | 'io' | 'tls' | 'file';

/** Maps a Node error (errno, OpenSSL or stream code) to a TransportError; passes ours through. */
export function fromNodeError(error: unknown, context: ErrorContext, what: string): TransportError {
  if (error instanceof TransportError) return error;
  const sysCode = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : undefined;
  const text = error instanceof Error ? error.message : String(error);
  const make = (code: string, prefix: string): TransportError => new TransportError(code, `${prefix} ${what}: ${text}`, { cause: error, sysCode });
  if (context === 'file') return make(TRANSPORT_ERR_FILE, 'File error on');
  if (sysCode === 'ERR_TLS_CERT_ALTNAME_INVALID') return make(TRANSPORT_ERR_TLS_HOSTNAME, 'TLS hostname check failed for');
  if (sysCode !== undefined && TLS_VERIFY_CODES.has(sysCode)) return make(TRANSPORT_ERR_TLS_VERIFY, 'TLS certificate not trusted for');
  if (sysCode !== undefined && (sysCode.startsWith('ERR_SSL_') || sysCode.startsWith('ERR_TLS_'))) {
    return make(TRANSPORT_ERR_TLS_HANDSHAKE, 'TLS handshake failed for');
  }
  if (sysCode === 'ETIMEDOUT') return make(TRANSPORT_ERR_TIMEOUT, 'Timed out on');
  if (sysCode !== undefined && RESET_CODES.has(sysCode)) return make(TRANSPORT_ERR_RESET, 'Connection reset on');
  if (context === 'connect' && sysCode !== undefined && CONNECT_CODES.has(sysCode)) return make(TRANSPORT_ERR_CONNECT, 'Cannot connect to');
  if (context === 'listen' && sysCode !== undefined && LISTEN_CODES.has(sysCode)) return make(TRANSPORT_ERR_LISTEN, 'Cannot listen on');
  if (context === 'tls') return make(TRANSPORT_ERR_TLS_HANDSHAKE, 'TLS handshake failed for');
  return make(TRANSPORT_ERR_IO, 'I/O error on');
}
