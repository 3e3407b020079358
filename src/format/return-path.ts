/**
 * The postcopy / return-path channel, destination → source (facts §3.2, §3.11): message
 * types, an encoder and a push decoder that accepts chunks of any size.
 *
 * Framing is be16 type, be16 length, payload. RECV_BITMAP is special: after its message the
 * destination writes raw follow-on bytes (be64 bitmap size, the bitmap as little-endian u64
 * words, be64 end marker), which this decoder reads as part of the same record. The decoder
 * keeps the block named by the last REQ_PAGES_ID so that REQ_PAGES records carry a block name,
 * as the QEMU source does. Errors are FormatError with a MIG_ERR_RP_* code and the absolute
 * offset in the return-path byte stream; the first error is sticky.
 */
import { ByteWriter } from '../lib/bytes.ts';
import { FormatError } from './errors.ts';
import {
  encodeRecvBitmapData,
  MIG_ERR_RP_BITMAP_SIZE,
  RECV_BITMAP_END_MARK_HIGH,
  RECV_BITMAP_END_MARK_LOW,
  recvBitmapSizeBytes,
} from './recv-bitmap.ts';

export {
  bitmapFromRecvBitmap,
  encodeRecvBitmapData,
  MIG_ERR_RP_BITMAP_SIZE,
  recvBitmapFromBitmap,
  recvBitmapFromRange,
  recvBitmapSizeBytes,
  RECV_BITMAP_END_MARK,
} from './recv-bitmap.ts';

/** Message type numbers (QEMU's MIG_RP_MSG_*). 7 (SWITCHOVER_ACK, 8.1+) is not in 7.2. */
export const RP_MSG_SHUT = 1;
export const RP_MSG_PONG = 2;
export const RP_MSG_REQ_PAGES_ID = 3;
export const RP_MSG_REQ_PAGES = 4;
export const RP_MSG_RECV_BITMAP = 5;
export const RP_MSG_RESUME_ACK = 6;

/** The QEMU source reads each message into a 512-byte buffer; longer ones are invalid. */
export const RP_MAX_MESSAGE_LENGTH_BYTES = 512;
/** The value a destination sends in RESUME_ACK (MIGRATION_RESUME_ACK_VALUE). */
export const RP_RESUME_ACK_VALUE = 1;
/** Default cap on a RECV_BITMAP's size: 64 MiB covers 2 TiB of 4 KiB pages. */
export const RP_DEFAULT_MAX_BITMAP_BYTES = 64 * 1024 * 1024;

export const MIG_ERR_RP_UNKNOWN_TYPE = 'MIG_ERR_RP_UNKNOWN_TYPE';
export const MIG_ERR_RP_TOO_LONG = 'MIG_ERR_RP_TOO_LONG';
export const MIG_ERR_RP_BAD_LENGTH = 'MIG_ERR_RP_BAD_LENGTH';
export const MIG_ERR_RP_BAD_OFFSET = 'MIG_ERR_RP_BAD_OFFSET';
export const MIG_ERR_RP_NO_PREVIOUS_BLOCK = 'MIG_ERR_RP_NO_PREVIOUS_BLOCK';
export const MIG_ERR_RP_BITMAP_END_MARK = 'MIG_ERR_RP_BITMAP_END_MARK';
export const MIG_ERR_RP_AFTER_SHUT = 'MIG_ERR_RP_AFTER_SHUT';
export const MIG_ERR_RP_TRUNCATED = 'MIG_ERR_RP_TRUNCATED';
export const MIG_ERR_RP_ENCODE = 'MIG_ERR_RP_ENCODE';

/** Every code this module (with recv-bitmap.ts) can raise. */
export const RETURN_PATH_ERROR_CODES = [
  MIG_ERR_RP_UNKNOWN_TYPE,
  MIG_ERR_RP_TOO_LONG,
  MIG_ERR_RP_BAD_LENGTH,
  MIG_ERR_RP_BAD_OFFSET,
  MIG_ERR_RP_NO_PREVIOUS_BLOCK,
  MIG_ERR_RP_BITMAP_SIZE,
  MIG_ERR_RP_BITMAP_END_MARK,
  MIG_ERR_RP_AFTER_SHUT,
  MIG_ERR_RP_TRUNCATED,
  MIG_ERR_RP_ENCODE,
] as const;

