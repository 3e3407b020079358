/**
 * An encoder for QEMU 7.2's main migration stream: the writing counterpart of
 * StreamDecoder. It appends records into large chunk buffers (1 MiB by default, managed by
 * ChunkWriter) and hands each full chunk to `onChunk`; the chunk then belongs to the
 * receiver. The framing records are SectionWriter's (section-writer.ts), the RAM records
 * RamRecordWriter's (ram-record-writer.ts); this module adds the bulk `ramPages` path.
 *
 * `ramPages` is the hot path: it copies each non-zero page straight from RAM into its record
 * (or, with `pageViews`, hands the page over as a view) and writes runs of zero pages as
 * 9-byte ZERO records in a tight loop; without `pageViews` it allocates nothing per page.
 */
import type { ChunkAllocator } from './chunk-writer.ts';
import { isZeroRange, zeroPagesAt } from '../lib/zero-range.ts';
import { DEFAULT_TARGET_PAGE_BITS, RAM_SAVE_FLAG_CONTINUE, RAM_SAVE_FLAG_PAGE } from './constants.ts';
import { RamRecordWriter, TWO_32 } from './ram-record-writer.ts';

export type { PageBytesSource } from './ram-record-writer.ts';

export const DEFAULT_ENCODER_CHUNK_BYTES = 1024 * 1024;

export interface StreamEncoderOptions {
  /** Receives every finished chunk, in order; the encoder never writes to it again. */
  readonly onChunk: (chunk: Uint8Array) => void;
  /** Size of the chunk buffers (default 1 MiB); a record larger than this gets a larger one. */
  readonly chunkSizeBytes?: number;
  /** Target page bits (12 on x86_64). */
  readonly targetPageBits?: number;
  /** Supplies chunk buffers (ChunkWriter's allocChunk; default fresh arrays). */
  readonly allocChunk?: ChunkAllocator;
  /**
   * `ramPages` hands each non-zero page to `onChunk` as a view of the caller's RAM, between
   * the record headers, instead of copying it into a chunk (zero-copy: a real shell writes the
   * pieces with one writev). The bytes that go out are the page as it is when the receiver
   * reads the view; a source whose guest runs must therefore send a page written meanwhile
   * again (its dirty log does). Default false.
   */
  readonly pageViews?: boolean;
}

/** Counts of what `ramPages` wrote. */
export interface RamPagesResult {
  readonly zeroPages: number;
  readonly normalPages: number;
}

export class StreamEncoder extends RamRecordWriter {
  private readonly pageViews: boolean;

  constructor(options: StreamEncoderOptions) {
    const pageSizeBytes = 2 ** (options.targetPageBits ?? DEFAULT_TARGET_PAGE_BITS);
    super(options.onChunk, Math.max(options.chunkSizeBytes ?? DEFAULT_ENCODER_CHUNK_BYTES, 2 * pageSizeBytes + 512), pageSizeBytes, options.allocChunk);
    this.pageViews = options.pageViews ?? false;
  }

