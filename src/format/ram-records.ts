/**
 * The RAM section (`ram`, version 4, facts §2): the MEM_SIZE block list of the setup chunk
 * and the PAGE / ZERO / EOS records of every chunk. `RamLoader` keeps what persists between
 * records and sections: the block list and the "last block" that CONTINUE refers to.
 *
 * Two paths read records. `fastRun` is the hot loop over a buffer: it handles consecutive
 * PAGE|CONTINUE and ZERO|CONTINUE records with plain DataView reads, hands page payloads to the
 * sink as subarray views, allocates nothing else, and stops at the first record it cannot
 * take whole. `readRecord` handles any single record through a ByteReader, with every check
 * and every error; the decoder calls it wherever the fast loop stopped.
 *
 * Page payload modes (engine-types.ts `PagePayloadMode`): in the default `bytes` mode a PAGE
 * record carries one target page, as QEMU writes it. In the simulator's compact `version` mode
 * it carries the page's version as 8 bytes little-endian instead (delivered through
 * `VersionPageSink.ramPageVersion`); a page no version represents carries the 8-byte mark
 * VERSION_PAYLOAD_EXACT_MARK followed by its 4096 real bytes (delivered through `ramPage`).
 * Record words, flags, block names and ZERO records are identical in both modes.
 */
import type { ByteReader } from '../lib/bytes.ts';
import type { RamBlockInfo, RamBlockRef, SectionHeader, StreamSink } from './stream-types.ts';
import type { StreamLimits } from './stream-errors.ts';
import type { DecodeContext } from './sections.ts';
import {
  RAM_FLAG_NAMES,
  RAM_SAVE_FLAG_COMPRESS_PAGE,
  RAM_SAVE_FLAG_CONTINUE,
  RAM_SAVE_FLAG_EOS,
  RAM_SAVE_FLAG_MEM_SIZE,
  RAM_SAVE_FLAG_PAGE,
  RAM_SAVE_FLAG_ZERO,
  RAM_SAVE_FLAGS_KNOWN,
} from './constants.ts';
import {
  MIG_ERR_INTEGER_RANGE,
  MIG_ERR_LIMIT,
  MIG_ERR_RAM_BLOCKS,
  MIG_ERR_RAM_FLAGS,
  MIG_ERR_RAM_MISALIGNED,
  MIG_ERR_RAM_NO_BLOCK,
  MIG_ERR_RAM_OFFSET,
  MIG_ERR_RAM_UNKNOWN_BLOCK,
  MIG_ERR_RAM_UNSUPPORTED,
} from './stream-errors.ts';

const TWO_32 = 4294967296;

/** How a PAGE record carries its payload (the same union as core's PagePayloadMode). */
export type RamPayloadMode = 'bytes' | 'version';
/** Bytes of a version-mode PAGE payload: the version as a little-endian u64. */
export const VERSION_PAYLOAD_BYTES = 8;
/**
 * Each 32-bit half of the version-mode mark that announces an exact page (the u64
 * 0xffffffffffffffff, which is never a version): 4096 real bytes follow the mark.
 */
export const VERSION_PAYLOAD_EXACT_MARK = 0xffffffff;
/** Versions above this high word would not be exact numbers; they are refused. */
const MAX_VERSION_HIGH_WORD = 0x1fffff;

/** A sink that also takes version-mode pages (required by a decoder in `version` mode). */
export interface VersionPageSink extends StreamSink {
  /** A version-mode PAGE record: the page at `offsetBytes` of `block` now has `version`. */
  ramPageVersion(block: RamBlockRef, offsetBytes: number, version: number): void;
}

/** True when `sink` can take version-mode pages. */
export function isVersionPageSink(sink: StreamSink): sink is VersionPageSink {
  return typeof (sink as Partial<VersionPageSink>).ramPageVersion === 'function';
}

/** The largest high word of a 64-bit value that still fits a safe integer. */
const MAX_SAFE_HIGH_WORD = 0x1fffff;
const PAGE_CONTINUE = RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE;
const ZERO_CONTINUE = RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_CONTINUE;

export interface RamLoaderConfig {
  readonly limits: StreamLimits;
  /** Capability postcopy-ram: MEM_SIZE entries of `hugePageBlocks` carry a be64 page size. */
  readonly postcopyRam: boolean;
  /** Blocks whose page size differs from the host page size (on the receiving side). */
  readonly hugePageBlocks: ReadonlySet<string>;
  /** Capability x-ignore-shared: every MEM_SIZE entry carries a be64 GPA. */
  ignoreShared: boolean;
  /** PAGE payloads: real pages (default) or the simulator's compact versions. */
  readonly pagePayloadMode?: RamPayloadMode;
}

