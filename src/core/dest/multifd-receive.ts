/**
 * The receiving side of multifd channels (QEMU 7.2's multifd_recv threads, facts §2.6): one
 * push decoder per channel (format/multifd.ts), whose pages are written straight into guest
 * RAM. Zero pages and everything else stay on the main stream.
 *
 * Ordering. QEMU's destination blocks each channel at a SYNC packet until the main stream
 * reaches its next RAM EOS, so no page of a later pass can be written before an older one.
 * Here every input runs to completion on one thread, so the same order is kept with pass
 * numbers instead of waiting: the main stream's pass is the number of RAM EOS decoded, a
 * channel's pass the number of SYNC packets it delivered (the source sends one SYNC per
 * channel before each EOS). Every page remembers the pass of its last write; a record of an
 * older pass than that (one that arrived late on another connection) is dropped, on the main
 * stream (PagePlacer.gate) as on the channels. Within one pass a page is sent at most once.
 *
 * A precopy EOF completes only once every channel has delivered the SYNC of the last pass
 * (`caughtUp`); the channel that brings it calls `onCaughtUp`.
 */
import { MultifdChannelDecoder, type MultifdRecord } from '../../format/multifd.ts';
import { PAGE_SIZE_BYTES } from '../../memory/page-content.ts';
import type { DestRam } from '../engine-types.ts';
import type { PagePlacer } from './placement.ts';

export class MultifdReceiver {
  readonly channelCount: number;
  /** Main-stream pass: RAM EOS records decoded. */
  mainPass = 0;
  /** Per channel: SYNC packets delivered. */
  private readonly channelPasses: Int32Array;
  private readonly decoders: Array<MultifdChannelDecoder | null>;
  /** Per page: the pass of its last write. */
  private readonly pagePasses: Uint32Array;
  /** The pass of the multifd page being written, or -1 for main-stream records. */
  private placingPass = -1;
  private readonly ram: DestRam;
  private readonly placer: PagePlacer;
  private readonly onCaughtUp: () => void;
  /** Pages written from channels, packets decoded. */
  pagesPlaced = 0;
  packets = 0;

  constructor(ram: DestRam, placer: PagePlacer, channelCount: number, onCaughtUp: () => void) {
    this.ram = ram;
    this.placer = placer;
    this.channelCount = channelCount;
    this.onCaughtUp = onCaughtUp;
    this.channelPasses = new Int32Array(channelCount);
    this.decoders = new Array<MultifdChannelDecoder | null>(channelCount).fill(null);
    this.pagePasses = new Uint32Array(ram.store.pageCount);
    placer.gate = (pageIndex) => this.admit(pageIndex);
  }

  /** Bytes of the channel that connected `index`-th (0-based). Throws FormatError. */
  push(index: number, bytes: Uint8Array): void {
    let decoder = this.decoders[index];
    if (decoder === null || decoder === undefined) {
      decoder = new MultifdChannelDecoder(
        {
          record: (record) => this.onRecord(index, record),
          page: (blockName, offsetBytes, data) => this.onPage(index, blockName, offsetBytes, data),
        },
        { channelCount: this.channelCount, blockLengthBytes: (name) => this.ram.blocks.byName(name)?.sizeBytes },
      );
      this.decoders[index] = decoder;
    }
    decoder.push(bytes);
  }

  /** The main stream decoded a RAM EOS. */
  mainEos(): void {
    this.mainPass++;
  }

  /** Every channel has delivered the SYNC of the main stream's current pass. */
  get caughtUp(): boolean {
    for (let i = 0; i < this.channelCount; i++) if (this.channelPasses[i] < this.mainPass) return false;
    return true;
  }

  private onRecord(index: number, record: MultifdRecord): void {
    if (record.kind !== 'packet-end') return;
    this.packets++;
    if (!record.header.sync) return;
    this.channelPasses[index]++;
    if (this.caughtUp) this.onCaughtUp();
  }

  private onPage(index: number, blockName: string, offsetBytes: number, data: Uint8Array): void {
    const block = this.ram.blocks.byName(blockName)!; // the decoder checked the name and offset
    const pageIndex = block.startPage + offsetBytes / PAGE_SIZE_BYTES;
    this.placingPass = this.channelPasses[index];
    const fresh = this.admit(pageIndex);
    this.placingPass = -1;
    if (!fresh) {
      this.placer.staleDropped++;
      return;
    }
    this.placer.loadMultifdPage(pageIndex, data);
    this.pagesPlaced++;
  }

  /** The ordering check of the module comment; records the write's pass when it is not stale. */
  private admit(pageIndex: number): boolean {
    const pass = this.placingPass >= 0 ? this.placingPass : this.mainPass;
    if (this.pagePasses[pageIndex] > pass) return false;
    this.pagePasses[pageIndex] = pass;
    return true;
  }
}
