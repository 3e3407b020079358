/**
 * An encoder for QEMU 7.2's main migration stream: the writing counterpart of
 * StreamDecoder. It appends records into large chunk buffers (1 MiB by default, managed by
 * ChunkWriter) and hands each full chunk to `onChunk`; the chunk then belongs to the
 * receiver. RAM pages follow QEMU's CONTINUE rule: a record names its block only when the block differs from the one
 * named last, and the memory of the last block is forgotten at each MEM_SIZE setup and on
 * `resetLastBlock()` (QEMU does that at the switch to postcopy).
 *
 * `ramPages` is the hot path: it copies a run of non-zero pages with one `set` and then
 * spreads them apart in place with `copyWithin` to make room for the record headers, so it
 * allocates nothing per page. `ramZeroPage`, `ramPageFrom` and the version-mode records are the
 * per-page hot path of the migration engine: a CONTINUE record header is written with two
 * DataView stores and the page bytes come straight from the page store into the chunk.
 *
 * Version payload mode (the simulator's compact pages, see ram-records.ts): `ramPageVersion`
 * writes an 8-byte version instead of 4096 bytes, and `ramPageVersionExact` the exact-page mark
 * and the real bytes. `payloadAdjustBytes` keeps how many bytes a real (bytes-mode) stream
 * would have more than this one, so callers can count "wire" bytes as a real stream would.
 */
import { ChunkWriter, type ChunkAllocator } from './chunk-writer.ts';
import { isZeroRange, zeroPagesAt } from '../lib/zero-range.ts';
import type { Command, Configuration, RamBlockInfo } from './stream-types.ts';
import {
  CONFIG_SUBSECTION_CAPABILITIES,
  CONFIG_SUBSECTION_PAGE_BITS,
  CONFIG_SUBSECTION_UUID,
  CONFIG_UUID_BYTES,
  DEFAULT_TARGET_PAGE_BITS,
  GLOBALSTATE_RUNSTATE_BYTES,
  MIG_CMD_ENABLE_COLO,
  MIG_CMD_OPEN_RETURN_PATH,
  MIG_CMD_PACKAGED,
  MIG_CMD_PING,
  MIG_CMD_POSTCOPY_ADVISE,
  MIG_CMD_POSTCOPY_LISTEN,
  MIG_CMD_POSTCOPY_RAM_DISCARD,
  MIG_CMD_POSTCOPY_RESUME,
  MIG_CMD_POSTCOPY_RUN,
  MIG_CMD_RECV_BITMAP,
  POSTCOPY_RAM_DISCARD_MAX_RANGES,
  POSTCOPY_RAM_DISCARD_VERSION,
  QEMU_VM_COMMAND,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SECTION_PART,
  QEMU_VM_SECTION_START,
  QEMU_VM_SUBSECTION,
  QEMU_VM_VMDESCRIPTION,
  RAM_SAVE_FLAG_CONTINUE,
  RAM_SAVE_FLAG_EOS,
  RAM_SAVE_FLAG_MEM_SIZE,
  RAM_SAVE_FLAG_PAGE,
  RAM_SAVE_FLAG_ZERO,
} from './constants.ts';
import type { GlobalState, TimerState } from './sections.ts';
import { VERSION_PAYLOAD_BYTES, VERSION_PAYLOAD_EXACT_MARK } from './ram-records.ts';

const TWO_32 = 4294967296;
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

/** Where page-copying records read a page's bytes; memory's PageStore matches it structurally. */
export interface PageBytesSource {
  /** Copies page `pageIndex` (a whole target page) into out[outOffset ..]. */
  copyPageOut(pageIndex: number, out: Uint8Array, outOffset?: number): void;
}

/** Counts of what `ramPages` wrote. */
export interface RamPagesResult {
  readonly zeroPages: number;
  readonly normalPages: number;
}

export class StreamEncoder extends ChunkWriter {
  readonly pageSizeBytes: number;
  private readonly pageViews: boolean;
  private lastBlockName: string | null = null;
  /** Bytes a bytes-mode stream would hold beyond what was written (version-mode PAGE records). */
  private payloadAdjust = 0;

