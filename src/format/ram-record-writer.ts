/**
 * The RAM records of QEMU 7.2's main migration stream (the `ram` section's payload), written
 * on top of SectionWriter; StreamEncoder adds `ramPages`. RAM pages follow QEMU's CONTINUE
 * rule: a record names its block only when the block differs from the one named last, and
 * the memory of the last block is forgotten at each MEM_SIZE setup and on `resetLastBlock()`
 * (QEMU does that at the switch to postcopy).
 *
 * `ramZeroPage`, `ramPageFrom` and the version-mode records are the per-page hot path of the
 * migration engine: a CONTINUE record header is written with two DataView stores and the page
 * bytes come straight from the page store into the chunk.
 *
 * Version payload mode (the simulator's compact pages, see ram-records.ts): `ramPageVersion`
 * writes an 8-byte version instead of 4096 bytes, and `ramPageVersionExact` the exact-page mark
 * and the real bytes. `payloadAdjustBytes` keeps how many bytes a real (bytes-mode) stream
 * would have more than this one, so callers can count "wire" bytes as a real stream would.
 */
import type { ChunkAllocator } from './chunk-writer.ts';
import type { RamBlockInfo } from './stream-types.ts';
import { RAM_SAVE_FLAG_CONTINUE, RAM_SAVE_FLAG_EOS, RAM_SAVE_FLAG_MEM_SIZE, RAM_SAVE_FLAG_PAGE, RAM_SAVE_FLAG_ZERO } from './constants.ts';
import { VERSION_PAYLOAD_BYTES, VERSION_PAYLOAD_EXACT_MARK } from './ram-records.ts';
import { SectionWriter } from './section-writer.ts';

export const TWO_32 = 4294967296;

/** Where page-copying records read a page's bytes; memory's PageStore matches it structurally. */
export interface PageBytesSource {
  /** Copies page `pageIndex` (a whole target page) into out[outOffset ..]. */
  copyPageOut(pageIndex: number, out: Uint8Array, outOffset?: number): void;
}

export class RamRecordWriter extends SectionWriter {
  readonly pageSizeBytes: number;
  protected lastBlockName: string | null = null;
  /** Bytes a bytes-mode stream would hold beyond what was written (version-mode PAGE records). */
  private payloadAdjust = 0;

  constructor(onChunk: (chunk: Uint8Array) => void, chunkSizeBytes: number, pageSizeBytes: number, allocChunk?: ChunkAllocator) {
    super(onChunk, chunkSizeBytes, allocChunk);
    this.pageSizeBytes = pageSizeBytes;
  }

  /**
   * How many bytes a real (bytes-mode) stream would hold beyond what this encoder wrote:
   * +4088 per version PAGE record, -8 per exact-page record of version mode, 0 otherwise.
   */
  get payloadAdjustBytes(): number {
    return this.payloadAdjust;
  }

  /** `offsetBytes` as a real stream would count it (offsetBytes + payloadAdjustBytes). */
  get wireOffsetBytes(): number {
    return this.offsetBytes + this.payloadAdjust;
  }

  /**
   * Counts `bytes` written on other connections (multifd channels) in `wireOffsetBytes`, as
   * QEMU 7.2 charges multifd packets to the main file's rate limit.
   */
  addExternalWireBytes(bytes: number): void {
    this.payloadAdjust += bytes;
  }

  // --- RAM --------------------------------------------------------------------------------

  /**
   * The setup record: be64 total | MEM_SIZE, then per block cstr8 name, be64 used length and
   * the optional be64 page size / GPA when the block info carries them. Returns the total.
   */
  ramMemSize(blocks: readonly RamBlockInfo[]): number {
    let totalBytes = 0;
    for (const b of blocks) totalBytes += b.usedLengthBytes;
    this.ramWord(totalBytes, RAM_SAVE_FLAG_MEM_SIZE);
    for (const b of blocks) {
      this.cstr8(b.name).be64(b.usedLengthBytes);
      if (b.pageSizeBytes !== undefined) this.be64(b.pageSizeBytes);
      if (b.gpa !== undefined) this.be64(b.gpa);
    }
    this.lastBlockName = null;
    return totalBytes;
  }

  /** be64 EOS: ends every RAM chunk. */
  ramEos(): void {
    this.ramWord(0, RAM_SAVE_FLAG_EOS);
  }