function hex64(high: number, lowBytes: number): string {
  return ((BigInt(high) << 32n) | BigInt(lowBytes)).toString(16);
}

/**
 * The fill-0 ZERO|CONTINUE records of consecutive pages from `bytes[pos]` on, the first for
 * `offsetBytes`: returns the position after the last one (9 bytes each). Each record is
 * compared with the one expected, so the loop does no decoding (a run of a 1 TiB guest's
 * never-written pages is 268 M records).
 */
function zeroRunTail(bytes: Uint8Array, view: DataView, pos: number, end: number, offsetBytes: number, pageBytes: number, usedBytes: number): number {
  const records = Math.min(Math.floor((end - pos) / 9), Math.floor((usedBytes - offsetBytes) / pageBytes));
  if (!(records > 0)) return pos;
  // The expected offset as its two be32 words, stepped without floating-point division.
  let high = Math.floor(offsetBytes / TWO_32);
  let low = offsetBytes - high * TWO_32;
  const stop = pos + records * 9;
  while (pos < stop) {
    if (view.getUint32(pos + 4) !== ((low | ZERO_CONTINUE) >>> 0) || view.getUint32(pos) !== high || bytes[pos + 8] !== 0) break;
    pos += 9;
    low += pageBytes;
    if (low >= TWO_32) {
      low -= TWO_32;
      high++;
    }
  }
  return pos;
}

export class RamLoader {
  private blocks: readonly RamBlockRef[] = [];
  private byName = new Map<string, RamBlockRef>();
  /** The block CONTINUE refers to; null at stream start and after each setup. */
  private lastBlock: RamBlockRef | null = null;
  private pageSizeBytes: number;
  private flagMask: number;
  /** Set while the destination would be LISTENING/RUNNING: only ZERO, PAGE and EOS are allowed. */
  postcopyMode = false;
  /** True in `version` payload mode. */
  private readonly versionMode: boolean;
  /**
   * Set by `fastRun` when it stopped at a well-formed PAGE|CONTINUE or ZERO|CONTINUE record
   * that the buffer cuts short: how many more bytes that record needs (else 0). The decoder
   * then waits for them without re-reading the record through the throwing slow path.
   */
  fastShortNeedBytes = 0;
  /**
   * The run of consecutive fill-0 ZERO records the fast loops hold back from a sink that has
   * `ramZeroRun`: first offset and page count. Every exit of a fast loop hands it over (count 0).
   */
  private zeroRunStartBytes = 0;
  private zeroRunCount = 0;

  constructor(private readonly config: RamLoaderConfig, targetPageBits: number) {
    this.pageSizeBytes = 2 ** targetPageBits;
    this.flagMask = this.pageSizeBytes - 1;
    this.versionMode = config.pagePayloadMode === 'version';
  }

  get targetPageSizeBytes(): number {
    return this.pageSizeBytes;
  }

  setTargetPageBits(bits: number): void {
    this.pageSizeBytes = 2 ** bits;
    this.flagMask = this.pageSizeBytes - 1;
  }

  /** The CONFIGURATION announced x-ignore-shared: MEM_SIZE entries carry a GPA. */
  enableIgnoreShared(): void {
    this.config.ignoreShared = true;
  }

  /** A START (or FULL) of `ram` begins a new setup: forget the last block. */
  beginSetup(): void {
    this.lastBlock = null;
  }

  /** A new connection (postcopy recovery, a preempt channel): CONTINUE needs a named record first. */
  forgetLastBlock(): void {
    this.lastBlock = null;
  }

  /**
   * Takes the block list of another loader (the main stream's MEM_SIZE list) for a channel that
   * carries bare RAM records and never a MEM_SIZE list of its own (postcopy-preempt).
   */
  adoptBlocks(blocks: readonly RamBlockRef[]): void {
    this.blocks = blocks;
    this.byName = new Map(blocks.map((b) => [b.name, b]));
    this.lastBlock = null;
  }