/** One return-path message. REQ_PAGES carries the block named by the last REQ_PAGES_ID. */
export type RpMessage =
  | { readonly kind: 'shut'; readonly status: number }
  | { readonly kind: 'pong'; readonly value: number }
  | { readonly kind: 'req-pages-id'; readonly startBytes: number; readonly lengthBytes: number; readonly blockName: string }
  | { readonly kind: 'req-pages'; readonly startBytes: number; readonly lengthBytes: number; readonly blockName: string }
  /** `bitmap` is the raw follow-on bitmap (size bytes, little-endian u64 words). */
  | { readonly kind: 'recv-bitmap'; readonly blockName: string; readonly bitmap: Uint8Array }
  | { readonly kind: 'resume-ack'; readonly value: number };

/** Payload lengths of the fixed-length messages. */
const FIXED_LENGTH_BYTES: Readonly<Record<number, number>> = {
  [RP_MSG_SHUT]: 4,
  [RP_MSG_PONG]: 4,
  [RP_MSG_REQ_PAGES]: 12,
  [RP_MSG_RESUME_ACK]: 4,
};

const TYPE_NAMES: Readonly<Record<number, string>> = {
  [RP_MSG_SHUT]: 'SHUT',
  [RP_MSG_PONG]: 'PONG',
  [RP_MSG_REQ_PAGES_ID]: 'REQ_PAGES_ID',
  [RP_MSG_REQ_PAGES]: 'REQ_PAGES',
  [RP_MSG_RECV_BITMAP]: 'RECV_BITMAP',
  [RP_MSG_RESUME_ACK]: 'RESUME_ACK',
};

const TWO_32 = 4294967296;

function encodeError(message: string): FormatError {
  return new FormatError(MIG_ERR_RP_ENCODE, message, 0);
}

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw encodeError(`${what} is not a u32: ${v}`);
}

function checkName(name: string): void {
  if (name.length > 255) throw encodeError(`block name longer than 255 bytes: ${name.length}`);
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) > 0xff) throw encodeError(`block name is not Latin-1: ${JSON.stringify(name)}`);
  }
}

/**
 * Appends one message to `out` (RECV_BITMAP with its follow-on data). REQ_PAGES writes no
 * block name: the caller is responsible for having named the block by a REQ_PAGES_ID.
 */
export function writeRpMessage(out: ByteWriter, msg: RpMessage): void {
  switch (msg.kind) {
    case 'shut':
    case 'pong':
    case 'resume-ack': {
      const value = msg.kind === 'shut' ? msg.status : msg.value;
      checkU32(value, msg.kind);
      const type = msg.kind === 'shut' ? RP_MSG_SHUT : msg.kind === 'pong' ? RP_MSG_PONG : RP_MSG_RESUME_ACK;
      out.be16(type).be16(4).be32(value);
      return;
    }
    case 'req-pages-id':
    case 'req-pages': {
      if (!Number.isSafeInteger(msg.startBytes) || msg.startBytes < 0) throw encodeError(`bad start ${msg.startBytes}`);
      checkU32(msg.lengthBytes, 'length');
      if (msg.kind === 'req-pages') {
        out.be16(RP_MSG_REQ_PAGES).be16(12).be64(msg.startBytes).be32(msg.lengthBytes);
        return;
      }
      checkName(msg.blockName);
      out.be16(RP_MSG_REQ_PAGES_ID).be16(13 + msg.blockName.length).be64(msg.startBytes).be32(msg.lengthBytes).cstr8(msg.blockName);
      return;
    }
    case 'recv-bitmap':
      checkName(msg.blockName);
      if (msg.bitmap.length % 8 !== 0) throw encodeError(`bitmap size ${msg.bitmap.length} is not a multiple of 8`);
      out.be16(RP_MSG_RECV_BITMAP).be16(1 + msg.blockName.length).cstr8(msg.blockName);
      out.bytes(encodeRecvBitmapData(msg.bitmap));
      return;
  }
}