  /** Makes the next page record name its block (QEMU does this at the switch to postcopy). */
  resetLastBlock(): void {
    this.lastBlockName = null;
  }

  /** One PAGE record with the page's bytes. */
  ramPage(blockName: string, offsetBytes: number, data: Uint8Array): void {
    if (data.length !== this.pageSizeBytes) this.fail(`a page is ${this.pageSizeBytes} bytes, got ${data.length}`);
    this.pageHeader(blockName, offsetBytes, RAM_SAVE_FLAG_PAGE, this.pageSizeBytes);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  /** One ZERO record (QEMU always sends fill 0). */
  ramZero(blockName: string, offsetBytes: number, fill = 0): void {
    if (!Number.isInteger(fill) || fill < 0 || fill > 255) this.fail(`fill byte ${fill} is not a byte`);
    this.pageHeader(blockName, offsetBytes, RAM_SAVE_FLAG_ZERO, 1);
    this.buf[this.pos++] = fill;
  }

  /** ZERO record (fill 0) for page `pageInBlock` of `blockName`: the hot-path form of ramZero. */
  ramZeroPage(blockName: string, pageInBlock: number): void {
    this.pageWord(blockName, pageInBlock, RAM_SAVE_FLAG_ZERO, 1);
    this.buf[this.pos++] = 0;
  }

  /**
   * ZERO records (fill 0) for the consecutive pages [firstPageInBlock, firstPageInBlock + count)
   * of `blockName`: the same bytes as `count` ramZeroPage calls, written in a tight loop.
   */
  ramZeroRun(blockName: string, firstPageInBlock: number, count: number): void {
    if (count <= 0) return;
    const endPage = firstPageInBlock + count;
    if (endPage > TWO_32 || !Number.isInteger(endPage)) this.fail(`page run ${firstPageInBlock}+${count} is outside 2^32 pages`);
    this.ramZeroPage(blockName, firstPageInBlock);
    const recordBytes = 9;
    const pageBits = Math.log2(this.pageSizeBytes);
    const flags = RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_CONTINUE;
    let page = firstPageInBlock + 1;
    while (page < endPage) {
      const room = Math.floor((this.buf.length - this.pos) / recordBytes);
      if (room === 0) {
        this.flush();
        continue;
      }
      const stop = Math.min(endPage, page + room);
      const view = this.view;
      const buf = this.buf;
      let pos = this.pos;
      for (; page < stop; page++) {
        // offset = page << pageBits, split into be32 halves without leaving integer arithmetic.
        view.setUint32(pos, page >>> (32 - pageBits));
        view.setUint32(pos + 4, ((page << pageBits) | flags) >>> 0);
        buf[pos + 8] = 0;
        pos += recordBytes;
      }
      this.pos = pos;
    }
  }

  /** PAGE record for page `pageInBlock` whose bytes `source` copies straight into the chunk. */
  ramPageFrom(blockName: string, pageInBlock: number, source: PageBytesSource, pageIndex: number): void {
    const pageBytes = this.pageSizeBytes;
    this.pageWord(blockName, pageInBlock, RAM_SAVE_FLAG_PAGE, pageBytes);
    source.copyPageOut(pageIndex, this.buf, this.pos);
    this.pos += pageBytes;
  }

  /** Version mode: PAGE record whose payload is `version` as 8 bytes little-endian. */
  ramPageVersion(blockName: string, pageInBlock: number, version: number): void {
    if (!(version >= 0 && Number.isSafeInteger(version))) this.fail(`page version ${version} is not a non-negative safe integer`);
    this.pageWord(blockName, pageInBlock, RAM_SAVE_FLAG_PAGE, VERSION_PAYLOAD_BYTES);
    this.view.setUint32(this.pos, version >>> 0, true);
    this.view.setUint32(this.pos + 4, Math.floor(version / TWO_32), true);
    this.pos += VERSION_PAYLOAD_BYTES;
    this.payloadAdjust += this.pageSizeBytes - VERSION_PAYLOAD_BYTES;
  }

  /**
   * Version mode: PAGE records for the consecutive pages [firstPageInBlock, + count) of
   * `blockName` whose versions are versions[from .. from + count) (32-bit, non-zero): the same
   * bytes as `count` ramPageVersion calls, written in a tight loop.
   */
  ramPageVersionRun(blockName: string, firstPageInBlock: number, versions: Uint16Array | Uint32Array, from: number, count: number): void {
    if (count <= 0) return;
    const endPage = firstPageInBlock + count;
    if (endPage > TWO_32 || !Number.isInteger(endPage)) this.fail(`page run ${firstPageInBlock}+${count} is outside 2^32 pages`);
    this.ramPageVersion(blockName, firstPageInBlock, versions[from]);
    const recordBytes = 8 + VERSION_PAYLOAD_BYTES;
    const pageBits = Math.log2(this.pageSizeBytes);
    const flags = RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE;
    let page = firstPageInBlock + 1;
    let at = from + 1;
    while (page < endPage) {
      const room = Math.floor((this.buf.length - this.pos) / recordBytes);
      if (room === 0) {
        this.flush();
        continue;
      }
      const stop = Math.min(endPage, page + room);
      const view = this.view;
      let pos = this.pos;
      for (; page < stop; page++, at++) {
        view.setUint32(pos, page >>> (32 - pageBits));
        view.setUint32(pos + 4, ((page << pageBits) | flags) >>> 0);
        view.setUint32(pos + 8, versions[at], true);
        view.setUint32(pos + 12, 0);
        pos += recordBytes;
      }
      this.payloadAdjust += ((pos - this.pos) / recordBytes) * (this.pageSizeBytes - VERSION_PAYLOAD_BYTES);
      this.pos = pos;
    }
  }

  /** Version mode: PAGE record of a page no version represents: the exact mark, then its bytes. */
  ramPageVersionExact(blockName: string, pageInBlock: number, source: PageBytesSource, pageIndex: number): void {
    const pageBytes = this.pageSizeBytes;
    this.pageWord(blockName, pageInBlock, RAM_SAVE_FLAG_PAGE, VERSION_PAYLOAD_BYTES + pageBytes);
    this.view.setUint32(this.pos, VERSION_PAYLOAD_EXACT_MARK);
    this.view.setUint32(this.pos + 4, VERSION_PAYLOAD_EXACT_MARK);
    source.copyPageOut(pageIndex, this.buf, this.pos + VERSION_PAYLOAD_BYTES);
    this.pos += VERSION_PAYLOAD_BYTES + pageBytes;
    this.payloadAdjust -= VERSION_PAYLOAD_BYTES;
  }

  /**
   * The record word of a page record, leaving room for `payloadBytes` after it. A CONTINUE
   * record (same block as the last one named) takes the fast path; anything else goes through
   * pageHeader with its checks.
   */
  private pageWord(blockName: string, pageInBlock: number, flag: number, payloadBytes: number): void {
    if (blockName !== this.lastBlockName || pageInBlock >>> 0 !== pageInBlock) {
      this.pageHeader(blockName, pageInBlock * this.pageSizeBytes, flag, payloadBytes);
      return;
    }
    if (this.buf.length - this.pos < 8 + payloadBytes) this.ensure(8 + payloadBytes);
    const offsetBytes = pageInBlock * this.pageSizeBytes;
    this.view.setUint32(this.pos, Math.floor(offsetBytes / TWO_32));
    this.view.setUint32(this.pos + 4, ((offsetBytes >>> 0) | flag | RAM_SAVE_FLAG_CONTINUE) >>> 0);
    this.pos += 8;
  }

  /** The record word and, when the block changed, its name; then room for `payloadBytes`. */
  protected pageHeader(blockName: string, offsetBytes: number, flag: number, payloadBytes: number): void {
    if (offsetBytes % this.pageSizeBytes !== 0 || offsetBytes < 0 || !Number.isSafeInteger(offsetBytes)) {
      this.fail(`page offset ${offsetBytes} is not a multiple of ${this.pageSizeBytes}`);
    }
    const named = blockName !== this.lastBlockName;
    if (named && blockName.length > 255) this.fail(`block name longer than 255 bytes: ${blockName.length}`);
    this.ensure(8 + (named ? 1 + blockName.length : 0) + payloadBytes);
    this.ramWord(offsetBytes, named ? flag : flag | RAM_SAVE_FLAG_CONTINUE);
    if (named) {
      this.cstr8(blockName);
      this.lastBlockName = blockName;
    }
  }

  private ramWord(valueBytes: number, flags: number): void {
    this.ensure(8);
    this.view.setUint32(this.pos, Math.floor(valueBytes / TWO_32));
    this.view.setUint32(this.pos + 4, ((valueBytes >>> 0) | flags) >>> 0);
    this.pos += 8;
  }
}
