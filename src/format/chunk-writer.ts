/**
 * An append-only writer that fills fixed-size chunk buffers and hands each full one to a
 * callback, which then owns it. Records never straddle chunks unless they are larger than
 * the room left (raw bytes are split); big writes get a buffer of their own size. This is
 * the byte layer under StreamEncoder, kept apart from the stream's grammar.
 */
import { FormatError } from './errors.ts';
import { MIG_ERR_ENCODE } from './stream-errors.ts';

const TWO_32 = 4294967296;
const EMPTY = new Uint8Array(0);

/**
 * Supplies a chunk buffer of `bytes`. `retiredEndBytes`: every chunk cut from the buffers
 * supplied before ends at or before this output offset, so a buffer may be handed out again
 * once the consumer is done with the output up to there.
 */
export type ChunkAllocator = (bytes: number, retiredEndBytes: number) => Uint8Array;

export class ChunkWriter {
  private readonly onChunk: (chunk: Uint8Array) => void;
  private readonly chunkSizeBytes: number;
  private readonly allocChunk: ChunkAllocator;
  protected buf: Uint8Array;
  protected view: DataView;
  /** Where the next byte goes in `buf`; bytes from `segmentStart` on are not handed out yet. */
  protected pos = 0;
  private segmentStart = 0;
  private flushedBytes = 0;

  /**
   * `allocChunk` supplies each new chunk buffer (default: a fresh zeroed array); a shell may
   * hand back recycled buffers whose earlier chunks it has finished with. Every byte handed
   * out in a chunk is written first, so a buffer's old contents never leak into the stream.
   */
  constructor(onChunk: (chunk: Uint8Array) => void, chunkSizeBytes: number, allocChunk: ChunkAllocator = (n) => new Uint8Array(n)) {
    this.onChunk = onChunk;
    this.chunkSizeBytes = chunkSizeBytes;
    this.allocChunk = allocChunk;
    this.buf = allocChunk(chunkSizeBytes, 0);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Bytes written so far, flushed or not. */
  get offsetBytes(): number {
    return this.flushedBytes + this.pos - this.segmentStart;
  }

  /**
   * Hands the bytes written so far to `onChunk` (nothing when there are none). Writing goes on
   * in the rest of the same buffer while at least a quarter chunk of it is left (the chunk
   * handed out never grows, so the two never overlap): a writer flushed after every small
   * write (postcopy's pumps) does not allocate and zero a whole chunk each time.
   */
  flush(): void {
    if (this.pos === this.segmentStart) return;
    const chunk = this.buf.subarray(this.segmentStart, this.pos);
    this.flushedBytes += this.pos - this.segmentStart;
    this.segmentStart = this.pos;
    if (this.buf.length - this.pos >= this.chunkSizeBytes / 4) {
      this.onChunk(chunk);
      return;
    }
    // The buffer is retired with its last chunk: every chunk cut from it ends at or before
    // `flushedBytes` of the output (onChunk must not write to this writer).
    this.setBuffer(EMPTY);
    this.onChunk(chunk);
    this.setBuffer(this.allocChunk(this.chunkSizeBytes, this.flushedBytes));
  }

  /**
   * Hands the bytes written so far, then `bytes` itself (not copied: the receiver reads it
   * later, so it must stay valid), to `onChunk`; writing goes on after them in the same buffer.
   * The zero-copy form of `bytes()` for page payloads (StreamEncoder option pageViews).
   */
  protected passView(bytes: Uint8Array): void {
    if (this.pos > this.segmentStart) {
      this.onChunk(this.buf.subarray(this.segmentStart, this.pos));
      this.flushedBytes += this.pos - this.segmentStart;
      this.segmentStart = this.pos;
    }
    this.flushedBytes += bytes.length;
    this.onChunk(bytes);
  }

  private setBuffer(buf: Uint8Array): void {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = 0;
    this.segmentStart = 0;
  }

  /** Room left in the current chunk. */
  protected get roomBytes(): number {
    return this.buf.length - this.pos;
  }


  /** Makes room for `n` contiguous bytes, starting a new chunk when the current one is full. */
  protected ensure(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    this.flush();
    if (this.buf.length - this.pos < n) this.setBuffer(n > this.chunkSizeBytes ? new Uint8Array(n) : this.allocChunk(this.chunkSizeBytes, this.flushedBytes));
  }

  protected fail(message: string): never {
    throw new FormatError(MIG_ERR_ENCODE, message, this.offsetBytes);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  be16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  be32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
    return this;
  }

  be64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) this.fail(`be64 value ${v} is not a non-negative safe integer`);
    this.ensure(8);
    this.view.setUint32(this.pos, Math.floor(v / TWO_32));
    this.view.setUint32(this.pos + 4, v >>> 0);
    this.pos += 8;
    return this;
  }

  be64Signed(v: bigint): this {
    this.ensure(8);
    this.view.setBigInt64(this.pos, BigInt.asIntN(64, v));
    this.pos += 8;
    return this;
  }

  /** Raw bytes, split across chunks when larger than the room left. */
  bytes(b: Uint8Array): this {
    let from = 0;
    while (from < b.length) {
      if (this.pos === this.buf.length) this.flush();
      const n = Math.min(b.length - from, this.buf.length - this.pos);
      this.buf.set(b.subarray(from, from + n), this.pos);
      this.pos += n;
      from += n;
    }
    return this;
  }

  fill(value: number, n: number): this {
    this.ensure(n);
    this.buf.fill(value, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }

  /** Latin-1 text, one byte per character. */
  latin1(s: string): this {
    this.ensure(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i) & 0xff;
    return this;
  }

  /** u8 length, then the Latin-1 bytes. */
  cstr8(s: string): this {
    if (s.length > 255) this.fail(`counted string longer than 255 bytes: ${s.length}`);
    return this.u8(s.length).latin1(s);
  }
}
