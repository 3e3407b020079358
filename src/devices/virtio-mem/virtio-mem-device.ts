/**
 * The device side of virtio-mem, modelled on QEMU 7.2 (hw/virtio/virtio-mem.c) and virtio
 * 1.2: a device-managed region [addr, addr + regionSize) split into blocks, one plugged bit
 * per block, a usable part that grows to cover requested_size, and guest requests on one
 * queue. Unplugged memory is discarded (DiscardSink) and never migrated; the migration
 * engine asks `unpluggedRanges()` which guest-physical ranges to skip, and a postcopy
 * destination zero-fills them locally.
 *
 * Request rules (QEMU 7.2, in this order):
 * - PLUG/UNPLUG: range invalid (unaligned addr, zero or overflowing size, outside the usable
 *   region) → ERROR; PLUG beyond requested_size → NACK; blocks not all in the opposite state
 *   → ERROR; migration busy → BUSY; otherwise ACK and the bitmap/size change.
 * - UNPLUG_ALL: migration busy → BUSY; otherwise unplug everything (discarding the region if
 *   anything was plugged), shrink the usable region to fit requested_size, ACK.
 * - STATE: range invalid → ERROR; otherwise ACK with PLUGGED, UNPLUGGED or MIXED.
 * - Short request, short response buffer or unknown type: protocol violation; the device
 *   breaks and the element is detached without a response.
 */
import { Bitmap } from '../../lib/bitmap.ts';
import { RangeTable } from '../../lib/range-table.ts';
import { GuestMemoryError, type GuestMemory } from '../../memory/guest-memory.ts';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1, featureBit, hasFeature } from '../virtio/constants.ts';
import { DeviceError } from '../device-error.ts';
import { NULL_DISCARD_SINK, gatherReadable, scatterWritable, segmentsLengthBytes, type DiscardSink, type ElementEffect, type QueueElement } from '../element-io.ts';
import * as C from './constants.ts';
import { decodeVirtioMemRequest, encodeVirtioMemResponse, type VirtioMemResponse } from './virtio-mem-requests.ts';

/** Device properties (QEMU names in quotes) and host-side wiring. */
export interface VirtioMemOptions {
  /** 'memaddr': guest-physical start of the region; a multiple of the block size. */
  readonly addrBytes: number;
  /** Size of the backing memory ('memdev'); a multiple of the block size. */
  readonly regionSizeBytes: number;
  /** 'block-size': a power of two ≥ 1 MiB; default 2 MiB. */
  readonly blockSizeBytes?: number;
  /** 'node': NUMA node id; default 0. */
  readonly nodeId?: number;
  /** 'requested-size' at start; default 0. */
  readonly requestedSizeBytes?: number;
  /** Offer VIRTIO_MEM_F_ACPI_PXM (QEMU does with NUMA and ACPI). */
  readonly acpiPxm?: boolean;
  /** 'unplugged-inaccessible' as resolved (auto → off on x86 with anonymous memory). */
  readonly unpluggedInaccessible?: boolean;
  /** Receiver of unplugged ranges; default drops them. */
  readonly discardSink?: DiscardSink;
}

/** Observable outputs that are not queue effects. */
export type VirtioMemEvent =
  | { readonly kind: 'config-change'; readonly generation: number }
  /** plugged_size changed (QEMU's size-change notifier, QMP MEMORY_DEVICE_SIZE_CHANGE). */
  | { readonly kind: 'size-change'; readonly pluggedSizeBytes: number }
  | { readonly kind: 'broken'; readonly error: DeviceError };

/** The state that migrates (the vmsd's fields besides the sanity-check block). */
export interface VirtioMemMigrationState {
  readonly usableRegionSizeBytes: number;
  readonly pluggedSizeBytes: number;
  readonly requestedSizeBytes: number;
  /** One bit per block, 1 = plugged, as 32-bit words (lib/bitmap layout). */
  readonly pluggedWords: Uint32Array;
}