  /**
   * Handles consecutive PAGE|CONTINUE and ZERO|CONTINUE records in `bytes[pos, end)` and returns
   * the position of the first record it did not take (incomplete, or anything else).
   */
  fastRun(bytes: Uint8Array, view: DataView, pos: number, end: number, sink: StreamSink): number {
    this.fastShortNeedBytes = 0;
    const block = this.lastBlock;
    if (block === null) return pos;
    if (this.versionMode) return this.fastRunVersions(bytes, view, pos, end, sink as VersionPageSink, block);
    const pageBytes = this.pageSizeBytes;
    const mask = this.flagMask;
    const usedBytes = block.usedLengthBytes;
    while (end - pos >= 8) {
      const high = view.getUint32(pos);
      const low = view.getUint32(pos + 4);
      const flags = low & mask;
      if (high > MAX_SAFE_HIGH_WORD) break;
      const offsetBytes = high * TWO_32 + (low - flags);
      if (flags === PAGE_CONTINUE) {
        const dataAt = pos + 8;
        if (offsetBytes + pageBytes > usedBytes) break;
        if (end - dataAt < pageBytes) {
          this.fastShortNeedBytes = pageBytes - (end - dataAt);
          break;
        }
        this.endZeroRun(sink, block);
        sink.ramPage(block, offsetBytes, bytes.subarray(dataAt, dataAt + pageBytes));
        pos = dataAt + pageBytes;
      } else if (flags === ZERO_CONTINUE) {
        const next = this.zeroContinue(bytes, view, pos, end, offsetBytes, sink, block);
        if (next < 0) break;
        pos = next;
      } else {
        break;
      }
    }
    this.endZeroRun(sink, block);
    return pos;
  }

  /**
   * The fast loop of `version` mode: PAGE|CONTINUE records with an 8-byte version payload and
   * ZERO|CONTINUE records; it stops at an exact-page mark, like at anything else unusual.
   * Consecutive fill-0 ZERO records go to `ramZeroRun` in one call when the sink has it.
   */
  private fastRunVersions(bytes: Uint8Array, view: DataView, pos: number, end: number, sink: VersionPageSink, block: RamBlockRef): number {
    const pageBytes = this.pageSizeBytes;
    const mask = this.flagMask;
    const usedBytes = block.usedLengthBytes;
    while (end - pos >= 8) {
      const high = view.getUint32(pos);
      const low = view.getUint32(pos + 4);
      const flags = low & mask;
      if (high > MAX_SAFE_HIGH_WORD) break;
      const offsetBytes = high * TWO_32 + (low - flags);
      if (flags === PAGE_CONTINUE) {
        if (end - pos < 8 + VERSION_PAYLOAD_BYTES || offsetBytes + pageBytes > usedBytes) break;
        const versionLow = view.getUint32(pos + 8, true);
        const versionHigh = view.getUint32(pos + 12, true);
        if (versionHigh > MAX_VERSION_HIGH_WORD) break;
        this.endZeroRun(sink, block);
        sink.ramPageVersion(block, offsetBytes, versionHigh * TWO_32 + versionLow);
        pos += 8 + VERSION_PAYLOAD_BYTES;
      } else if (flags === ZERO_CONTINUE) {
        const next = this.zeroContinue(bytes, view, pos, end, offsetBytes, sink, block);
        if (next < 0) break;
        pos = next;
      } else {
        break;
      }
    }
    this.endZeroRun(sink, block);
    return pos;
  }

  /**
   * The ZERO|CONTINUE record at `bytes[pos]`, for `offsetBytes` of `block`: returns the position
   * after what it took, or -1 when the fast loop must stop there. When the sink has `ramZeroRun`,
   * a fill-0 record joins the held-back run (or starts a new one) and zeroRunTail takes the
   * consecutive fill-0 records after it at once.
   */
  private zeroContinue(bytes: Uint8Array, view: DataView, pos: number, end: number, offsetBytes: number, sink: StreamSink, block: RamBlockRef): number {
    const pageBytes = this.pageSizeBytes;
    if (offsetBytes + pageBytes > block.usedLengthBytes) return -1;
    if (end - pos < 9) {
      this.fastShortNeedBytes = 1;
      return -1;
    }
    const fill = bytes[pos + 8];
    pos += 9;
    if (sink.ramZeroRun !== undefined && fill === 0) {
      if (this.zeroRunCount > 0 && offsetBytes === this.zeroRunStartBytes + this.zeroRunCount * pageBytes) {
        this.zeroRunCount++;
      } else {
        this.endZeroRun(sink, block);
        this.zeroRunStartBytes = offsetBytes;
        this.zeroRunCount = 1;
      }
      const tail = zeroRunTail(bytes, view, pos, end, this.zeroRunStartBytes + this.zeroRunCount * pageBytes, pageBytes, block.usedLengthBytes);
      this.zeroRunCount += (tail - pos) / 9;
      return tail;
    }
    this.endZeroRun(sink, block);
    sink.ramZero(block, offsetBytes, fill);
    return pos;
  }

  /** Hands the held-back run of fill-0 ZERO records, if any, to the sink's `ramZeroRun`. */
  private endZeroRun(sink: StreamSink, block: RamBlockRef): void {
    const count = this.zeroRunCount;
    if (count === 0) return;
    this.zeroRunCount = 0;
    sink.ramZeroRun!(block, this.zeroRunStartBytes, count);
  }

