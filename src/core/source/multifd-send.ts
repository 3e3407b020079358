/**
 * The sending side of multifd channels, as QEMU 7.2 does it (facts §2.6, format/multifd.ts):
 * while the migration is in precopy, every page with content goes into a packet of at most
 * 128 pages of one block instead of the main stream; zero pages stay ZERO records on the main
 * stream. A packet is written to the channels in turn when it is full, when the block changes,
 * and at every flush of the engine (end of each input). Before each RAM EOS on the main stream,
 * `sync` sends one SYNC packet on every channel, so the destination can tell which pass a
 * packet belongs to (QEMU's multifd_send_sync_main).
 *
 * Accounting: packet bytes (QEMU's `pages × page size + packet_len`, packet_len = the 320-byte
 * header and the 128 offsets) count in the main encoder's wireOffsetBytes, so the rate limiter,
 * the budgets and `transferred` see them (QEMU charges the main file's rate limit), and in
 * `multifd-bytes`. Each channel begins with its 64-byte init packet, sent at `start`.
 *
 * Pages are copied into the packet when it is written (one buffer per packet, nothing per
 * page). A page the guest writes between queueing and copying is dirty again in the log and is
 * sent again after the next sync, as with QEMU's own send threads. With `pageBytes` (engine
 * option pageViews over real bytes) nothing is copied: the packet leaves as its header and then
 * views of guest RAM, one per run of consecutive pages; the same rule makes that sound.
 */
import { ByteWriter } from '../../lib/bytes.ts';
import {
  MULTIFD_HEADER_BYTES, MULTIFD_INIT_BYTES, MULTIFD_PACKET_PAYLOAD_BYTES,
  writeMultifdInit, writeMultifdPacketHeader,
} from '../../format/multifd.ts';
import type { StreamEncoder } from '../../format/stream-encoder.ts';
import type { PageStore } from '../../memory/page-store.ts';
import type { RamBlock } from '../../memory/ram-block.ts';
import type { Effect, MultifdChannelName, UnwrittenPages } from '../engine-types.ts';
import { ZERO_RECORD_BYTES, type PageEmitter } from './page-emitter.ts';

const PAGE_BYTES = 4096;
/** Pages per packet: 512 KiB of 4 KiB pages. */
export const MULTIFD_PAGES_PER_PACKET = MULTIFD_PACKET_PAYLOAD_BYTES / PAGE_BYTES;
/** Header and offset array of every packet (QEMU's packet_len). */
const PACKET_HEAD_BYTES = MULTIFD_HEADER_BYTES + 8 * MULTIFD_PAGES_PER_PACKET;

export function multifdChannelName(id: number): MultifdChannelName {
  return `multifd${id}`;
}

/** What the sender needs from the engine. */
export interface MultifdSendHost {
  readonly store: PageStore;
  /** Effects of the current input (send effects are appended). */
  effects(): Effect[];
  /**
   * Counts bytes written on multifd channels (wire offset, multifd-bytes); `transferred` too
   * when asked (bytes queued by a page emitter are counted by the caller of the emitter).
   */
  account(bytes: number, transferred: boolean): void;
  /** Guest RAM, indexed by global page, when packets may carry views of it; else null. */
  readonly pageBytes: Uint8Array | null;
}

export class MultifdSender {
  readonly channelCount: number;
  private readonly host: MultifdSendHost;
  private readonly head = new ByteWriter(PACKET_HEAD_BYTES);
  /** The packet being filled: its block, and the global page index of each page. */
  private block: RamBlock | null = null;
  private readonly pages = new Int32Array(MULTIFD_PAGES_PER_PACKET);
  private readonly offsets: number[] = [];
  private pageCount = 0;
  /** Name of the last block a packet carried (SYNC packets repeat it, as QEMU's do). */
  private lastBlockName = '';
  private nextChannel = 0;
  private packetNum = 0;
  /** SYNC rounds sent. */
  syncs = 0;
  packets = 0;

  constructor(channelCount: number, host: MultifdSendHost) {
    this.channelCount = channelCount;
    this.host = host;
  }

  /** The init packet of every channel. */
  start(uuid: Uint8Array | null): void {
    for (let id = 0; id < this.channelCount; id++) {
      const out = new ByteWriter(MULTIFD_INIT_BYTES);
      writeMultifdInit(out, { channelId: id, uuid: uuid ?? undefined });
      this.host.effects().push({ kind: 'send', channel: multifdChannelName(id), data: out.finish() });
    }
  }