export class VirtioMemDevice {
  /** Region start (gpa). */
  readonly addrBytes: number;
  /** Region size in bytes. */
  readonly regionSizeBytes: number;
  /** Block size in bytes. */
  readonly blockSizeBytes: number;
  /** NUMA node. */
  readonly nodeId: number;
  /** Number of blocks in the region. */
  readonly blockCount: number;
  /** Device features offered. */
  readonly offeredFeatures: bigint;
  /** Where unplugged ranges go. */
  private readonly discardSink: DiscardSink;

  /** One bit per block; set = plugged. */
  private plugged: Bitmap;
  /** plugged_size in bytes (always popcount × block size). */
  pluggedSizeBytes = 0;
  /** requested_size in bytes (set by the host). */
  requestedSizeBytes = 0;
  /** usable_region_size in bytes. */
  usableRegionSizeBytes = 0;
  /** Whether plug/unplug must be answered BUSY (migration not idle, or incoming postcopy). */
  migrationBusy = false;
  /** Negotiated features (all 64 bits). */
  negotiatedFeatures = 0n;
  /** Driver status register as the virtio core last reported it. */
  driverStatus = 0;
  /** Set by a guest protocol violation; cleared by reset. */
  broken: DeviceError | null = null;
  /** Config-change interrupts raised so far. */
  configInterruptCount = 0;
  /** Config generation counter. */
  configGeneration = 0;
  /** Events not yet taken. */
  private events: VirtioMemEvent[] = [];

  constructor(options: VirtioMemOptions) {
    const block = options.blockSizeBytes ?? C.VIRTIO_MEM_DEFAULT_BLOCK_SIZE_BYTES;
    const bad = (message: string): never => { throw new DeviceError('VIRTIO_MEM_ERR_BAD_OPTION', message); };
    if (!Number.isSafeInteger(block) || block < C.VIRTIO_MEM_MIN_BLOCK_SIZE_BYTES) bad(`'block-size' property has to be at least 0x${C.VIRTIO_MEM_MIN_BLOCK_SIZE_BYTES.toString(16)}`);
    if (!Number.isInteger(Math.log2(block))) bad("'block-size' property has to be a power of two");
    if (!Number.isSafeInteger(options.regionSizeBytes) || options.regionSizeBytes <= 0 || options.regionSizeBytes % block !== 0) {
      bad(`'size' property of the memory backend has to be multiples of 'block-size' (0x${block.toString(16)})`);
    }
    if (!Number.isSafeInteger(options.addrBytes) || options.addrBytes < 0 || options.addrBytes % block !== 0) {
      bad(`'memaddr' property has to be multiples of 'block-size' (0x${block.toString(16)})`);
    }
    this.addrBytes = options.addrBytes;
    this.regionSizeBytes = options.regionSizeBytes;
    this.blockSizeBytes = block;
    this.nodeId = options.nodeId ?? 0;
    this.blockCount = options.regionSizeBytes / block;
    let features = 0n;
    if (options.acpiPxm ?? false) features |= featureBit(C.VIRTIO_MEM_F_ACPI_PXM);
    if (options.unpluggedInaccessible ?? false) features |= featureBit(C.VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE);
    this.offeredFeatures = features;
    this.discardSink = options.discardSink ?? NULL_DISCARD_SINK;
    this.plugged = new Bitmap(this.blockCount);
    const error = this.setRequestedSize(options.requestedSizeBytes ?? 0);
    if (error !== null) throw error;
    this.resizeUsableRegion(this.requestedSizeBytes, true);
  }

  setNegotiatedFeatures(features: bigint): void {
    this.negotiatedFeatures = features;
  }

  setDriverStatus(status: number): void {
    this.driverStatus = status;
  }

