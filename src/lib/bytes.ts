/**
 * Bounds-checked big-endian (and little-endian where virtio needs it) byte access over a
 * Uint8Array. Every read checks that the bytes exist; a short read throws ShortReadError,
 * which push decoders use to mean "wait for more input" and one-shot parsers turn into a
 * typed truncation error. 64-bit reads return a `number` and refuse values above 2^53 - 1:
 * every 64-bit field we read (offsets, sizes) fits, and a larger one is malformed input.
 */

/** Thrown when a read runs past the end of the bytes available. `needBytes` is the shortfall. */
export class ShortReadError extends Error {
  override name = 'ShortReadError';
  constructor(readonly offset: number, readonly needBytes: number) {
    super(`Short read at offset ${offset}: ${needBytes} more byte(s) needed`);
  }
}

/** Thrown when a 64-bit field does not fit a safe integer. */
export class Unsafe64Error extends Error {
  override name = 'Unsafe64Error';
  constructor(readonly offset: number, readonly high: number, readonly low: number) {
    super(`64-bit value at offset ${offset} exceeds 2^53-1 (0x${high.toString(16)}${low.toString(16).padStart(8, '0')})`);
  }
}

const TWO_32 = 4294967296;

export class ByteReader {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Read position, relative to `bytes`. */
  pos: number;
  /** End of readable bytes (exclusive). */
  readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws ShortReadError unless `n` bytes are available. */
  need(n: number): void {
    if (this.end - this.pos < n) throw new ShortReadError(this.pos, n - (this.end - this.pos));
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }

  be16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  be32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A big-endian signed 64-bit value as a bigint (clock offsets can be negative). */
  be64Signed(): bigint {
    this.need(8);
    const v = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return v;
  }

  /** A big-endian unsigned 64-bit value as a number; Unsafe64Error above 2^53 - 1. */
  be64(): number {
    this.need(8);
    const high = this.view.getUint32(this.pos);
    const low = this.view.getUint32(this.pos + 4);
    if (high > 0x1fffff) throw new Unsafe64Error(this.pos, high, low);
    this.pos += 8;
    return high * TWO_32 + low;
  }

  /** A big-endian unsigned 64-bit value as a bigint (any value). */
  be64Big(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  le16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  le32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  le64(): number {
    this.need(8);
    const low = this.view.getUint32(this.pos, true);
    const high = this.view.getUint32(this.pos + 4, true);
    if (high > 0x1fffff) throw new Unsafe64Error(this.pos, high, low);
    this.pos += 8;
    return high * TWO_32 + low;
  }

  /** `n` bytes as a view into the underlying buffer (no copy). */
  bytesView(n: number): Uint8Array {
    this.need(n);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A counted string: u8 length N, then N bytes (QEMU's qemu_get_counted_string). */
  cstr8(): string {
    const n = this.u8();
    return latin1(this.bytesView(n));
  }

  /** Peeks one byte without consuming it; ShortReadError when none is available. */
  peekU8(): number {
    this.need(1);
    return this.bytes[this.pos];
  }
}

/** Decodes bytes as Latin-1 / ASCII (QEMU id strings are plain bytes). */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

export function utf8Decode(bytes: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

/**
 * An append-only writer into a growable buffer. `finish()` returns a view of the bytes
 * written; `reset()` reuses the buffer. Writers are never shared between modules.
 */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  /** Bytes written so far. */
  length = 0;

  constructor(initialCapacity = 4096) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const want = this.length + n;
    if (want <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < want) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.length++] = v;
    return this;
  }

  be16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
    return this;
  }

  be32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
    return this;
  }

  /** Writes a non-negative safe integer as big-endian u64. */
  be64(v: number): this {
    this.ensure(8);
    this.view.setUint32(this.length, Math.floor(v / TWO_32));
    this.view.setUint32(this.length + 4, v >>> 0);
    this.length += 8;
    return this;
  }

  be64Big(v: bigint): this {
    this.ensure(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, v));
    this.length += 8;
    return this;
  }

  le16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }

  le32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }

  le64(v: number): this {
    this.ensure(8);
    this.view.setUint32(this.length, v >>> 0, true);
    this.view.setUint32(this.length + 4, Math.floor(v / TWO_32), true);
    this.length += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  /** Writes `n` copies of `value`. */
  fill(value: number, n: number): this {
    this.ensure(n);
    this.buf.fill(value, this.length, this.length + n);
    this.length += n;
    return this;
  }

  /** Writes a counted string (u8 length, then the bytes); the string must be ≤ 255 bytes of Latin-1. */
  cstr8(s: string): this {
    if (s.length > 255) throw new RangeError(`counted string longer than 255 bytes: ${s.length}`);
    this.u8(s.length);
    this.ensure(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.length++] = s.charCodeAt(i) & 0xff;
    return this;
  }

  /** Patches a be32 at an absolute position already written. */
  patchBe32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0);
  }

  /** A view of the bytes written (valid until the next write or reset). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** A copy of the bytes written. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

export function hex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, '0');
  return s;
}

export function fromHex(text: string): Uint8Array {
  const clean = text.replace(/[^0-9a-fA-F]/g, '');
  if (clean.length % 2 !== 0) throw new RangeError('odd number of hex digits');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** True when every byte of `page` is zero; compares 32-bit words, OR-folded, where aligned. */
export function isZeroPage(page: Uint8Array): boolean {
  if ((page.byteOffset & 3) === 0 && (page.length & 31) === 0) {
    const words = new Uint32Array(page.buffer, page.byteOffset, page.length >>> 2);
    for (let i = 0; i < words.length; i += 8) {
      if ((words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] | words[i + 6] | words[i + 7]) !== 0) {
        return false;
      }
    }
    return true;
  }
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}