/** Encodes messages into one byte array. */
export function encodeRpMessages(messages: readonly RpMessage[]): Uint8Array {
  const out = new ByteWriter(64);
  for (const m of messages) writeRpMessage(out, m);
  return out.toBytes();
}

/**
 * The destination's page-request writer: emits REQ_PAGES_ID when the block differs from the
 * last one requested, REQ_PAGES otherwise (facts §3.2). `resetBlock()` forgets the last block,
 * as the destination does on postcopy recovery.
 */
export class ReturnPathEncoder {
  private lastBlock: string | null = null;

  constructor(private readonly out: ByteWriter) {}

  requestPages(blockName: string, startBytes: number, lengthBytes: number): RpMessage {
    const msg: RpMessage =
      blockName === this.lastBlock
        ? { kind: 'req-pages', startBytes, lengthBytes, blockName }
        : { kind: 'req-pages-id', startBytes, lengthBytes, blockName };
    writeRpMessage(this.out, msg);
    this.lastBlock = blockName;
    return msg;
  }

  write(msg: RpMessage): void {
    writeRpMessage(this.out, msg);
    if (msg.kind === 'req-pages-id') this.lastBlock = msg.blockName;
  }

  resetBlock(): void {
    this.lastBlock = null;
  }
}

export interface ReturnPathDecoderOptions {
  /** Largest RECV_BITMAP accepted, in bytes (default RP_DEFAULT_MAX_BITMAP_BYTES). */
  readonly maxBitmapBytes?: number;
  /** When given, a RECV_BITMAP's size must equal recvBitmapSizeBytes(bits) for its block. */
  readonly bitmapBitsForBlock?: (blockName: string) => number | undefined;
}

/** Receives each decoded message with the absolute offset of its type field. */
export type RpMessageSink = (msg: RpMessage, offset: number) => void;

/** Decoder states: what the next `needBytes` bytes are. */
const State = { Header: 0, Payload: 1, BitmapSize: 2, BitmapData: 3, BitmapEnd: 4, Shut: 5 } as const;
type State = (typeof State)[keyof typeof State];

/** Push decoder for the return path; `push` chunks of any size, then `finish` at EOF. */
export class ReturnPathDecoder {
  private readonly maxBitmapBytes: number;
  private readonly bitmapBitsForBlock: ((blockName: string) => number | undefined) | undefined;
  private readonly scratch = new Uint8Array(RP_MAX_MESSAGE_LENGTH_BYTES);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private state: State = State.Header;
  /** Bytes the current state needs, and how many of them are already in `scratch`/`bitmap`. */
  private needBytes = 4;
  private haveBytes = 0;
  /** Absolute offset of the next byte to consume. */
  private consumedBytes = 0;
  private messageOffset = 0;
  private messageType = 0;
  private bitmapBlock = '';
  private bitmap: Uint8Array = new Uint8Array(0);
  private lastBlock: string | null = null;
  private failure: unknown = null;

  constructor(
    private readonly sink: RpMessageSink,
    options: ReturnPathDecoderOptions = {},
  ) {
    this.maxBitmapBytes = options.maxBitmapBytes ?? RP_DEFAULT_MAX_BITMAP_BYTES;
    this.bitmapBitsForBlock = options.bitmapBitsForBlock;
  }

  /** The block a REQ_PAGES would refer to now (null before any REQ_PAGES_ID). */
  get lastRequestedBlock(): string | null {
    return this.lastBlock;
  }

  /** Absolute offset of the next byte the decoder expects. */
  get offset(): number {
    return this.consumedBytes;
  }

  /** True after SHUT, the last message of a return path. */
  get shutDown(): boolean {
    return this.state === State.Shut;
  }