  takeEvents(): VirtioMemEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  /** The 56 config bytes (little-endian). */
  readConfig(): Uint8Array {
    const bytes = new Uint8Array(C.VIRTIO_MEM_CONFIG_SIZE_BYTES);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(C.VIRTIO_MEM_CONFIG_BLOCK_SIZE_OFFSET, BigInt(this.blockSizeBytes), true);
    view.setUint16(C.VIRTIO_MEM_CONFIG_NODE_ID_OFFSET, this.nodeId, true);
    view.setBigUint64(C.VIRTIO_MEM_CONFIG_ADDR_OFFSET, BigInt(this.addrBytes), true);
    view.setBigUint64(C.VIRTIO_MEM_CONFIG_REGION_SIZE_OFFSET, BigInt(this.regionSizeBytes), true);
    view.setBigUint64(C.VIRTIO_MEM_CONFIG_USABLE_REGION_SIZE_OFFSET, BigInt(this.usableRegionSizeBytes), true);
    view.setBigUint64(C.VIRTIO_MEM_CONFIG_PLUGGED_SIZE_OFFSET, BigInt(this.pluggedSizeBytes), true);
    view.setBigUint64(C.VIRTIO_MEM_CONFIG_REQUESTED_SIZE_OFFSET, BigInt(this.requestedSizeBytes), true);
    return bytes;
  }

