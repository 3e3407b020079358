/**
 * `livemig analyze` for the two side channels of a migration: the return path (destination →
 * source messages, decoded with ReturnPathDecoder) and a multifd channel (init packet, then
 * packets of pages, decoded with MultifdChannelDecoder). Both read a ByteSource in chunks and
 * produce JSON-able results; a decode error is kept in the result, never thrown.
 */
import { FormatError } from '../format/errors.ts';
import { ReturnPathDecoder } from '../format/return-path.ts';
import type { RpMessage } from '../format/return-path.ts';
import { MultifdChannelDecoder, MULTIFD_MAGIC } from '../format/multifd.ts';
import type { MultifdPacketHeader } from '../format/multifd.ts';
import type { ByteSource } from './byte-source.ts';
import type { DecodeErrorEntry } from './stream-analysis.ts';

/** A return-path message as listed: the bitmap of RECV_BITMAP is summarised, not copied. */
export type RpEntry =
  | { readonly offset: number; readonly kind: 'shut'; readonly status: number }
  | { readonly offset: number; readonly kind: 'pong' | 'resume-ack'; readonly value: number }
  | { readonly offset: number; readonly kind: 'req-pages-id' | 'req-pages'; readonly blockName: string; readonly startBytes: number; readonly lengthBytes: number }
  | { readonly offset: number; readonly kind: 'recv-bitmap'; readonly blockName: string; readonly bitmapBytes: number; readonly pagesReceived: number };

export interface ReturnPathAnalysis {
  readonly kind: 'return-path';
  readonly source: { readonly path: string; readonly fileBytes: number; readonly gzip: boolean };
  readonly messages: RpEntry[];
  readonly shutDown: boolean;
  readonly decodedBytes: number;
  readonly error: DecodeErrorEntry | null;
}

function rpEntry(msg: RpMessage, offset: number): RpEntry {
  switch (msg.kind) {
    case 'shut':
      return { offset, kind: 'shut', status: msg.status };
    case 'pong':
    case 'resume-ack':
      return { offset, kind: msg.kind, value: msg.value };
    case 'req-pages-id':
    case 'req-pages':
      return { offset, kind: msg.kind, blockName: msg.blockName, startBytes: msg.startBytes, lengthBytes: msg.lengthBytes };
    case 'recv-bitmap': {
      let bits = 0;
      for (const byte of msg.bitmap) for (let v = byte; v !== 0; v &= v - 1) bits++;
      return { offset, kind: 'recv-bitmap', blockName: msg.blockName, bitmapBytes: msg.bitmap.length, pagesReceived: bits };
    }
  }
}

function errorEntry(e: unknown): DecodeErrorEntry {
  if (!(e instanceof FormatError)) throw e;
  return { code: e.code, message: e.message, offset: e.offset, section: e.section };
}

/**
 * Decodes a return-path capture. `pagesOfBlock`, when given (from the main stream's block
 * list), makes a RECV_BITMAP's size checked against its block.
 */
export async function analyzeReturnPath(
  source: ByteSource,
  chunkBytes: number,
  pagesOfBlock?: (blockName: string) => number | undefined,
): Promise<ReturnPathAnalysis> {
  const messages: RpEntry[] = [];
  const decoder = new ReturnPathDecoder((msg, offset) => messages.push(rpEntry(msg, offset)), pagesOfBlock === undefined ? {} : { bitmapBitsForBlock: pagesOfBlock });
  let error: DecodeErrorEntry | null = null;
  try {
    for await (const chunk of source.chunks(chunkBytes)) decoder.push(chunk);
    decoder.finish();
  } catch (e) {
    error = errorEntry(e);
  }
  return {
    kind: 'return-path',
    source: { path: source.label, fileBytes: source.fileBytes, gzip: source.gzip },
    messages,
    shutDown: decoder.shutDown,
    decodedBytes: decoder.offset,
    error,
  };
}

export interface MultifdPacketEntry {
  readonly offset: number;
  readonly packetNum: number;
  readonly sync: boolean;
  readonly flags: number;
  readonly pagesAlloc: number;
  readonly normalPages: number;
  readonly nextPacketSizeBytes: number;
  readonly blockName: string;
  /** Lowest and highest page offset of the packet (null without pages). */
  readonly firstOffset: number | null;
  readonly lastOffset: number | null;
}