  push(chunk: Uint8Array): void {
    if (this.failure !== null) throw this.failure;
    try {
      this.consume(chunk);
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /** Declares end of input; a partially received message is an error. */
  finish(): void {
    if (this.failure !== null) throw this.failure;
    if (this.state === State.Header && this.haveBytes === 0) return;
    if (this.state === State.Shut) return;
    this.failure = new FormatError(MIG_ERR_RP_TRUNCATED, `return path ended inside a message (${this.needBytes - this.haveBytes} byte(s) missing)`, this.consumedBytes);
    throw this.failure;
  }

  private consume(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === State.Shut) {
        throw new FormatError(MIG_ERR_RP_AFTER_SHUT, 'data after SHUT on the return path', this.consumedBytes);
      }
      const take = Math.min(this.needBytes - this.haveBytes, chunk.length - i);
      const target = this.state === State.BitmapData ? this.bitmap : this.scratch;
      target.set(chunk.subarray(i, i + take), this.haveBytes);
      this.haveBytes += take;
      this.consumedBytes += take;
      i += take;
      if (this.haveBytes === this.needBytes) this.complete();
    }
  }

  private expect(state: State, needBytes: number): void {
    this.state = state;
    this.needBytes = needBytes;
    this.haveBytes = 0;
  }