  /** Reads one RAM record of any kind; returns true when it was EOS (the chunk is over). */
  readRecord(r: ByteReader, ctx: DecodeContext, sink: StreamSink, header: SectionHeader): boolean {
    const at = r.pos;
    const high = r.be32();
    const low = r.be32();
    const flags = low & this.flagMask;
    const kind = flags & ~RAM_SAVE_FLAG_CONTINUE;
    if ((flags & ~RAM_SAVE_FLAGS_KNOWN) !== 0) {
      throw ctx.fail(MIG_ERR_RAM_FLAGS, `Unknown combination of migration flags: 0x${flags.toString(16)}`, at);
    }
    if (
      this.postcopyMode &&
      kind !== RAM_SAVE_FLAG_ZERO &&
      kind !== RAM_SAVE_FLAG_PAGE &&
      kind !== RAM_SAVE_FLAG_EOS &&
      kind !== RAM_SAVE_FLAG_COMPRESS_PAGE
    ) {
      throw ctx.fail(MIG_ERR_RAM_FLAGS, `Unknown combination of migration flags: 0x${flags.toString(16)} (postcopy mode)`, at);
    }
    switch (kind) {
      case RAM_SAVE_FLAG_EOS:
        sink.record({ kind: 'ram-eos', depth: header.depth });
        return true;
      case RAM_SAVE_FLAG_MEM_SIZE:
        if (header.type !== 'start' && header.type !== 'full') {
          throw ctx.fail(MIG_ERR_RAM_BLOCKS, `MEM_SIZE record in a ${header.type.toUpperCase()} section; it belongs to the RAM setup (START)`, at);
        }
        if (high > MAX_SAFE_HIGH_WORD) {
          throw ctx.fail(MIG_ERR_INTEGER_RANGE, `MEM_SIZE total 0x${hex64(high, low - flags)} exceeds 2^53-1`, at);
        }
        this.readMemSize(r, ctx, sink, high * TWO_32 + (low - flags), header.depth, at);
        return false;
      case RAM_SAVE_FLAG_ZERO:
      case RAM_SAVE_FLAG_PAGE: {
        const block = this.resolveBlock(r, ctx, flags, at);
        const offsetBytes = high * TWO_32 + (low - flags);
        if (high > MAX_SAFE_HIGH_WORD || offsetBytes + this.pageSizeBytes > block.usedLengthBytes) {
          throw ctx.fail(
            MIG_ERR_RAM_OFFSET,
            `Illegal RAM offset 0x${hex64(high, low - flags)} in block '${block.name}' of 0x${block.usedLengthBytes.toString(16)} bytes`,
            at,
          );
        }
        if (kind === RAM_SAVE_FLAG_ZERO) {
          const fill = r.u8();
          this.lastBlock = block;
          sink.ramZero(block, offsetBytes, fill);
        } else if (this.versionMode) {
          this.readVersionPayload(r, ctx, sink as VersionPageSink, block, offsetBytes, at);
        } else {
          const data = r.bytesView(this.pageSizeBytes);
          this.lastBlock = block;
          sink.ramPage(block, offsetBytes, data);
        }
        return false;
      }
      default: {
        const name = RAM_FLAG_NAMES.get(kind);
        if (name !== undefined) {
          throw ctx.fail(MIG_ERR_RAM_UNSUPPORTED, `RAM_SAVE_FLAG_${name} (0x${kind.toString(16)}) records are not supported`, at);
        }
        throw ctx.fail(MIG_ERR_RAM_FLAGS, `Unknown combination of migration flags: 0x${flags.toString(16)}`, at);
      }
    }
  }

  /** A version-mode PAGE payload: a version, or the exact mark and a real page. */
  private readVersionPayload(r: ByteReader, ctx: DecodeContext, sink: VersionPageSink, block: RamBlockRef, offsetBytes: number, at: number): void {
    const versionLow = r.le32();
    const versionHigh = r.le32();
    if (versionLow === VERSION_PAYLOAD_EXACT_MARK && versionHigh === VERSION_PAYLOAD_EXACT_MARK) {
      const data = r.bytesView(this.pageSizeBytes);
      this.lastBlock = block;
      sink.ramPage(block, offsetBytes, data);
      return;
    }
    if (versionHigh > MAX_VERSION_HIGH_WORD) {
      throw ctx.fail(MIG_ERR_INTEGER_RANGE, `page version 0x${hex64(versionHigh, versionLow)} at offset 0x${offsetBytes.toString(16)} exceeds 2^53-1`, at);
    }
    this.lastBlock = block;
    sink.ramPageVersion(block, offsetBytes, versionHigh * TWO_32 + versionLow);
  }