  /** Queues page `pageIndex` of `block` (a page with content). */
  queue(block: RamBlock, pageIndex: number): void {
    if (this.block !== block || this.pageCount === MULTIFD_PAGES_PER_PACKET) this.flushPacket(false);
    this.block = block;
    this.pages[this.pageCount++] = pageIndex;
    this.host.account(PAGE_BYTES, false);
  }

  /** Writes the packet being filled, if it holds pages (`transferred`: see MultifdSendHost). */
  flushPacket(transferred: boolean): void {
    const block = this.block;
    const n = this.pageCount;
    if (block === null || n === 0) return;
    this.offsets.length = n;
    for (let i = 0; i < n; i++) this.offsets[i] = (this.pages[i] - block.startPage) * PAGE_BYTES;
    const ram = this.host.pageBytes;
    if (ram !== null) {
      const head = new Uint8Array(PACKET_HEAD_BYTES);
      this.writeHead(head, block.name, this.offsets, false);
      this.emit(head, this.nextChannel);
      for (let i = 0; i < n;) {
        let j = i + 1;
        while (j < n && this.pages[j] === this.pages[j - 1] + 1) j++;
        this.send(ram.subarray(this.pages[i] * PAGE_BYTES, (this.pages[j - 1] + 1) * PAGE_BYTES), this.nextChannel);
        i = j;
      }
    } else {
      const data = new Uint8Array(PACKET_HEAD_BYTES + n * PAGE_BYTES);
      this.writeHead(data, block.name, this.offsets, false);
      for (let i = 0; i < n; i++) this.host.store.copyPageOut(this.pages[i], data, PACKET_HEAD_BYTES + i * PAGE_BYTES);
      this.emit(data, this.nextChannel);
    }
    this.nextChannel = (this.nextChannel + 1) % this.channelCount;
    this.lastBlockName = block.name;
    this.pageCount = 0;
    this.host.account(PACKET_HEAD_BYTES, transferred);
  }

  /** QEMU's multifd_send_sync_main: pending pages out, then a SYNC packet on every channel. */
  sync(): void {
    this.flushPacket(true);
    this.offsets.length = 0;
    for (let id = 0; id < this.channelCount; id++) {
      const data = new Uint8Array(PACKET_HEAD_BYTES);
      this.writeHead(data, this.lastBlockName, this.offsets, true);
      this.emit(data, id);
      this.host.account(PACKET_HEAD_BYTES, true);
    }
    this.syncs++;
  }

  private writeHead(into: Uint8Array, blockName: string, offsets: readonly number[], sync: boolean): void {
    const head = this.head;
    head.reset();
    writeMultifdPacketHeader(head, { packetNum: this.packetNum++, blockName, offsets, sync });
    into.set(head.finish(), 0);
  }

  /** A packet's first bytes (the whole packet unless its pages follow as views). */
  private emit(data: Uint8Array, channel: number): void {
    this.packets++;
    this.send(data, channel);
  }

  private send(data: Uint8Array, channel: number): void {
    this.host.effects().push({ kind: 'send', channel: multifdChannelName(channel), data });
  }
}

/**
 * The page emitter while multifd is on: ZERO records on the main stream, other pages to the
 * sender; in postcopy (not used: the engine refuses multifd with postcopy-ram) it would be
 * the plain emitter's job. With `unwritten` (the host knows pages never written), runs of
 * such pages go out as ZERO runs without being read, as the plain bytes emitter does.
 */
export class MultifdPageEmitter implements PageEmitter {
  zeroPages = 0;
  normalPages = 0;

  constructor(private readonly store: PageStore, private readonly sender: MultifdSender, private readonly unwritten: UnwrittenPages | null = null) {}

  emit(encoder: StreamEncoder, block: RamBlock, firstPage: number, count: number, wireLimit: number): number {
    const unwritten = this.unwritten;
    let k = 0;
    while (k < count) {
      if (k > 0 && encoder.wireOffsetBytes >= wireLimit) break;
      const page = firstPage + k;
      if (unwritten !== null) {
        const budgetPages = Math.max(1, Math.ceil((wireLimit - encoder.wireOffsetBytes) / ZERO_RECORD_BYTES));
        const zeros = unwritten.unwrittenRun(page, Math.min(count - k, budgetPages));
        if (zeros > 0) {
          encoder.ramZeroRun(block.name, page - block.startPage, zeros);
          this.zeroPages += zeros;
          k += zeros;
          continue;
        }
      }
      k++;
      if (this.store.isZeroPage(page)) {
        encoder.ramZeroPage(block.name, page - block.startPage);
        this.zeroPages++;
      } else {
        this.sender.queue(block, page);
        this.normalPages++;
      }
    }
    return k;
  }
}
