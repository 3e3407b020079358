/**
 * Multifd channels of QEMU 7.2 (facts §2.6): the 64-byte init packet each extra connection
 * starts with, then packets of pages. A push decoder per channel delivers each page as a view
 * (no copy when the page lies within one chunk) plus init / packet records; an encoder writes
 * both. Layout, verified against testdata/qemu-7.2/multifd-4M/conn1 and conn2:
 *
 *   init (64 bytes): be32 magic 0x11223344, be32 version 1, 16-byte UUID, u8 channel id,
 *                    39 reserved bytes.
 *   packet header (320 bytes): be32 magic, be32 version, be32 flags (bit 0 SYNC, bits 1-3
 *                    compression), be32 pages_alloc, be32 normal_pages, be32 next_packet_size,
 *                    be64 packet_num, 4 × be64 reserved, char ramblock[256] NUL-padded;
 *   then be64 offset[pages_alloc], then normal_pages × page-size bytes of page data.
 *
 * Capture versus facts: facts §2.6 says the offset array has normal_pages entries; the real
 * 7.2 capture always carries pages_alloc entries (128 for 4 KiB pages) and only the first
 * normal_pages are meaningful; the rest hold stale offsets of earlier packets. SYNC packets
 * with no pages still carry the previous block name and a stale next_packet_size, and a
 * SYNC flag may ride on a packet that carries pages. This module follows the capture.
 */
import { ByteWriter, latin1 } from '../lib/bytes.ts';
import { FormatError } from './errors.ts';

export const MULTIFD_MAGIC = 0x11223344;
export const MULTIFD_VERSION = 1;
export const MULTIFD_FLAG_SYNC = 0x1;
/** Bits 1-3 of flags: 0 none, 1 zlib, 2 zstd. */
export const MULTIFD_FLAG_COMPRESSION_MASK = 0xe;
export const MULTIFD_INIT_BYTES = 64;
export const MULTIFD_HEADER_BYTES = 320;
export const MULTIFD_BLOCK_NAME_BYTES = 256;
/** QEMU 7.2 packs 512 KiB of pages per packet: 128 pages of 4 KiB. */
export const MULTIFD_PACKET_PAYLOAD_BYTES = 512 * 1024;
export const MULTIFD_DEFAULT_PAGE_SIZE_BYTES = 4096;

export const MIG_ERR_MULTIFD_BAD_MAGIC = 'MIG_ERR_MULTIFD_BAD_MAGIC';
export const MIG_ERR_MULTIFD_BAD_VERSION = 'MIG_ERR_MULTIFD_BAD_VERSION';
export const MIG_ERR_MULTIFD_BAD_CHANNEL = 'MIG_ERR_MULTIFD_BAD_CHANNEL';
export const MIG_ERR_MULTIFD_UUID_MISMATCH = 'MIG_ERR_MULTIFD_UUID_MISMATCH';
export const MIG_ERR_MULTIFD_COMPRESSION_UNSUPPORTED = 'MIG_ERR_MULTIFD_COMPRESSION_UNSUPPORTED';
export const MIG_ERR_MULTIFD_PAGE_COUNT = 'MIG_ERR_MULTIFD_PAGE_COUNT';
export const MIG_ERR_MULTIFD_BAD_PACKET_NUM = 'MIG_ERR_MULTIFD_BAD_PACKET_NUM';
export const MIG_ERR_MULTIFD_UNKNOWN_BLOCK = 'MIG_ERR_MULTIFD_UNKNOWN_BLOCK';
export const MIG_ERR_MULTIFD_BAD_OFFSET = 'MIG_ERR_MULTIFD_BAD_OFFSET';
export const MIG_ERR_MULTIFD_TRUNCATED = 'MIG_ERR_MULTIFD_TRUNCATED';
export const MIG_ERR_MULTIFD_ENCODE = 'MIG_ERR_MULTIFD_ENCODE';