  constructor(options: StreamEncoderOptions) {
    const pageSizeBytes = 2 ** (options.targetPageBits ?? DEFAULT_TARGET_PAGE_BITS);
    super(options.onChunk, Math.max(options.chunkSizeBytes ?? DEFAULT_ENCODER_CHUNK_BYTES, 2 * pageSizeBytes + 512), options.allocChunk);
    this.pageSizeBytes = pageSizeBytes;
    this.pageViews = options.pageViews ?? false;
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

  // --- file structure -------------------------------------------------------------------

  /** be32 magic "QEVM", be32 version 3. */
  header(): void {
    this.be32(QEMU_VM_FILE_MAGIC).be32(QEMU_VM_FILE_VERSION);
  }

  /** CONFIGURATION: be32 name length, name, then the subsections that are set. */
  configuration(configuration: Configuration): void {
    this.u8(QEMU_VM_CONFIGURATION).be32(configuration.machine.length).latin1(configuration.machine);
    if (configuration.targetPageBits !== undefined) {
      this.subsectionHeader(CONFIG_SUBSECTION_PAGE_BITS).be32(configuration.targetPageBits);
    }
    if (configuration.capabilities !== undefined) {
      this.subsectionHeader(CONFIG_SUBSECTION_CAPABILITIES).be32(configuration.capabilities.length);
      for (const name of configuration.capabilities) this.cstr8(name);
    }
    if (configuration.uuid !== undefined) {
      if (configuration.uuid.length !== CONFIG_UUID_BYTES) this.fail(`uuid must be ${CONFIG_UUID_BYTES} bytes`);
      this.subsectionHeader(CONFIG_SUBSECTION_UUID).bytes(configuration.uuid);
    }
  }

  private subsectionHeader(name: string): this {
    return this.u8(QEMU_VM_SUBSECTION).cstr8(name).be32(1);
  }

  sectionStart(sectionId: number, idstr: string, instanceId: number, versionId: number): void {
    this.u8(QEMU_VM_SECTION_START).be32(sectionId).cstr8(idstr).be32(instanceId).be32(versionId);
  }

  sectionFull(sectionId: number, idstr: string, instanceId: number, versionId: number): void {
    this.u8(QEMU_VM_SECTION_FULL).be32(sectionId).cstr8(idstr).be32(instanceId).be32(versionId);
  }

  sectionPart(sectionId: number): void {
    this.u8(QEMU_VM_SECTION_PART).be32(sectionId);
  }

  sectionEnd(sectionId: number): void {
    this.u8(QEMU_VM_SECTION_END).be32(sectionId);
  }

  /** u8 0x7e, be32 section id. */
  footer(sectionId: number): void {
    this.u8(QEMU_VM_SECTION_FOOTER).be32(sectionId);
  }

  eof(): void {
    this.u8(QEMU_VM_EOF);
  }

  /** u8 0x06, be32 length, the JSON as UTF-8. */
  vmdescription(json: string): void {
    const text = new TextEncoder().encode(json);
    this.u8(QEMU_VM_VMDESCRIPTION).be32(text.length).bytes(text);
  }

  // --- device payloads ------------------------------------------------------------------

  /** The `timer` v2 payload: int64 cpu_ticks_offset, 8 unused bytes, int64 cpu_clock_offset. */
  timerPayload(state: TimerState): void {
    this.be64Signed(state.cpu_ticks_offset).fill(0, 8).be64Signed(state.cpu_clock_offset);
  }

  /** The `globalstate` v1 payload: be32 strlen + 1, the name NUL-padded to 100 bytes. */
  globalstatePayload(state: Pick<GlobalState, 'runstate'>): void {
    const name = state.runstate;
    if (name.length >= GLOBALSTATE_RUNSTATE_BYTES) this.fail(`runstate '${name}' is longer than ${GLOBALSTATE_RUNSTATE_BYTES - 1} bytes`);
    this.be32(name.length + 1).latin1(name).fill(0, GLOBALSTATE_RUNSTATE_BYTES - name.length);
  }

  /** A whole FULL `timer` section (version 2) with footer. */
  timerSection(sectionId: number, state: TimerState): void {
    this.sectionFull(sectionId, 'timer', 0, 2);
    this.timerPayload(state);
    this.footer(sectionId);
  }

  /** A whole FULL `globalstate` section (version 1) with footer. */
  globalstateSection(sectionId: number, runstate: string): void {
    this.sectionFull(sectionId, 'globalstate', 0, 1);
    this.globalstatePayload({ runstate });
    this.footer(sectionId);
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

  /** The record word and, when the block changed, its name; then room for `payloadBytes`. */
  private pageHeader(blockName: string, offsetBytes: number, flag: number, payloadBytes: number): void {
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

  // --- commands ---------------------------------------------------------------------------

  /** Any command of facts §3.1; PACKAGED writes only the command (use `packaged` for the data). */
  command(command: Command): void {
    switch (command.kind) {
      case 'open-return-path':
        return this.commandHeader(MIG_CMD_OPEN_RETURN_PATH, 0);
      case 'ping':
        this.commandHeader(MIG_CMD_PING, 4);
        this.be32(command.value);
        return;
      case 'postcopy-advise':
        this.commandHeader(MIG_CMD_POSTCOPY_ADVISE, 16);
        this.be64(command.pageSizeSummary).be64(command.targetPageSize);
        return;
      case 'postcopy-advise-empty':
        return this.commandHeader(MIG_CMD_POSTCOPY_ADVISE, 0);
      case 'postcopy-listen':
        return this.commandHeader(MIG_CMD_POSTCOPY_LISTEN, 0);
      case 'postcopy-run':
        return this.commandHeader(MIG_CMD_POSTCOPY_RUN, 0);
      case 'postcopy-ram-discard': {
        if (command.ranges.length > POSTCOPY_RAM_DISCARD_MAX_RANGES || command.ranges.length === 0) {
          this.fail(`POSTCOPY_RAM_DISCARD takes 1..${POSTCOPY_RAM_DISCARD_MAX_RANGES} ranges, got ${command.ranges.length}`);
        }
        if (command.blockName.length === 0 || command.blockName.length > 255) this.fail('POSTCOPY_RAM_DISCARD block name must be 1..255 bytes');
        this.commandHeader(MIG_CMD_POSTCOPY_RAM_DISCARD, 3 + command.blockName.length + 16 * command.ranges.length);
        this.u8(POSTCOPY_RAM_DISCARD_VERSION).cstr8(command.blockName).u8(0);
        for (const range of command.ranges) this.be64(range.startBytes).be64(range.lengthBytes);
        return;
      }
      case 'packaged':
        if (command.lengthBytes > 0xffffffff || command.lengthBytes < 0) this.fail(`PACKAGED length ${command.lengthBytes} does not fit be32`);
        this.commandHeader(MIG_CMD_PACKAGED, 4);
        this.be32(command.lengthBytes);
        return;
      case 'enable-colo':
        return this.commandHeader(MIG_CMD_ENABLE_COLO, 0);
      case 'postcopy-resume':
        return this.commandHeader(MIG_CMD_POSTCOPY_RESUME, 0);
      case 'recv-bitmap':
        this.commandHeader(MIG_CMD_RECV_BITMAP, 1 + command.blockName.length);
        this.cstr8(command.blockName);
        return;
    }
  }

  /** PACKAGED(L) followed by the L bytes of a nested stream (see encodeNestedStream). */
  packaged(nested: Uint8Array): void {
    this.command({ kind: 'packaged', lengthBytes: nested.length });
    this.bytes(nested);
  }

  private commandHeader(cmd: number, lengthBytes: number): void {
    this.u8(QEMU_VM_COMMAND).be16(cmd).be16(lengthBytes);
  }

}

/** True when the page at `ram[at, at + n)` is all zero; compares 32-bit words where aligned. */
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