  /** Handles a state whose bytes are all present; `consumedBytes` is just past them. */
  private complete(): void {
    const start = this.consumedBytes - this.needBytes;
    switch (this.state) {
      case State.Header: {
        const type = this.scratchView.getUint16(0);
        const length = this.scratchView.getUint16(2);
        this.messageOffset = start;
        this.messageType = type;
        const name = TYPE_NAMES[type];
        if (name === undefined) {
          throw new FormatError(MIG_ERR_RP_UNKNOWN_TYPE, `invalid return-path message 0x${hex4(type)} length 0x${hex4(length)}`, start);
        }
        if (length > RP_MAX_MESSAGE_LENGTH_BYTES) {
          throw new FormatError(MIG_ERR_RP_TOO_LONG, `return-path message ${name} length ${length} exceeds ${RP_MAX_MESSAGE_LENGTH_BYTES}`, start + 2);
        }
        const fixed = FIXED_LENGTH_BYTES[type];
        if (fixed !== undefined && length !== fixed) {
          throw new FormatError(MIG_ERR_RP_BAD_LENGTH, `'${name}' message (0x${hex4(type)}) with incorrect length ${length} expecting ${fixed}`, start + 2);
        }
        if (length === 0) {
          // Only the variable-length types reach here with length 0; each needs a name byte.
          throw new FormatError(MIG_ERR_RP_BAD_LENGTH, `'${name}' message too short: length 0`, start + 2);
        }
        this.expect(State.Payload, length);
        return;
      }
      case State.Payload:
        this.payload(start, this.needBytes);
        return;
      case State.BitmapSize: {
        const high = this.scratchView.getUint32(0);
        const low = this.scratchView.getUint32(4);
        const sizeBytes = high * TWO_32 + low;
        if (high > 0x1fffff || sizeBytes > this.maxBitmapBytes) {
          throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bitmap of '${this.bitmapBlock}' too large: 0x${high.toString(16)}${hex8(low)} byte(s), limit ${this.maxBitmapBytes}`, start);
        }
        if (sizeBytes % 8 !== 0) {
          throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bitmap size ${sizeBytes} of '${this.bitmapBlock}' is not a multiple of 8`, start);
        }
        const bits = this.bitmapBitsForBlock?.(this.bitmapBlock);
        if (bits !== undefined && sizeBytes !== recvBitmapSizeBytes(bits)) {
          throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bitmap size mismatch for '${this.bitmapBlock}': ${sizeBytes} byte(s) for ${bits} page(s)`, start);
        }
        this.bitmap = new Uint8Array(sizeBytes);
        if (sizeBytes === 0) this.expect(State.BitmapEnd, 8);
        else this.expect(State.BitmapData, sizeBytes);
        return;
      }
      case State.BitmapData:
        this.expect(State.BitmapEnd, 8);
        return;
      case State.BitmapEnd: {
        const high = this.scratchView.getUint32(0);
        const low = this.scratchView.getUint32(4);
        if (high !== RECV_BITMAP_END_MARK_HIGH || low !== RECV_BITMAP_END_MARK_LOW) {
          throw new FormatError(MIG_ERR_RP_BITMAP_END_MARK, `bitmap end mark of '${this.bitmapBlock}' incorrect: 0x${hex8(high)}${hex8(low)}`, start);
        }
        const bitmap = this.bitmap;
        this.bitmap = new Uint8Array(0);
        this.expect(State.Header, 4);
        this.sink({ kind: 'recv-bitmap', blockName: this.bitmapBlock, bitmap }, this.messageOffset);
        return;
      }
      case State.Shut:
        return;
    }
  }

  private payload(start: number, length: number): void {
    const v = this.scratchView;
    const type = this.messageType;
    const at = this.messageOffset;
    switch (type) {
      case RP_MSG_SHUT:
        this.state = State.Shut;
        this.sink({ kind: 'shut', status: v.getUint32(0) }, at);
        return;
      case RP_MSG_PONG:
        this.expect(State.Header, 4);
        this.sink({ kind: 'pong', value: v.getUint32(0) }, at);
        return;
      case RP_MSG_RESUME_ACK:
        this.expect(State.Header, 4);
        this.sink({ kind: 'resume-ack', value: v.getUint32(0) }, at);
        return;
      case RP_MSG_REQ_PAGES:
      case RP_MSG_REQ_PAGES_ID: {
        if (type === RP_MSG_REQ_PAGES_ID && length < 13) {
          throw new FormatError(MIG_ERR_RP_BAD_LENGTH, `REQ_PAGES_ID with length ${length}, shorter than 13`, at + 2);
        }
        const high = v.getUint32(0);
        if (high > 0x1fffff) {
          throw new FormatError(MIG_ERR_RP_BAD_OFFSET, `page request start 0x${hex8(high)}${hex8(v.getUint32(4))} beyond 2^53`, start);
        }
        const startBytes = high * TWO_32 + v.getUint32(4);
        const lengthBytes = v.getUint32(8);
        if (type === RP_MSG_REQ_PAGES) {
          if (this.lastBlock === null) {
            throw new FormatError(MIG_ERR_RP_NO_PREVIOUS_BLOCK, 'REQ_PAGES before any REQ_PAGES_ID named a block', at);
          }
          this.expect(State.Header, 4);
          this.sink({ kind: 'req-pages', startBytes, lengthBytes, blockName: this.lastBlock }, at);
          return;
        }
        const nameLength = this.scratch[12];
        if (length !== 13 + nameLength) {
          throw new FormatError(MIG_ERR_RP_BAD_LENGTH, `REQ_PAGES_ID with length ${length} expecting ${13 + nameLength}`, at + 2);
        }
        const blockName = latin1Of(this.scratch, 13, nameLength);
        this.lastBlock = blockName;
        this.expect(State.Header, 4);
        this.sink({ kind: 'req-pages-id', startBytes, lengthBytes, blockName }, at);
        return;
      }
      case RP_MSG_RECV_BITMAP: {
        const nameLength = this.scratch[0];
        if (length !== 1 + nameLength) {
          throw new FormatError(MIG_ERR_RP_BAD_LENGTH, `RECV_BITMAP with length ${length} expecting ${1 + nameLength}`, at + 2);
        }
        this.bitmapBlock = latin1Of(this.scratch, 1, nameLength);
        this.expect(State.BitmapSize, 8);
        return;
      }
    }
  }
}

/** Decodes a complete return-path byte stream (one-shot convenience over the push decoder). */
export function decodeReturnPath(bytes: Uint8Array, options: ReturnPathDecoderOptions = {}): RpMessage[] {
  const out: RpMessage[] = [];
  const decoder = new ReturnPathDecoder((m) => out.push(m), options);
  decoder.push(bytes);
  decoder.finish();
  return out;
}

function latin1Of(bytes: Uint8Array, start: number, length: number): string {
  let s = '';
  for (let i = start; i < start + length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, '0');
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, '0');
}