  /**
   * PAGE or ZERO records for every page of `ram[startBytes, startBytes + lengthBytes)`, which
   * holds the block from offset `blockOffsetBytes` on: all-zero pages become ZERO (fill 0),
   * the others PAGE, exactly as QEMU chooses.
   */
  ramPages(blockName: string, ram: Uint8Array, blockOffsetBytes = 0, startBytes = 0, lengthBytes = ram.length - startBytes): RamPagesResult {
    const pageBytes = this.pageSizeBytes;
    if (startBytes % pageBytes !== 0 || lengthBytes % pageBytes !== 0 || startBytes < 0 || startBytes + lengthBytes > ram.length) {
      this.fail(`page range ${startBytes}+${lengthBytes} is not whole pages of the ${ram.length}-byte buffer`);
    }
    const recordBytes = pageBytes + 8;
    const pageCount = lengthBytes / pageBytes;
    let zeroPages = 0;
    let i = 0;
    while (i < pageCount) {
      const at = startBytes + i * pageBytes;
      // Zero pages in runs: a few large native comparisons (lib/zero-range.ts), 9-byte records.
      const zeros = zeroPagesAt(ram, at, pageCount - i, pageBytes);
      if (zeros > 0) {
        this.ramZeroRun(blockName, (blockOffsetBytes + at) / pageBytes, zeros);
        zeroPages += zeros;
        i += zeros;
        continue;
      }
      if (this.pageViews) {
        do {
          this.pageViewRecord(blockName, ram, blockOffsetBytes, startBytes + i * pageBytes);
          i++;
        } while (i < pageCount && !isZeroPageAt(ram, startBytes + i * pageBytes, pageBytes));
        continue;
      }
      const nameBytes = blockName === this.lastBlockName ? 0 : 1 + blockName.length;
      if (this.roomBytes < recordBytes + nameBytes) this.flush();
      const fit = Math.max(1, Math.floor((this.roomBytes - nameBytes) / recordBytes));
      let j = i + 1;
      while (j < pageCount && j - i < fit && !isZeroPageAt(ram, startBytes + j * pageBytes, pageBytes)) j++;
      this.pageRun(blockName, ram, blockOffsetBytes, at, j - i);
      i = j;
    }
    return { zeroPages, normalPages: pageCount - zeroPages };
  }

  /** Writes `count` PAGE records for consecutive pages starting at `ram[at]`; they fit the chunk. */
  private pageRun(blockName: string, ram: Uint8Array, blockOffsetBytes: number, at: number, count: number): void {
    const pageBytes = this.pageSizeBytes;
    const recordBytes = pageBytes + 8;
    this.pageHeader(blockName, blockOffsetBytes + at, RAM_SAVE_FLAG_PAGE, pageBytes);
    const first = this.pos;
    const buf = this.buf;
    const view = this.view;
    // One copy per page, straight from RAM into its record.
    buf.set(ram.subarray(at, at + pageBytes), first);
    for (let m = 1; m < count; m++) {
      const dataAt = first + m * recordBytes;
      const offsetBytes = blockOffsetBytes + at + m * pageBytes;
      view.setUint32(dataAt - 8, Math.floor(offsetBytes / TWO_32));
      view.setUint32(dataAt - 4, (offsetBytes | (RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE)) >>> 0);
      buf.set(ram.subarray(at + m * pageBytes, at + (m + 1) * pageBytes), dataAt);
    }
    this.pos = first + count * recordBytes - 8;
  }

  /** Option pageViews: the PAGE record of the page at `ram[at]`, its bytes handed over as a view. */
  private pageViewRecord(blockName: string, ram: Uint8Array, blockOffsetBytes: number, at: number): void {
    const pageBytes = this.pageSizeBytes;
    this.pageHeader(blockName, blockOffsetBytes + at, RAM_SAVE_FLAG_PAGE, 0);
    this.passView(ram.subarray(at, at + pageBytes));
  }
}

/** True when the page at `ram[at]` is all zero; a non-zero first byte answers at once. */
function isZeroPageAt(ram: Uint8Array, at: number, pageBytes: number): boolean {
  return ram[at] === 0 && isZeroRange(ram, at, at + pageBytes);
}

/** Runs `build` on a fresh encoder and returns everything it wrote as one array. */
export function encodeToBytes(build: (encoder: StreamEncoder) => void, options: Omit<StreamEncoderOptions, 'onChunk'> = {}): Uint8Array {
  const chunks: Uint8Array[] = [];
  const encoder = new StreamEncoder({ ...options, onChunk: (c) => chunks.push(c) });
  build(encoder);
  encoder.flush();
  if (chunks.length === 1) return chunks[0];
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A nested stream for PACKAGED (no header): the records `build` writes. */
export function encodeNestedStream(build: (encoder: StreamEncoder) => void, options: Omit<StreamEncoderOptions, 'onChunk'> = {}): Uint8Array {
  return encodeToBytes(build, options);
}
