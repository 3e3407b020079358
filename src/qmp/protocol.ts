/**
 * The pure part of QMP (docs/interop/qmp-spec.txt, QEMU 7.2): the greeting, per-connection
 * negotiation state, line framing with a length limit, the request envelope check
 * (qmp_dispatch_check_obj) and the printing of replies and events. No I/O and no clock: the
 * caller passes bytes in and timestamps down.
 *
 * Texts are QEMU 7.2.22's, checked against a running binary:
 * - `QMP input must be a JSON object`, `QMP input lacks member 'execute'`,
 *   `QMP input member 'execute' must be a string`, `QMP input member 'arguments' must be an
 *   object`, `QMP input member 'x' is unexpected`, `QMP input member 'execute' clashes with
 *   'exec-oob'` (all GenericError); `exec-oob` is an unexpected member until OOB is enabled.
 *
 * Deviations from QEMU, on purpose:
 * - Framing is one request per line. QEMU splits its input by brace balance, so a request may
 *   span lines and several may share one; every QMP client sends one per line.
 * - A line longer than `maxLineBytes` (default 1 MiB; QEMU's token limit is 64 MiB) is answered
 *   with QEMU's `JSON token size limit exceeded` and skipped up to its newline.
 * - Invalid UTF-8 anywhere in a line gives `JSON parse error, invalid UTF-8 sequence in string`.
 */
import type { QmpErrorBody } from './errors.ts';
import type { QmpTimestamp, VersionInfo } from './controller.ts';
import { encodeQmpJson, isQmpJsonObject, qdictOrder, type QmpJson, type QmpJsonObject } from './json.ts';

/** The version livemig reports: the QEMU it behaves like, and our own package string. */
export const LIVEMIG_VERSION: VersionInfo = Object.freeze({
  qemu: Object.freeze({ major: 7, minor: 2, micro: 0 }),
  package: 'livemig 0.1.0',
});

/** Default longest accepted request line, bytes (newline excluded). */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/** QEMU's text when a message exceeds its size limit. */
export const LINE_TOO_LONG_TEXT = 'JSON token size limit exceeded';

/** Our text for a line that is not UTF-8. */
export const BAD_UTF8_TEXT = 'JSON parse error, invalid UTF-8 sequence in string';

/** The greeting sent on connect: QEMU 7.2's shape, OOB offered. */
export function greeting(version: VersionInfo): { QMP: { version: VersionInfo; capabilities: string[] } } {
  return {
    QMP: {
      // QAPI member order (major, minor, micro): the QDict printing order depends on it.
      version: { qemu: { major: version.qemu.major, minor: version.qemu.minor, micro: version.qemu.micro }, package: version.package },
      capabilities: ['oob'],
    },
  };
}

/** One connection's negotiation state (QEMU's MonitorQMP commands list and capab[]). */
export interface NegotiationState {
  /** `qmp_capabilities` succeeded: all commands are available and events are delivered. */
  negotiated: boolean;
  /** OOB was enabled by `qmp_capabilities {"enable": ["oob"]}`. */
  oobEnabled: boolean;
}

/** A fresh connection's state. */
export function newNegotiationState(): NegotiationState {
  return { negotiated: false, oobEnabled: false };
}

/** What the framer makes of the input: a complete line, or a framing error to answer. */
export type FramedInput = { readonly kind: 'line'; readonly text: string } | { readonly kind: 'error'; readonly desc: string };

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into lines. Partial lines (and multi-byte characters split across
 * chunks) are kept until their newline. A line over the limit yields one error and is dropped
 * up to its newline; the framer then continues with the next line.
 */
export class LineFramer {
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  private discarding = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {}

  /** Bytes held for an unfinished line. */
  get bufferedBytes(): number {
    return this.partBytes;
  }

  /** Feeds a chunk; returns the lines and errors it completes, in order. */
  push(chunk: Uint8Array): FramedInput[] {
    const out: FramedInput[] = [];
    let start = 0;
    while (start <= chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline < 0 ? chunk.length : newline;
      this.take(chunk.subarray(start, end), out);
      if (newline < 0) break;
      this.finishLine(out);
      start = newline + 1;
    }
    return out;
  }

  private take(piece: Uint8Array, out: FramedInput[]): void {
    if (this.discarding || piece.length === 0) return;
    if (this.partBytes + piece.length > this.maxLineBytes) {
      this.parts = [];
      this.partBytes = 0;
      this.discarding = true;
      out.push({ kind: 'error', desc: LINE_TOO_LONG_TEXT });
      return;
    }
    // Copy: the caller may reuse its buffer after push returns.
    this.parts.push(piece.slice());
    this.partBytes += piece.length;
  }