export const MULTIFD_ERROR_CODES = [
  MIG_ERR_MULTIFD_BAD_MAGIC,
  MIG_ERR_MULTIFD_BAD_VERSION,
  MIG_ERR_MULTIFD_BAD_CHANNEL,
  MIG_ERR_MULTIFD_UUID_MISMATCH,
  MIG_ERR_MULTIFD_COMPRESSION_UNSUPPORTED,
  MIG_ERR_MULTIFD_PAGE_COUNT,
  MIG_ERR_MULTIFD_BAD_PACKET_NUM,
  MIG_ERR_MULTIFD_UNKNOWN_BLOCK,
  MIG_ERR_MULTIFD_BAD_OFFSET,
  MIG_ERR_MULTIFD_TRUNCATED,
  MIG_ERR_MULTIFD_ENCODE,
] as const;

export interface MultifdInit {
  readonly uuid: Uint8Array;
  readonly channelId: number;
}

export interface MultifdPacketHeader {
  readonly flags: number;
  readonly sync: boolean;
  readonly pagesAlloc: number;
  readonly normalPages: number;
  /** As sent; stale in packets without pages, so not checked. */
  readonly nextPacketSizeBytes: number;
  readonly packetNum: number;
  readonly blockName: string;
  /** Byte offsets within the block of the `normalPages` pages that follow. */
  readonly offsets: readonly number[];
}

export type MultifdRecord =
  | { readonly kind: 'init'; readonly init: MultifdInit; readonly offset: number }
  | { readonly kind: 'packet'; readonly header: MultifdPacketHeader; readonly offset: number }
  /** After the packet's last page: a SYNC packet is fully processed here. */
  | { readonly kind: 'packet-end'; readonly header: MultifdPacketHeader; readonly offset: number };

/** Where a channel decoder delivers what it reads. Page views are valid only during the call. */
export interface MultifdSink {
  record(record: MultifdRecord): void;
  page(blockName: string, offsetBytes: number, data: Uint8Array): void;
}

export interface MultifdDecoderOptions {
  readonly pageSizeBytes?: number;
  /** Largest pages_alloc accepted (default 512 KiB / page size, QEMU's own packet size). */
  readonly maxPagesAlloc?: number;
  /** When given, the init packet's channel id must be below it. */
  readonly channelCount?: number;
  /** When given, the init packet's UUID must equal it. */
  readonly expectedUuid?: Uint8Array;
  /** When given, names the blocks and their used lengths; unknown blocks and offsets past the end fail. */
  readonly blockLengthBytes?: (blockName: string) => number | undefined;
}

const TWO_32 = 4294967296;

/** Decoder states, named by what the buffered bytes are. */
const State = { Init: 0, Header: 1, Offsets: 2, Pages: 3 } as const;
type State = (typeof State)[keyof typeof State];

/** Push decoder of one multifd channel, from its init packet on. */
export class MultifdChannelDecoder {
  private readonly pageSizeBytes: number;
  private readonly maxPagesAlloc: number;
  private readonly options: MultifdDecoderOptions;
  /** Holds the init packet, or a packet header plus its offset array. */
  private readonly head: Uint8Array;
  private readonly headView: DataView;
  /** Assembles a page that straddles chunks. */
  private readonly pageScratch: Uint8Array;
  private state: State = State.Init;
  private needBytes = MULTIFD_INIT_BYTES;
  private haveBytes = 0;
  private consumedBytes = 0;
  private packetOffset = 0;
  private header: MultifdPacketHeader | null = null;
  private pageIndex = 0;
  private failure: unknown = null;

  constructor(
    private readonly sink: MultifdSink,
    options: MultifdDecoderOptions = {},
  ) {
    this.options = options;
    this.pageSizeBytes = options.pageSizeBytes ?? MULTIFD_DEFAULT_PAGE_SIZE_BYTES;
    this.maxPagesAlloc = options.maxPagesAlloc ?? Math.floor(MULTIFD_PACKET_PAYLOAD_BYTES / this.pageSizeBytes);
    this.head = new Uint8Array(MULTIFD_HEADER_BYTES + 8 * this.maxPagesAlloc);
    this.headView = new DataView(this.head.buffer);
    this.pageScratch = new Uint8Array(this.pageSizeBytes);
  }

