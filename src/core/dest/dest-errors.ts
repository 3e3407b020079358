/**
 * Operating errors of the destination engine: typed, with a stable `code`, and a message that
 * is QEMU 7.2's text wherever QEMU has one (facts §1, §3.3, §3.5), so that `error-desc`, logs
 * and tests read the same as a real destination's stderr. Every failure of an incoming
 * migration is one DestError; a malformed stream wraps the format layer's FormatError
 * (code MIG_ERR_DEST_STREAM, the FormatError's code in `formatCode`, its message unchanged).
 *
 * Programmer errors (a fault for a vCPU that is already blocked, an event the phase machine
 * does not allow) are assertions instead (lib/assert.ts), never DestErrors.
 */
import { FormatError } from '../../format/errors.ts';

/** The stream decoder refused the bytes (bad magic, truncated, unknown section, ...). */
export const MIG_ERR_DEST_STREAM = 'MIG_ERR_DEST_STREAM';
/** Postcopy placement of a page that is already there (QEMU: UFFDIO_COPY fails with EEXIST). */
export const MIG_ERR_DEST_PLACED_TWICE = 'MIG_ERR_DEST_PLACED_TWICE';
/** POSTCOPY_ADVISE refused: capability, length, page-size or target-page-size mismatch. */
export const MIG_ERR_DEST_ADVISE = 'MIG_ERR_DEST_ADVISE';
/** A destination postcopy notifier (probe, inbound-advise, inbound-listen) vetoed. */
export const MIG_ERR_DEST_NOTIFIER_VETO = 'MIG_ERR_DEST_NOTIFIER_VETO';
/** The host's loadDevice refused a device section. */
export const MIG_ERR_DEST_DEVICE_LOAD = 'MIG_ERR_DEST_DEVICE_LOAD';
/** PING before OPEN_RETURN_PATH. */
export const MIG_ERR_DEST_NO_RETURN_PATH = 'MIG_ERR_DEST_NO_RETURN_PATH';
/** A MEM_SIZE block the destination does not have. */
export const MIG_ERR_DEST_UNKNOWN_BLOCK = 'MIG_ERR_DEST_UNKNOWN_BLOCK';
/** A MEM_SIZE block whose length differs from the local block (blocks are not resizable here). */
export const MIG_ERR_DEST_BLOCK_SIZE = 'MIG_ERR_DEST_BLOCK_SIZE';
/** A globalstate runstate that is not one of QEMU's RunState names. */
export const MIG_ERR_DEST_GLOBALSTATE = 'MIG_ERR_DEST_GLOBALSTATE';
/** A page payload the store cannot take (a version a compact store cannot hold, bytes it cannot represent). */
export const MIG_ERR_DEST_PAGE_PAYLOAD = 'MIG_ERR_DEST_PAGE_PAYLOAD';
/** Something this engine deliberately does not implement (COLO). */
export const MIG_ERR_DEST_UNSUPPORTED = 'MIG_ERR_DEST_UNSUPPORTED';
/** A QMP command refused in the current state (migrate-recover, migrate-pause); QEMU's text. */
export const MIG_ERR_DEST_COMMAND = 'MIG_ERR_DEST_COMMAND';
/** A connection was shut down under the load (migrate-pause); in postcopy it pauses. */
export const MIG_ERR_DEST_CHANNEL = 'MIG_ERR_DEST_CHANNEL';

export type DestErrorCode =
  | typeof MIG_ERR_DEST_STREAM
  | typeof MIG_ERR_DEST_PLACED_TWICE
  | typeof MIG_ERR_DEST_ADVISE
  | typeof MIG_ERR_DEST_NOTIFIER_VETO
  | typeof MIG_ERR_DEST_DEVICE_LOAD
  | typeof MIG_ERR_DEST_NO_RETURN_PATH
  | typeof MIG_ERR_DEST_UNKNOWN_BLOCK
  | typeof MIG_ERR_DEST_BLOCK_SIZE
  | typeof MIG_ERR_DEST_GLOBALSTATE
  | typeof MIG_ERR_DEST_PAGE_PAYLOAD
  | typeof MIG_ERR_DEST_UNSUPPORTED
  | typeof MIG_ERR_DEST_COMMAND
  | typeof MIG_ERR_DEST_CHANNEL;