  /**
   * The host changes 'requested-size': a multiple of the block size, at most the region.
   * The usable region grows (never shrinks here) and the driver gets a config interrupt.
   */
  setRequestedSize(bytes: number): DeviceError | null {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % this.blockSizeBytes !== 0) {
      return new DeviceError('VIRTIO_MEM_ERR_BAD_OPTION', `'requested-size' property has to be multiples of 'block-size' (0x${this.blockSizeBytes.toString(16)})`);
    }
    if (bytes > this.regionSizeBytes) {
      return new DeviceError('VIRTIO_MEM_ERR_BAD_OPTION', "'requested-size' property exceeds the memory backend size");
    }
    this.requestedSizeBytes = bytes;
    this.resizeUsableRegion(bytes, false);
    this.notifyConfig();
    return null;
  }

  /** Whether the block holding `gpa` is plugged; false outside the region. */
  isPlugged(gpa: number): boolean {
    if (gpa < this.addrBytes || gpa >= this.addrBytes + this.regionSizeBytes) return false;
    return this.plugged.test(Math.floor((gpa - this.addrBytes) / this.blockSizeBytes));
  }

  /** The plugged memory as guest-physical byte ranges. */
  pluggedRanges(): RangeTable {
    return this.rangesOf(true);
  }

  /** The unplugged memory of the whole region (usable or not) as guest-physical byte ranges. */
  unpluggedRanges(): RangeTable {
    return this.rangesOf(false);
  }

  private rangesOf(plugged: boolean): RangeTable {
    const table = new RangeTable();
    let block = 0;
    while (block < this.blockCount) {
      const start = plugged ? this.plugged.nextSet(block) : this.plugged.nextClear(block);
      if (start < 0) break;
      const stop = plugged ? this.plugged.nextClear(start) : this.plugged.nextSet(start);
      const end = stop < 0 ? this.blockCount : stop;
      table.add(this.addrBytes + start * this.blockSizeBytes, this.addrBytes + end * this.blockSizeBytes);
      block = end;
    }
    return table;
  }

  /** One element of the guest-request queue. */
  handleRequest(memory: GuestMemory, element: QueueElement): ElementEffect[] {
    if (this.broken !== null) return [{ kind: 'unpop', element }];
    try {
      const raw = gatherReadable(memory, element, 0, C.VIRTIO_MEM_REQ_SIZE_BYTES);
      if (raw.length < C.VIRTIO_MEM_REQ_SIZE_BYTES) {
        return this.violation(element, `virtio-mem protocol violation: invalid request size: ${C.VIRTIO_MEM_REQ_SIZE_BYTES}`);
      }
      const writableBytes = segmentsLengthBytes(element.writable);
      if (writableBytes < C.VIRTIO_MEM_RESP_SIZE_BYTES) {
        return this.violation(element, `virtio-mem protocol violation: not enough space for response: ${writableBytes}`);
      }
      const request = decodeVirtioMemRequest(raw);
      let response: VirtioMemResponse;
      switch (request.type) {
        case 'plug': response = { type: this.changeState(request.addr, request.nbBlocks, true) }; break;
        case 'unplug': response = { type: this.changeState(request.addr, request.nbBlocks, false) }; break;
        case 'unplug-all': response = { type: this.unplugAll() ? 'ack' : 'busy' }; break;
        case 'state': response = this.stateOf(request.addr, request.nbBlocks); break;
        case 'unknown': return this.violation(element, `virtio-mem protocol violation: unknown request type: ${request.code}`);
      }
      const written = scatterWritable(memory, element, encodeVirtioMemResponse(response));
      return [{ kind: 'push', element, usedLengthBytes: written }];
    } catch (error) {
      if (!(error instanceof GuestMemoryError)) throw error;
      return this.violation(element, 'virtio: bogus descriptor or out of resources');
    }
  }

  /**
   * Unplugs everything (UNPLUG_ALL, system reset). Returns false (nothing changed) while
   * migration is busy.
   */
  unplugAll(): boolean {
    if (this.migrationBusy) return false;
    if (this.pluggedSizeBytes > 0) {
      this.discardSink.discard(this.addrBytes, this.regionSizeBytes);
      this.plugged.clearAll();
      this.setPluggedSize(0);
    }
    this.resizeUsableRegion(this.requestedSizeBytes, true);
    return true;
  }

  /** Virtio reset: clears features, status and the broken flag; plugged state survives. */
  reset(): void {
    this.driverStatus = 0;
    this.negotiatedFeatures = 0n;
    this.broken = null;
  }

  /** Discards every unplugged range (a precopy destination after loading the state). */
  discardUnplugged(): void {
    for (const range of this.unpluggedRanges()) this.discardSink.discard(range.start, range.end - range.start);
  }

  captureState(): VirtioMemMigrationState {
    return {
      usableRegionSizeBytes: this.usableRegionSizeBytes,
      pluggedSizeBytes: this.pluggedSizeBytes,
      requestedSizeBytes: this.requestedSizeBytes,
      pluggedWords: this.plugged.words.slice(),
    };
  }

  /** Installs a migrated state; rejects one inconsistent with this device's geometry. */
  restoreState(state: VirtioMemMigrationState): void {
    const bitmap = new Bitmap(this.blockCount);
    if (state.pluggedWords.length !== bitmap.words.length) {
      throw new DeviceError('VIRTIO_MEM_ERR_BAD_STATE', `bitmap of ${state.pluggedWords.length} words, expected ${bitmap.words.length}`);
    }
    bitmap.words.set(state.pluggedWords);
    const tail = this.blockCount % 32;
    if (tail !== 0 && bitmap.words[bitmap.words.length - 1] >>> tail !== 0) {
      throw new DeviceError('VIRTIO_MEM_ERR_BAD_STATE', 'bitmap has bits set past the last block');
    }
    const check = (ok: boolean, what: string): void => {
      if (!ok) throw new DeviceError('VIRTIO_MEM_ERR_BAD_STATE', `inconsistent virtio-mem state: ${what}`);
    };
    check(state.pluggedSizeBytes === bitmap.count() * this.blockSizeBytes, 'plugged size differs from the bitmap');
    check(state.usableRegionSizeBytes <= this.regionSizeBytes && state.usableRegionSizeBytes % this.blockSizeBytes === 0, 'usable region size');
    check(state.requestedSizeBytes <= this.regionSizeBytes && state.requestedSizeBytes % this.blockSizeBytes === 0, 'requested size');
    this.plugged = bitmap;
    this.pluggedSizeBytes = state.pluggedSizeBytes;
    this.usableRegionSizeBytes = state.usableRegionSizeBytes;
    this.requestedSizeBytes = state.requestedSizeBytes;
  }

  // ---- internals -----------------------------------------------------------------------

  /** The block range of [addr, addr + nbBlocks × block) if valid (QEMU virtio_mem_valid_range). */
  private validBlocks(addr: bigint, nbBlocks: number): { first: number; end: number } | null {
    const block = BigInt(this.blockSizeBytes);
    const start = BigInt(this.addrBytes);
    const usableEnd = start + BigInt(this.usableRegionSizeBytes);
    const size = BigInt(nbBlocks) * block;
    if (addr % block !== 0n || size === 0n) return null;
    if (addr < start || addr >= usableEnd || addr + size > usableEnd) return null;
    const first = Number((addr - start) / block);
    return { first, end: first + nbBlocks };
  }

  private changeState(addr: bigint, nbBlocks: number, plug: boolean): 'ack' | 'nack' | 'busy' | 'error' {
    const blocks = this.validBlocks(addr, nbBlocks);
    if (blocks === null) return 'error';
    const sizeBytes = nbBlocks * this.blockSizeBytes;
    if (plug && this.pluggedSizeBytes + sizeBytes > this.requestedSizeBytes) return 'nack';
    const pluggedCount = this.plugged.countRange(blocks.first, blocks.end);
    if (plug ? pluggedCount !== 0 : pluggedCount !== nbBlocks) return 'error';
    if (this.migrationBusy) return 'busy';
    if (plug) {
      this.plugged.setRange(blocks.first, blocks.end);
      this.setPluggedSize(this.pluggedSizeBytes + sizeBytes);
    } else {
      this.discardSink.discard(this.addrBytes + blocks.first * this.blockSizeBytes, sizeBytes);
      this.plugged.clearRange(blocks.first, blocks.end);
      this.setPluggedSize(this.pluggedSizeBytes - sizeBytes);
    }
    return 'ack';
  }

  private stateOf(addr: bigint, nbBlocks: number): VirtioMemResponse {
    const blocks = this.validBlocks(addr, nbBlocks);
    if (blocks === null) return { type: 'error' };
    const count = this.plugged.countRange(blocks.first, blocks.end);
    return { type: 'ack', state: count === nbBlocks ? 'plugged' : count === 0 ? 'unplugged' : 'mixed' };
  }

  private setPluggedSize(bytes: number): void {
    this.pluggedSizeBytes = bytes;
    this.events.push({ kind: 'size-change', pluggedSizeBytes: bytes });
  }

  /**
   * QEMU virtio_mem_resize_usable_region: requested size plus the usable extent, capped by
   * the region and rounded up to a block; zero when nothing is requested. Shrinks only when
   * allowed (UNPLUG_ALL, start).
   */
  private resizeUsableRegion(requestedBytes: number, canShrink: boolean): void {
    let size = Math.min(this.regionSizeBytes, requestedBytes + C.VIRTIO_MEM_USABLE_EXTENT_BYTES);
    size = Math.ceil(size / this.blockSizeBytes) * this.blockSizeBytes;
    if (requestedBytes === 0) size = 0;
    if (size < this.usableRegionSizeBytes && !canShrink) return;
    this.usableRegionSizeBytes = size;
  }

  private notifyConfig(): void {
    if ((this.driverStatus & VIRTIO_CONFIG_S_DRIVER_OK) === 0) return;
    this.configGeneration++;
    this.configInterruptCount++;
    this.events.push({ kind: 'config-change', generation: this.configGeneration });
  }

  /** A guest protocol violation: the device breaks and the element is detached (no response). */
  private violation(element: QueueElement, message: string): ElementEffect[] {
    const error = new DeviceError('VIRTIO_MEM_ERR_PROTOCOL', message);
    this.broken = error;
    this.events.push({ kind: 'broken', error });
    if (hasFeature(this.negotiatedFeatures, VIRTIO_F_VERSION_1)) {
      this.driverStatus |= VIRTIO_CONFIG_S_NEEDS_RESET;
      this.notifyConfig();
    }
    return [{ kind: 'detach', element }];
  }
}