  /** Absolute offset in the channel of the next byte expected. */
  get offset(): number {
    return this.consumedBytes;
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

  /** Declares end of input: the channel must end between packets. */
  finish(): void {
    if (this.failure !== null) throw this.failure;
    if (this.state === State.Header && this.haveBytes === 0) return;
    this.failure = new FormatError(MIG_ERR_MULTIFD_TRUNCATED, `multifd channel ended inside ${this.state === State.Init ? 'its init packet' : 'a packet'}`, this.consumedBytes);
    throw this.failure;
  }

  private consume(chunk: Uint8Array): void {
    let i = 0;
    const pageSize = this.pageSizeBytes;
    while (i < chunk.length) {
      if (this.state === State.Pages) {
        const header = this.header!;
        if (this.haveBytes === 0 && chunk.length - i >= pageSize) {
          // The whole page is in this chunk: hand out a view.
          const at = i;
          i += pageSize;
          this.consumedBytes += pageSize;
          this.deliverPage(header, chunk.subarray(at, at + pageSize));
          continue;
        }
        const take = Math.min(pageSize - this.haveBytes, chunk.length - i);
        this.pageScratch.set(chunk.subarray(i, i + take), this.haveBytes);
        this.haveBytes += take;
        this.consumedBytes += take;
        i += take;
        if (this.haveBytes === pageSize) {
          this.haveBytes = 0;
          this.deliverPage(header, this.pageScratch);
        }
        continue;
      }
      const take = Math.min(this.needBytes - this.haveBytes, chunk.length - i);
      this.head.set(chunk.subarray(i, i + take), this.haveBytes);
      this.haveBytes += take;
      this.consumedBytes += take;
      i += take;
      if (this.haveBytes === this.needBytes) this.complete();
    }
  }

  private deliverPage(header: MultifdPacketHeader, data: Uint8Array): void {
    const offsetBytes = header.offsets[this.pageIndex++];
    const last = this.pageIndex === header.normalPages;
    if (last) this.expectHeader();
    this.sink.page(header.blockName, offsetBytes, data);
    if (last) this.sink.record({ kind: 'packet-end', header, offset: this.packetOffset });
  }

  private expectHeader(): void {
    this.state = State.Header;
    this.needBytes = MULTIFD_HEADER_BYTES;
    this.haveBytes = 0;
  }

  private complete(): void {
    const start = this.consumedBytes - this.needBytes;
    const v = this.headView;
    if (this.state === State.Init) {
      this.checkMagicVersion(start);
      const uuid = this.head.slice(8, 24);
      const channelId = this.head[24];
      const { channelCount, expectedUuid } = this.options;
      if (channelCount !== undefined && channelId >= channelCount) {
        throw new FormatError(MIG_ERR_MULTIFD_BAD_CHANNEL, `multifd: received channel id ${channelId} is greater than number of channels ${channelCount}`, start + 24);
      }
      if (expectedUuid !== undefined && !sameBytes(uuid, expectedUuid)) {
        throw new FormatError(MIG_ERR_MULTIFD_UUID_MISMATCH, `multifd: received uuid ${hexOf(uuid)} and expected uuid ${hexOf(expectedUuid)} for channel ${channelId}`, start + 8);
      }
      this.expectHeader();
      this.sink.record({ kind: 'init', init: { uuid, channelId }, offset: start });
      return;
    }
    if (this.state === State.Header) {
      this.packetOffset = start;
      this.checkMagicVersion(start);
      const flags = v.getUint32(8);
      if ((flags & MULTIFD_FLAG_COMPRESSION_MASK) !== 0) {
        throw new FormatError(MIG_ERR_MULTIFD_COMPRESSION_UNSUPPORTED, `multifd: compression method ${(flags & MULTIFD_FLAG_COMPRESSION_MASK) >>> 1} is not supported`, start + 8);
      }
      const pagesAlloc = v.getUint32(12);
      const normalPages = v.getUint32(16);
      if (pagesAlloc > this.maxPagesAlloc) {
        throw new FormatError(MIG_ERR_MULTIFD_PAGE_COUNT, `multifd: received packet with size ${pagesAlloc} and expected a maximum size of ${this.maxPagesAlloc}`, start + 12);
      }
      if (normalPages > pagesAlloc) {
        throw new FormatError(MIG_ERR_MULTIFD_PAGE_COUNT, `multifd: received packet with ${normalPages} pages and expected maximum pages are ${pagesAlloc}`, start + 16);
      }
      if (pagesAlloc === 0) this.startPages(start);
      else {
        this.state = State.Offsets;
        this.needBytes = MULTIFD_HEADER_BYTES + 8 * pagesAlloc;
      }
      return;
    }
    if (this.state === State.Offsets) this.startPages(this.packetOffset);
  }

  /** Parses the buffered header and offsets and moves on to the pages. */
  private startPages(start: number): void {
    const v = this.headView;
    const flags = v.getUint32(8);
    const pagesAlloc = v.getUint32(12);
    const normalPages = v.getUint32(16);
    const numHigh = v.getUint32(24);
    if (numHigh > 0x1fffff) {
      throw new FormatError(MIG_ERR_MULTIFD_BAD_PACKET_NUM, `multifd: packet number 0x${numHigh.toString(16)}${hex8(v.getUint32(28))} beyond 2^53`, start + 24);
    }
    // QEMU forces the last byte of ramblock[] to NUL, so a name is at most 255 bytes.
    const nameBytes = this.head.subarray(64, 64 + MULTIFD_BLOCK_NAME_BYTES - 1);
    const nul = nameBytes.indexOf(0);
    const blockName = latin1(nul < 0 ? nameBytes : nameBytes.subarray(0, nul));
    const pageSize = this.pageSizeBytes;
    const lookup = this.options.blockLengthBytes;
    const usedLength = normalPages > 0 && lookup !== undefined ? lookup(blockName) : undefined;
    if (normalPages > 0 && lookup !== undefined && usedLength === undefined) {
      throw new FormatError(MIG_ERR_MULTIFD_UNKNOWN_BLOCK, `multifd: unknown ram block ${JSON.stringify(blockName)}`, start + 64);
    }
    const offsets: number[] = new Array<number>(normalPages);
    for (let k = 0; k < normalPages; k++) {
      const at = MULTIFD_HEADER_BYTES + 8 * k;
      const high = v.getUint32(at);
      const offsetBytes = high * TWO_32 + v.getUint32(at + 4);
      const tooFar = usedLength !== undefined && offsetBytes > usedLength - pageSize;
      if (high > 0x1fffff || offsetBytes % pageSize !== 0 || tooFar) {
        throw new FormatError(MIG_ERR_MULTIFD_BAD_OFFSET, `multifd: bad page offset 0x${high.toString(16)}${hex8(v.getUint32(at + 4))} in block ${JSON.stringify(blockName)}`, start + at);
      }
      offsets[k] = offsetBytes;
    }
    const header: MultifdPacketHeader = {
      flags,
      sync: (flags & MULTIFD_FLAG_SYNC) !== 0,
      pagesAlloc,
      normalPages,
      nextPacketSizeBytes: v.getUint32(20),
      packetNum: numHigh * TWO_32 + v.getUint32(28),
      blockName,
      offsets,
    };
    this.header = header;
    this.pageIndex = 0;
    if (normalPages === 0) {
      this.expectHeader();
      this.sink.record({ kind: 'packet', header, offset: start });
      this.sink.record({ kind: 'packet-end', header, offset: start });
      return;
    }
    this.state = State.Pages;
    this.haveBytes = 0;
    this.sink.record({ kind: 'packet', header, offset: start });
  }

  private checkMagicVersion(start: number): void {
    const magic = this.headView.getUint32(0);
    const version = this.headView.getUint32(4);
    const what = this.state === State.Init ? 'channel' : 'packet';
    if (magic !== MULTIFD_MAGIC) {
      throw new FormatError(MIG_ERR_MULTIFD_BAD_MAGIC, `multifd: received ${what} magic ${hex8(magic)} and expected magic ${hex8(MULTIFD_MAGIC)}`, start);
    }
    if (version !== MULTIFD_VERSION) {
      throw new FormatError(MIG_ERR_MULTIFD_BAD_VERSION, `multifd: received ${what} version ${version} and expected version ${MULTIFD_VERSION}`, start + 4);
    }
  }
}

function encodeError(message: string): FormatError {
  return new FormatError(MIG_ERR_MULTIFD_ENCODE, message, 0);
}

/** Writes the 64-byte init packet of a channel. The UUID defaults to all zeroes (no -uuid). */
export function writeMultifdInit(out: ByteWriter, init: { readonly channelId: number; readonly uuid?: Uint8Array }): void {
  const uuid = init.uuid ?? new Uint8Array(16);
  if (uuid.length !== 16) throw encodeError(`UUID must be 16 bytes, got ${uuid.length}`);
  if (!Number.isInteger(init.channelId) || init.channelId < 0 || init.channelId > 255) throw encodeError(`bad channel id ${init.channelId}`);
  out.be32(MULTIFD_MAGIC).be32(MULTIFD_VERSION).bytes(uuid).u8(init.channelId).fill(0, 39);
}

export interface MultifdPacketInput {
  readonly packetNum: number;
  readonly blockName: string;
  /** Page byte offsets within the block, one per page. */
  readonly offsets: readonly number[];
  /** The pages, each exactly `pageSizeBytes` long, in `offsets` order. */
  readonly pages: readonly Uint8Array[];
  readonly sync?: boolean;
  /** Defaults to 512 KiB / page size, as QEMU 7.2 sends. */
  readonly pagesAlloc?: number;
  /** Defaults to pages × page size. */
  readonly nextPacketSizeBytes?: number;
  readonly pageSizeBytes?: number;
}

/** Writes one packet: header, pages_alloc offsets (unused ones zero) and the page data. */
export function writeMultifdPacket(out: ByteWriter, p: MultifdPacketInput): void {
  const pageSize = p.pageSizeBytes ?? MULTIFD_DEFAULT_PAGE_SIZE_BYTES;
  if (p.pages.length !== p.offsets.length) throw encodeError(`${p.pages.length} page(s) for ${p.offsets.length} offset(s)`);
  writeMultifdPacketHeader(out, p);
  for (const page of p.pages) {
    if (page.length !== pageSize) throw encodeError(`page of ${page.length} bytes, expected ${pageSize}`);
    out.bytes(page);
  }
}

/**
 * Writes a packet's header and offset array (`offsets.length` pages follow, which the caller
 * appends, each `pageSizeBytes` long).
 */
export function writeMultifdPacketHeader(out: ByteWriter, p: Omit<MultifdPacketInput, 'pages'>): void {
  const pageSize = p.pageSizeBytes ?? MULTIFD_DEFAULT_PAGE_SIZE_BYTES;
  const pagesAlloc = p.pagesAlloc ?? Math.floor(MULTIFD_PACKET_PAYLOAD_BYTES / pageSize);
  const n = p.offsets.length;
  if (n > pagesAlloc) throw encodeError(`${n} page(s) exceed pages_alloc ${pagesAlloc}`);
  if (p.blockName.length > MULTIFD_BLOCK_NAME_BYTES - 1) throw encodeError(`block name longer than 255 bytes`);
  if (!Number.isSafeInteger(p.packetNum) || p.packetNum < 0) throw encodeError(`bad packet number ${p.packetNum}`);
  out.be32(MULTIFD_MAGIC).be32(MULTIFD_VERSION).be32(p.sync === true ? MULTIFD_FLAG_SYNC : 0);
  out.be32(pagesAlloc).be32(n).be32(p.nextPacketSizeBytes ?? n * pageSize).be64(p.packetNum).fill(0, 32);
  out.ensure(MULTIFD_BLOCK_NAME_BYTES);
  for (let i = 0; i < p.blockName.length; i++) {
    const c = p.blockName.charCodeAt(i);
    if (c === 0 || c > 0xff) throw encodeError(`block name is not NUL-free Latin-1: ${JSON.stringify(p.blockName)}`);
    out.u8(c);
  }
  out.fill(0, MULTIFD_BLOCK_NAME_BYTES - p.blockName.length);
  for (let i = 0; i < n; i++) {
    const offsetBytes = p.offsets[i];
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes % pageSize !== 0) throw encodeError(`bad page offset ${offsetBytes}`);
    out.be64(offsetBytes);
  }
  out.fill(0, 8 * (pagesAlloc - n));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function hexOf(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, '0');
}
