/**
 * The simulation trace: JSON lines written into memory, with a 64-bit FNV-1a hash computed
 * incrementally over the exact UTF-8 bytes written (each line plus its "\n"). Same seed and same
 * commit must give the same `traceHash()` (DESIGN §3 determinism); the hash is what CI compares.
 *
 * Determinism rules of the format: keys appear in insertion order (callers build records the
 * same way every time); numbers use ECMAScript's shortest round-trip form, which the language
 * specifies exactly, with -0 written as 0; NaN and ±Infinity are refused (they are bugs in a
 * trace); bigints are written as plain integers; properties whose value is undefined are left
 * out (like JSON.stringify).
 *
 * What it deliberately doesn't do: write files (the shell saves `text()`), compress, or use
 * node:crypto (the hash is implemented here so the pure layer can compute it).
 */
import { assert } from '../lib/assert.ts';

/** Values a trace record may hold. */
export type TraceValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | undefined
  | readonly TraceValue[]
  | { readonly [key: string]: TraceValue };

/** One trace line's object. */
export type TraceRecord = { readonly [key: string]: TraceValue };

/** Stable codes of trace errors. */
export type TraceErrorCode = 'TRACE_NON_FINITE' | 'TRACE_BAD_VALUE' | 'TRACE_FULL';

export class TraceError extends Error {
  override name = 'TraceError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: TraceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** 64-bit FNV-1a over bytes, kept as four 16-bit limbs so all arithmetic stays exact. */
export class Fnv1a64 {
  /** Limbs, least significant first; starts at the offset basis 0xcbf29ce484222325. */
  private h0 = 0x2325;
  private h1 = 0x8422;
  private h2 = 0x9ce4;
  private h3 = 0xcbf2;

  /** Hashes one byte (0..255). */
  updateByte(byte: number): void {
    const h0 = this.h0 ^ byte;
    // Multiply by the FNV prime 2^40 + 0x1b3, modulo 2^64.
    const t0 = h0 * 0x1b3;
    let t1 = this.h1 * 0x1b3;
    let t2 = this.h2 * 0x1b3 + (h0 << 8);
    let t3 = this.h3 * 0x1b3 + (this.h1 << 8);
    t1 += t0 >>> 16;
    t2 += t1 >>> 16;
    t3 += t2 >>> 16;
    this.h0 = t0 & 0xffff;
    this.h1 = t1 & 0xffff;
    this.h2 = t2 & 0xffff;
    this.h3 = t3 & 0xffff;
  }

  /** Hashes bytes. */
  update(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.updateByte(bytes[i]);
  }

  /** Hashes the UTF-8 encoding of `text` (lone surrogates as U+FFFD, like TextEncoder). */
  updateString(text: string): void {
    for (let i = 0; i < text.length; i++) {
      let code = text.charCodeAt(i);
      if (code < 0x80) {
        this.updateByte(code);
        continue;
      }
      if (code < 0x800) {
        this.updateByte(0xc0 | (code >> 6));
        this.updateByte(0x80 | (code & 0x3f));
        continue;
      }
      if (code >= 0xd800 && code <= 0xdfff) {
        const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
        if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
          i++;
          this.updateByte(0xf0 | (code >> 18));
          this.updateByte(0x80 | ((code >> 12) & 0x3f));
          this.updateByte(0x80 | ((code >> 6) & 0x3f));
          this.updateByte(0x80 | (code & 0x3f));
          continue;
        }
        code = 0xfffd;
      }
      this.updateByte(0xe0 | (code >> 12));
      this.updateByte(0x80 | ((code >> 6) & 0x3f));
      this.updateByte(0x80 | (code & 0x3f));
    }
  }

  /** The hash so far as 16 lowercase hex digits. */
  digestHex(): string {
    const hex = (limb: number): string => limb.toString(16).padStart(4, '0');
    return hex(this.h3) + hex(this.h2) + hex(this.h1) + hex(this.h0);
  }
}

/** FNV-1a 64 of a string (UTF-8) or bytes, as 16 hex digits. */
export function fnv1a64Hex(data: string | Uint8Array): string {
  const hash = new Fnv1a64();
  if (typeof data === 'string') hash.updateString(data);
  else hash.update(data);
  return hash.digestHex();
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) throw new TraceError('TRACE_NON_FINITE', `trace value ${value} is not finite`);
  return Object.is(value, -0) ? '0' : String(value);
}

/** The deterministic JSON text of a trace value (see the module comment for the rules). */
export function formatTraceValue(value: TraceValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return formatNumber(value);
    case 'bigint':
      return value.toString();
    case 'string':
      return JSON.stringify(value);
    case 'undefined':
      throw new TraceError('TRACE_BAD_VALUE', 'undefined is not a trace value (only object properties may be undefined)');
    default:
      break;
  }
  if (Array.isArray(value)) return `[${value.map((v: TraceValue) => formatTraceValue(v)).join(',')}]`;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new TraceError('TRACE_BAD_VALUE', 'trace objects must be plain objects');
  }
  const parts: string[] = [];
  for (const [key, v] of Object.entries(value as TraceRecord)) {
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${formatTraceValue(v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Options of a trace writer. */
export interface TraceWriterOptions {
  /** Keep the lines in memory (default true); false only hashes and counts, for huge runs. */
  readonly keepLines?: boolean;
  /** Bound on lines written (default 10 million); writing past it is a TraceError. */
  readonly maxLines?: number;
}

export class TraceWriter {
  private readonly keepLines: boolean;
  private readonly maxLines: number;
  /** Lines written, without their "\n" (empty when keepLines is false). */
  private readonly kept: string[] = [];
  /** Running hash of every byte written. */
  private readonly hash = new Fnv1a64();
  /** Lines written. */
  private lineTotal = 0;

  constructor(options: TraceWriterOptions = {}) {
    this.keepLines = options.keepLines ?? true;
    this.maxLines = options.maxLines ?? 10_000_000;
  }

  /** Writes one record as a JSON line. */
  write(record: TraceRecord): void {
    this.writeLine(formatTraceValue(record));
  }

  /** Writes one pre-formatted line (it must not contain a newline). */
  writeLine(line: string): void {
    assert(!line.includes('\n'), 'a trace line must not contain a newline');
    if (this.lineTotal >= this.maxLines) throw new TraceError('TRACE_FULL', `trace exceeds ${this.maxLines} lines`);
    this.hash.updateString(line);
    this.hash.updateByte(0x0a);
    this.lineTotal++;
    if (this.keepLines) this.kept.push(line);
  }

  /** Lines written so far. */
  get lineCount(): number {
    return this.lineTotal;
  }

  /** The kept lines (empty when keepLines is false). */
  lines(): readonly string[] {
    return this.kept;
  }

  /** The whole trace as JSON-lines text (each line ends with "\n"). */
  text(): string {
    return this.kept.length === 0 ? '' : `${this.kept.join('\n')}\n`;
  }

  /** FNV-1a 64 of every byte written so far, as 16 hex digits. */
  traceHash(): string {
    return this.hash.digestHex();
  }
}