  private finishLine(out: FramedInput[]): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const bytes = this.parts.length === 1 ? this.parts[0] : concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    try {
      out.push({ kind: 'line', text: this.decoder.decode(bytes) });
    } catch {
      out.push({ kind: 'error', desc: BAD_UTF8_TEXT });
    }
  }
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** True when a line holds only JSON whitespace (QEMU ignores it: no reply). */
export function isBlankLine(text: string): boolean {
  return /^[ \t\r\n]*$/.test(text);
}

/** A request whose envelope passed the check. */
export interface QmpRequest {
  /** The command name (from `execute` or `exec-oob`). */
  readonly command: string;
  /** True for `exec-oob`. */
  readonly oob: boolean;
  /** The `arguments` object, if given. */
  readonly arguments: QmpJsonObject | undefined;
  /** The `id`, if given (any JSON, echoed verbatim). */
  readonly id: QmpJson | undefined;
}

/** The outcome of the envelope check. */
export type RequestCheck =
  | { readonly ok: true; readonly request: QmpRequest }
  | { readonly ok: false; readonly id: QmpJson | undefined; readonly error: QmpErrorBody };

function envelopeError(id: QmpJson | undefined, desc: string): RequestCheck {
  return { ok: false, id, error: { class: 'GenericError', desc } };
}

/**
 * QEMU's qmp_dispatch_check_obj: members are checked in QDict iteration order (so with both
 * `execute` and `exec-oob` QEMU always says 'execute' clashes with 'exec-oob'); `exec-oob` is
 * known only when OOB is enabled. The id of an object input is echoed even when the check fails.
 */
export function checkRequest(value: QmpJson, oobEnabled: boolean): RequestCheck {
  if (!isQmpJsonObject(value)) return envelopeError(undefined, 'QMP input must be a JSON object');
  const id = Object.hasOwn(value, 'id') ? value.id : undefined;
  let execKey: 'execute' | 'exec-oob' | null = null;
  for (const key of qdictOrder(Object.keys(value))) {
    const member = value[key];
    if (key === 'execute' || (key === 'exec-oob' && oobEnabled)) {
      if (typeof member !== 'string') return envelopeError(id, `QMP input member '${key}' must be a string`);
      if (execKey !== null) return envelopeError(id, `QMP input member '${key}' clashes with '${execKey}'`);
      execKey = key;
    } else if (key === 'arguments') {
      if (!isQmpJsonObject(member)) return envelopeError(id, "QMP input member 'arguments' must be an object");
    } else if (key !== 'id') {
      return envelopeError(id, `QMP input member '${key}' is unexpected`);
    }
  }
  if (execKey === null) return envelopeError(id, "QMP input lacks member 'execute'");
  const args = value.arguments as QmpJsonObject | undefined;
  return { ok: true, request: { command: value[execKey] as string, oob: execKey === 'exec-oob', arguments: args, id } };
}

/**
 * True when a parsed input is an out-of-band request as QEMU's reader sees it (`exec-oob`
 * without `execute`): it runs at once, ahead of queued in-band requests, even when OOB is not
 * enabled (the dispatcher then refuses it).
 */
export function isOobInput(value: QmpJson): boolean {
  return isQmpJsonObject(value) && Object.hasOwn(value, 'exec-oob') && !Object.hasOwn(value, 'execute');
}

/** A reply before printing. */
export type QmpReply =
  | { readonly kind: 'return'; readonly value: unknown; readonly id: QmpJson | undefined }
  | { readonly kind: 'error'; readonly error: QmpErrorBody; readonly id: QmpJson | undefined };

/** Prints a reply as one line (no newline), members in QEMU's order. */
export function formatReply(reply: QmpReply): string {
  if (reply.kind === 'return') {
    return encodeQmpJson(reply.id === undefined ? { return: reply.value } : { return: reply.value, id: reply.id });
  }
  const error = { class: reply.error.class, desc: reply.error.desc };
  return encodeQmpJson(reply.id === undefined ? { error } : { id: reply.id, error });
}

/** Prints an event as one line (no newline): `{"timestamp", "event", "data"?}`. */
export function formatEvent(event: { readonly event: string; readonly data?: unknown }, timestamp: QmpTimestamp): string {
  const body: Record<string, unknown> = {
    timestamp: { seconds: timestamp.seconds, microseconds: timestamp.microseconds },
    event: event.event,
  };
  if (event.data !== undefined) body.data = event.data;
  return encodeQmpJson(body);
}

/** The QMP timestamp of a wall-clock time given in microseconds since the epoch. */
export function timestampOfMicros(micros: number): QmpTimestamp {
  const whole = Math.floor(micros);
  return { seconds: Math.floor(whole / 1_000_000), microseconds: whole % 1_000_000 };
}