export interface MultifdAnalysis {
  readonly kind: 'multifd-channel';
  readonly source: { readonly path: string; readonly fileBytes: number; readonly gzip: boolean; readonly streamBytes: number };
  readonly init: { readonly channelId: number; readonly uuid: string; readonly offset: number } | null;
  /** Packets in order; past `maxListedPackets` only counted. */
  readonly packets: MultifdPacketEntry[];
  readonly packetsNotListed: number;
  readonly totals: { readonly packets: number; readonly syncPackets: number; readonly pages: number; readonly pagesByBlock: Record<string, number> };
  readonly decodedBytes: number;
  readonly error: DecodeErrorEntry | null;
}

/** True when `head` starts with the multifd magic 0x11223344 (a channel's init packet). */
export function looksLikeMultifd(head: Uint8Array): boolean {
  return head.length >= 4 && ((head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3]) >>> 0 === MULTIFD_MAGIC;
}

function packetEntry(h: MultifdPacketHeader, offset: number): MultifdPacketEntry {
  let first: number | null = null;
  let last: number | null = null;
  for (const o of h.offsets) {
    if (first === null || o < first) first = o;
    if (last === null || o > last) last = o;
  }
  return {
    offset,
    packetNum: h.packetNum,
    sync: h.sync,
    flags: h.flags,
    pagesAlloc: h.pagesAlloc,
    normalPages: h.normalPages,
    nextPacketSizeBytes: h.nextPacketSizeBytes,
    blockName: h.blockName,
    firstOffset: first,
    lastOffset: last,
  };
}

export interface MultifdAnalyzeOptions {
  /** Packets listed one by one; later ones are only counted (default 10,000). */
  readonly maxListedPackets?: number;
  /** Receives every page (to merge a channel into the RAM rebuilt from the main stream). */
  readonly onPage?: (blockName: string, offsetBytes: number, data: Uint8Array) => void;
  /** Used lengths of the main stream's blocks: pages of other blocks or past the end fail. */
  readonly blockLengthBytes?: (blockName: string) => number | undefined;
}

/** Decodes one multifd channel capture (from its init packet on). */
export async function analyzeMultifd(source: ByteSource, chunkBytes: number, options: MultifdAnalyzeOptions = {}): Promise<MultifdAnalysis> {
  const maxListedPackets = options.maxListedPackets ?? 10_000;
  const onPage = options.onPage;
  let init: MultifdAnalysis['init'] = null;
  const packets: MultifdPacketEntry[] = [];
  let packetCount = 0;
  let syncPackets = 0;
  let pages = 0;
  const pagesByBlock: Record<string, number> = {};
  const decoder = new MultifdChannelDecoder({
    record(r) {
      if (r.kind === 'init') init = { channelId: r.init.channelId, uuid: Buffer.from(r.init.uuid).toString('hex'), offset: r.offset };
      else if (r.kind === 'packet') {
        packetCount++;
        if (r.header.sync) syncPackets++;
        if (packets.length < maxListedPackets) packets.push(packetEntry(r.header, r.offset));
      }
    },
    page(blockName, offsetBytes, data) {
      pages++;
      pagesByBlock[blockName] = (pagesByBlock[blockName] ?? 0) + 1;
      onPage?.(blockName, offsetBytes, data);
    },
  }, options.blockLengthBytes === undefined ? {} : { blockLengthBytes: options.blockLengthBytes });
  let error: DecodeErrorEntry | null = null;
  try {
    for await (const chunk of source.chunks(chunkBytes)) decoder.push(chunk);
    decoder.finish();
  } catch (e) {
    error = errorEntry(e);
  }
  return {
    kind: 'multifd-channel',
    source: { path: source.label, fileBytes: source.fileBytes, gzip: source.gzip, streamBytes: await source.contentBytes() },
    init,
    packets,
    packetsNotListed: packetCount - packets.length,
    totals: { packets: packetCount, syncPackets, pages, pagesByBlock },
    decodedBytes: decoder.offset,
    error,
  };
}