/** Every code, for tests that check each one is produced somewhere. */
export const DEST_ERROR_CODES: readonly DestErrorCode[] = [
  MIG_ERR_DEST_STREAM,
  MIG_ERR_DEST_PLACED_TWICE,
  MIG_ERR_DEST_ADVISE,
  MIG_ERR_DEST_NOTIFIER_VETO,
  MIG_ERR_DEST_DEVICE_LOAD,
  MIG_ERR_DEST_NO_RETURN_PATH,
  MIG_ERR_DEST_UNKNOWN_BLOCK,
  MIG_ERR_DEST_BLOCK_SIZE,
  MIG_ERR_DEST_GLOBALSTATE,
  MIG_ERR_DEST_PAGE_PAYLOAD,
  MIG_ERR_DEST_UNSUPPORTED,
  MIG_ERR_DEST_COMMAND,
  MIG_ERR_DEST_CHANNEL,
];

export class DestError extends Error {
  override name = 'DestError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: DestErrorCode,
    message: string,
    /** For MIG_ERR_DEST_STREAM: the FormatError's code (MIG_ERR_TRUNCATED, ...); else null. */
    readonly formatCode: string | null = null,
  ) {
    super(message);
  }

  /** Wraps a decoder error, keeping its message verbatim. */
  static fromFormat(error: FormatError): DestError {
    const wrapped = new DestError(MIG_ERR_DEST_STREAM, error.message, error.code);
    wrapped.cause = error;
    return wrapped;
  }

  toJSON(): object {
    return { code: this.code, message: this.message, formatCode: this.formatCode };
  }
}

/** Turns anything a decoder push threw into a DestError; other exceptions propagate. */
export function toDestError(thrown: unknown): DestError {
  if (thrown instanceof DestError) return thrown;
  if (thrown instanceof FormatError) return DestError.fromFormat(thrown);
  throw thrown;
}

function hex(n: number): string {
  return n.toString(16);
}

/**
 * QEMU's postcopy_place_page error on EEXIST. QEMU prints host pointers; livemig has none, so
 * `host` is the page's guest physical address and `from` names the block and offset.
 */
export function placedTwiceText(zero: boolean, gpa: number, blockName: string, offsetBytes: number, pageSizeBytes: number): string {
  return zero
    ? `postcopy_place_page_zero: File exists zero host: 0x${hex(gpa)}`
    : `postcopy_place_page: File exists copy host: 0x${hex(gpa)} from: ${blockName}+0x${hex(offsetBytes)} (size: ${pageSizeBytes})`;
}

/** QEMU's texts for a POSTCOPY_ADVISE the destination refuses (facts §3.3). */
export const ADVISE_TEXTS = {
  enabledButEmpty: 'RAM postcopy is enabled but have 0 byte advise',
  disabledButFull: 'RAM postcopy is disabled but have 16 byte advise',
  pageSizes: (remote: number, local: number) => `Postcopy needs matching RAM page sizes (s=${hex(remote)} d=${hex(local)})`,
  targetPageSizes: (remote: number, local: number) => `Postcopy needs matching target page sizes (s=${remote} d=${local})`,
} as const;

/** QEMU's text for a PING on a stream whose return path was never opened. */
export function pingWithoutReturnPathText(value: number): string {
  return `CMD_PING (0x${hex(value)}) received with no return path`;
}

/** QEMU's text for a MEM_SIZE block the destination does not have. */
export function unknownBlockText(name: string): string {
  return `Unknown ramblock "${name}", cannot accept migration`;
}

/** QEMU's qemu_ram_resize error for a fixed-size block announced with another length. */
export function blockSizeText(name: string, remoteBytes: number, localBytes: number): string {
  return `Size mismatch: ${name}: 0x${hex(remoteBytes)} != 0x${hex(localBytes)}: Invalid argument`;
}

/** QEMU's log line when postcopy pauses (both sides). */
export const POSTCOPY_PAUSED_TEXT = 'Detected IO failure for postcopy. Migration paused.';

/** QEMU's texts for refused postcopy recovery commands on the destination (facts §3.11). */
export const RECOVERY_TEXTS = {
  recoverNotPaused: 'Migrate recover can only be run when postcopy is paused.',
  recoverTriggered: 'Migrate recovery is triggered already',
  pauseNotPostcopy: 'migrate-pause is currently only supported during postcopy-active state',
  pausedByCommand: 'Channel shut down by migrate-pause',
  recvBitmapUnknownBlock: (name: string) => `loadvm_handle_recv_bitmap: block '${name}' not found`,
  illegalResume: 'loadvm_postcopy_handle_resume: illegal resume received',
} as const;