  /**
   * Checks a POSTCOPY_RAM_DISCARD against the block list: the block exists, every range is
   * target-page aligned and within the block's used length.
   */
  checkDiscard(blockName: string, ranges: ReadonlyArray<{ startBytes: number; lengthBytes: number }>, ctx: DecodeContext, at: number): void {
    const block = this.byName.get(blockName);
    if (block === undefined) {
      throw ctx.fail(MIG_ERR_RAM_UNKNOWN_BLOCK, `CMD_POSTCOPY_RAM_DISCARD for unknown block '${blockName}'`, at);
    }
    for (const range of ranges) {
      if (range.startBytes % this.pageSizeBytes !== 0 || range.lengthBytes % this.pageSizeBytes !== 0) {
        throw ctx.fail(
          MIG_ERR_RAM_MISALIGNED,
          `discard range 0x${range.startBytes.toString(16)}+0x${range.lengthBytes.toString(16)} of '${blockName}' is not aligned to ${this.pageSizeBytes} bytes`,
          at,
        );
      }
      if (range.startBytes + range.lengthBytes > block.usedLengthBytes) {
        throw ctx.fail(
          MIG_ERR_RAM_OFFSET,
          `discard range 0x${range.startBytes.toString(16)}+0x${range.lengthBytes.toString(16)} is beyond block '${blockName}' of 0x${block.usedLengthBytes.toString(16)} bytes`,
          at,
        );
      }
    }
  }

  private resolveBlock(r: ByteReader, ctx: DecodeContext, flags: number, at: number): RamBlockRef {
    if ((flags & RAM_SAVE_FLAG_CONTINUE) !== 0) {
      if (this.lastBlock === null) {
        throw ctx.fail(MIG_ERR_RAM_NO_BLOCK, 'Ack, bad migration stream! (CONTINUE with no previous block)', at);
      }
      return this.lastBlock;
    }
    const name = r.cstr8();
    const block = this.byName.get(name);
    if (block === undefined) throw ctx.fail(MIG_ERR_RAM_UNKNOWN_BLOCK, `Can't find block ${name}`, at);
    return block;
  }

  /** Reads MEM_SIZE entries until their used lengths sum to `totalBytes`. */
  private readMemSize(r: ByteReader, ctx: DecodeContext, sink: StreamSink, totalBytes: number, depth: number, at: number): void {
    const { limits, postcopyRam, hugePageBlocks, ignoreShared } = this.config;
    if (totalBytes > limits.maxTotalRamBytes) {
      throw ctx.fail(MIG_ERR_LIMIT, `MEM_SIZE total of ${totalBytes} bytes exceeds the limit of ${limits.maxTotalRamBytes}`, at);
    }
    const infos: RamBlockInfo[] = [];
    const refs: RamBlockRef[] = [];
    const byName = new Map<string, RamBlockRef>();
    let sumBytes = 0;
    while (sumBytes < totalBytes) {
      const entryAt = r.pos;
      if (infos.length >= limits.maxRamBlocks) {
        throw ctx.fail(MIG_ERR_LIMIT, `MEM_SIZE list has more than ${limits.maxRamBlocks} blocks`, entryAt);
      }
      const name = r.cstr8();
      const usedLengthBytes = r.be64();
      const info: { name: string; usedLengthBytes: number; pageSizeBytes?: number; gpa?: number } = { name, usedLengthBytes };
      if (postcopyRam && hugePageBlocks.has(name)) info.pageSizeBytes = r.be64();
      if (ignoreShared) info.gpa = r.be64();
      if (byName.has(name)) throw ctx.fail(MIG_ERR_RAM_BLOCKS, `RAM block '${name}' appears twice in the MEM_SIZE list`, entryAt);
      sumBytes += usedLengthBytes;
      if (sumBytes > totalBytes) {
        throw ctx.fail(MIG_ERR_RAM_BLOCKS, `RAM block lengths exceed the MEM_SIZE total of ${totalBytes} bytes at block '${name}'`, entryAt);
      }
      const ref: RamBlockRef = { index: infos.length, name, usedLengthBytes };
      infos.push(info);
      refs.push(ref);
      byName.set(name, ref);
    }
    this.blocks = refs;
    this.byName = byName;
    this.lastBlock = null;
    sink.record({ kind: 'ram-blocks', totalBytes, blocks: infos, depth });
  }

  /** The blocks of the last MEM_SIZE list. */
  get blockList(): readonly RamBlockRef[] {
    return this.blocks;
  }
}
