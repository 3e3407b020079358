/**
 * A Linux-like virtio-mem driver (drivers/virtio/virtio_mem.c), reduced to what migration
 * needs: plug and unplug device blocks towards requested_size, with the device's memory
 * given to and taken from the guest's buddy allocator.
 *
 * Memory model: the device region [addr, addr + region_size) lies outside boot RAM, so its
 * pages start reserved in the allocator (not present). A plugged block is onlined with
 * `unreserveRange` (its pages become free guest memory); a block is unplugged only when all
 * its pages are free, by taking them back with `reserveRange` (offlining) before the UNPLUG
 * request, and onlining them again if the device refuses. The guest therefore never touches
 * unplugged memory: only the allocator hands out pages, and it never holds unplugged ones.
 *
 * Probe: negotiate (ACPI_PXM, UNPLUGGED_INACCESSIBLE, ring features), set up the request
 * queue, read and check the geometry, DRIVER_OK. If the device reports plugged memory (a
 * previous driver's), UNPLUG_ALL is sent before anything else, as Linux does.
 *
 * Work (`step(nowNs, budget)`, at most `budget` requests): one request at a time, waiting
 * for its response as Linux's virtio_mem_send_request does. A config interrupt makes the
 * next step re-read requested_size and usable_region_size. Plugging takes the lowest
 * unplugged block of the usable region, unplugging the highest plugged block that is wholly
 * free. Responses: ACK applies; NACK re-reads the config and retries at once (-EAGAIN);
 * BUSY, or no free block to unplug, waits for the retry timer (50 s doubling up to 300 s,
 * Linux's VIRTIO_MEM_RETRY_TIMER_{MIN,MAX}_MS); ERROR or a malformed response marks the
 * driver broken (it then does nothing more). STATE requests (`requestState`) are sent
 * before size work and their answers kept in `stateResults`.
 *
 * One block per request (Linux batches sub-blocks; the device's answers are the same).
 */
import { VIRTIO_CONFIG_S_FAILED, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, featureSet } from '../../devices/virtio/constants.ts';
import * as M from '../../devices/virtio-mem/constants.ts';
import {
  blockStateFromCode, decodeVirtioMemResponse, encodeVirtioMemRequest, type VirtioMemBlockState, type VirtioMemRequest, type VirtioMemResponseType,
} from '../../devices/virtio-mem/virtio-mem-requests.ts';
import { Bitmap } from '../../lib/bitmap.ts';
import { RangeTable } from '../../lib/range-table.ts';
import { NS_PER_S } from '../../lib/units.ts';
import type { GuestMemory } from '../../memory/guest-memory.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import type { GpaAllocator } from '../virtio/bump-allocator.ts';
import { negotiateFeatures, setDriverOk, setUpQueue } from '../virtio/driver-features.ts';
import { SplitQueueDriver } from '../virtio/split-queue-driver.ts';
import { DriverError, readConfigLe64, type DriverInterrupts, type VirtioPort } from './virtio-port.ts';

export const VIRTIO_MEM_RETRY_MIN_NS = 50 * NS_PER_S;
export const VIRTIO_MEM_RETRY_MAX_NS = 300 * NS_PER_S;
const PAGE_BYTES = 4096;

export interface VirtioMemDriverOptions {
  /** Most requests sent per step; default 16. */
  readonly requestsPerStep?: number;
  /** First retry delay after BUSY or nothing to unplug; default 50 s. */
  readonly retryMinNs?: number;
  /** Largest retry delay; default 300 s. */
  readonly retryMaxNs?: number;
}

export interface VirtioMemDriverDeps {
  readonly port: VirtioPort;
  readonly memory: GuestMemory;
  readonly allocator: BuddyAllocator;
  readonly kernelMemory: GpaAllocator;
}

/** The answer to a STATE request. */
export interface VirtioMemStateResult {
  readonly addrBytes: number;
  readonly nbBlocks: number;
  readonly response: VirtioMemResponseType;
  /** The state for an ACK, else null. */
  readonly state: VirtioMemBlockState | null;
}

/** The request in flight. */
interface PendingRequest {
  readonly type: 'plug' | 'unplug' | 'unplug-all' | 'state';
  /** First block (plug, unplug, state). */
  readonly block: number;
  readonly nbBlocks: number;
}

export class VirtioMemDriver implements DriverInterrupts {
  /** Options with defaults. */
  readonly options: Required<VirtioMemDriverOptions>;
  /** Dependencies. */
  private readonly deps: VirtioMemDriverDeps;
  /** Negotiated features. */
  features = 0n;
  /** Geometry read at probe. */
  blockSizeBytes = 0;
  addrBytes = 0;
  regionSizeBytes = 0;
  nodeId = 0;
  /** Config values as last read. */
  usableRegionSizeBytes = 0;
  requestedSizeBytes = 0;
  /** plugged_size as the device last reported it. */
  devicePluggedSizeBytes = 0;
  /** Blocks this driver plugged and onlined. */
  private plugged = new Bitmap(0);
  /** The request queue. */
  private queue: SplitQueueDriver<number> | null = null;
  /** Request and response buffers. */
  private requestGpa = 0;
  private responseGpa = 0;
  /** The request waiting for its response. */
  private pending: PendingRequest | null = null;
  /** Requests sent (also the token of the latest). */
  requestsSent = 0;
  /** Responses received, by type. */
  readonly responseCounts: Record<VirtioMemResponseType, number> = { ack: 0, nack: 0, busy: 0, error: 0 };
  /** UNPLUG_ALL must be sent before any other request. */
  private unplugAllRequired = false;
  /** The config must be re-read. */
  private configDirty = false;
  /** STATE requests not yet sent. */
  private readonly stateRequests: Array<{ block: number; nbBlocks: number }> = [];
  /** Answers to STATE requests, in order. */
  readonly stateResults: VirtioMemStateResult[] = [];
  /** No size work before this time (retry timer). */
  private retryAtNs = 0;
  /** The next retry delay. */
  private retryNs: number;
  /** Why the driver gave up, or null. */
  broken: DriverError | null = null;
  /** The latest guest time seen (kicks carry it). */
  private nowNs = 0;
  /** Whether probe succeeded. */
  private bound = false;

  constructor(deps: VirtioMemDriverDeps, options: VirtioMemDriverOptions = {}) {
    this.deps = deps;
    this.options = {
      requestsPerStep: options.requestsPerStep ?? 16,
      retryMinNs: options.retryMinNs ?? VIRTIO_MEM_RETRY_MIN_NS,
      retryMaxNs: options.retryMaxNs ?? VIRTIO_MEM_RETRY_MAX_NS,
    };
    this.retryNs = this.options.retryMinNs;
  }

  /** Binds to the device; on failure the device is left FAILED and the error returned. */
  probe(): DriverError | null {
    const { port, memory, kernelMemory, allocator } = this.deps;
    port.connectDriver(this);
    const wanted = featureSet(M.VIRTIO_MEM_F_ACPI_PXM, M.VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX);
    const negotiated = negotiateFeatures(port, wanted);
    if (!negotiated.ok) return this.fail(new DriverError('DRIVER_ERR_NEGOTIATION', `virtio-mem: ${negotiated.error.message}`));
    this.features = negotiated.features;
    const queue = setUpQueue<number>(port, memory, kernelMemory, 0, this.features);
    if (!(queue instanceof SplitQueueDriver)) return this.fail(new DriverError('DRIVER_ERR_QUEUE', `virtio-mem: ${queue.message}`));
    this.queue = queue;
    this.requestGpa = kernelMemory.allocate(M.VIRTIO_MEM_REQ_SIZE_BYTES, 8);
    this.responseGpa = kernelMemory.allocate(M.VIRTIO_MEM_RESP_SIZE_BYTES, 8);

    this.blockSizeBytes = readConfigLe64(port, M.VIRTIO_MEM_CONFIG_BLOCK_SIZE_OFFSET);
    this.nodeId = port.readConfig(M.VIRTIO_MEM_CONFIG_NODE_ID_OFFSET, 2);
    this.addrBytes = readConfigLe64(port, M.VIRTIO_MEM_CONFIG_ADDR_OFFSET);
    this.regionSizeBytes = readConfigLe64(port, M.VIRTIO_MEM_CONFIG_REGION_SIZE_OFFSET);
    const block = this.blockSizeBytes;
    const bad = (why: string): DriverError => this.fail(new DriverError('DRIVER_ERR_BAD_CONFIG', `virtio-mem: ${why}`));
    if (!(block >= PAGE_BYTES && Number.isInteger(Math.log2(block)))) return bad(`block size ${block} is not a power of two of at least a page`);
    if (this.addrBytes % block !== 0 || this.regionSizeBytes % block !== 0) return bad('region not aligned to the block size');
    const startPage = this.addrBytes / PAGE_BYTES;
    const endPage = (this.addrBytes + this.regionSizeBytes) / PAGE_BYTES;
    if (endPage > allocator.pageCount) return bad(`region ends beyond guest memory (${allocator.pageCount} pages)`);
    if (!allocator.reservedRangeList().some((r) => r.start <= startPage && r.end >= endPage)) return bad('region overlaps memory the guest already manages');
    this.plugged = new Bitmap(this.regionSizeBytes / block);
    this.refreshConfig();
    if (this.devicePluggedSizeBytes !== 0) this.unplugAllRequired = true;

    const refusal = setDriverOk(port);
    if (refusal !== null) return this.fail(new DriverError('DRIVER_ERR_NEGOTIATION', `virtio-mem: ${refusal.message}`));
    this.bound = true;
    this.configDirty = true; // Start processing requested_size at once.
    return null;
  }

  // ---- interrupts ----------------------------------------------------------------------

  onConfigChange(): void {
    this.configDirty = true;
  }

  onQueueInterrupt(_queueIndex: number): void {
    // The waiter reaps the queue in step().
  }

  // ---- work ----------------------------------------------------------------------------

  /** Sends at most `budget` requests at `nowNs`, handling responses as they arrive. */
  step(nowNs: number, budget: number = this.options.requestsPerStep): void {
    let sent = 0;
    this.nowNs = Math.max(this.nowNs, nowNs);
    while (this.bound && this.broken === null) {
      if (this.pending !== null) {
        if (!this.reap(nowNs)) return;
        continue;
      }
      if (sent >= budget || nowNs < this.retryAtNs) return;
      if (this.unplugAllRequired) {
        this.send({ type: 'unplug-all', block: 0, nbBlocks: 0 });
      } else {
        if (this.configDirty) this.refreshConfig();
        const state = this.stateRequests.shift();
        if (state !== undefined) {
          this.send({ type: 'state', block: state.block, nbBlocks: state.nbBlocks });
        } else if (!this.sendSizeRequest(nowNs)) {
          return;
        }
      }
      sent++;
    }
  }

  /** Queues a STATE request for `nbBlocks` blocks from `addrBytes`. */
  requestState(addrBytes: number, nbBlocks: number): void {
    this.stateRequests.push({ block: (addrBytes - this.addrBytes) / this.blockSizeBytes, nbBlocks });
  }

  /** Bytes this driver has plugged and onlined. */
  get pluggedSizeBytes(): number {
    return this.plugged.count() * this.blockSizeBytes;
  }

  /** Whether work is pending (a request in flight, a size difference, queued STATE). */
  get busy(): boolean {
    if (!this.bound || this.broken !== null) return false;
    return this.pending !== null || this.unplugAllRequired || this.configDirty || this.stateRequests.length > 0
      || this.requestedSizeBytes !== this.pluggedSizeBytes;
  }

  /** The blocks this driver has plugged, as guest-physical byte ranges. */
  pluggedRanges(): RangeTable {
    const table = new RangeTable();
    for (let b = this.plugged.nextSet(0); b >= 0; b = this.plugged.nextSet(b + 1)) table.add(this.blockGpa(b), this.blockGpa(b + 1));
    return table;
  }

  /** The rest of the region, as guest-physical byte ranges. */
  unpluggedRanges(): RangeTable {
    const table = new RangeTable();
    table.add(this.addrBytes, this.addrBytes + this.regionSizeBytes);
    for (const r of this.pluggedRanges()) table.remove(r.start, r.end);
    return table;
  }

  // ---- internals -----------------------------------------------------------------------

  private refreshConfig(): void {
    const { port } = this.deps;
    this.configDirty = false;
    this.devicePluggedSizeBytes = readConfigLe64(port, M.VIRTIO_MEM_CONFIG_PLUGGED_SIZE_OFFSET);
    this.usableRegionSizeBytes = Math.min(readConfigLe64(port, M.VIRTIO_MEM_CONFIG_USABLE_REGION_SIZE_OFFSET), this.regionSizeBytes);
    this.requestedSizeBytes = readConfigLe64(port, M.VIRTIO_MEM_CONFIG_REQUESTED_SIZE_OFFSET);
  }

  /** Sends one PLUG or UNPLUG towards requested_size; false when there is nothing (more) to do. */
  private sendSizeRequest(nowNs: number): boolean {
    const diff = this.requestedSizeBytes - this.pluggedSizeBytes;
    if (diff > 0) {
      const block = this.plugged.nextClear(0);
      const usableBlocks = this.usableRegionSizeBytes / this.blockSizeBytes;
      if (block < 0 || block >= usableBlocks) return false; // -ENOSPC: nothing left to plug.
      this.send({ type: 'plug', block, nbBlocks: 1 });
      return true;
    }
    if (diff < 0) {
      for (let b = this.lastPlugged(); b >= 0; b = this.previousPlugged(b)) {
        const [start, end] = this.blockPages(b);
        if (this.deps.allocator.reserveRange(start, end)) {
          this.send({ type: 'unplug', block: b, nbBlocks: 1 });
          return true;
        }
      }
      this.armRetry(nowNs); // -EBUSY: no plugged block is wholly free.
    }
    return false;
  }

  private send(request: PendingRequest): void {
    const queue = this.queue as SplitQueueDriver<number>;
    const addr = BigInt(this.blockGpa(request.block));
    const wire: VirtioMemRequest = request.type === 'unplug-all'
      ? { type: 'unplug-all' }
      : { type: request.type, addr, nbBlocks: request.nbBlocks };
    this.deps.memory.write(this.requestGpa, encodeVirtioMemRequest(wire));
    this.deps.memory.write(this.responseGpa, new Uint8Array(M.VIRTIO_MEM_RESP_SIZE_BYTES));
    const token = this.requestsSent++;
    const added = queue.add([{ gpa: this.requestGpa, lengthBytes: M.VIRTIO_MEM_REQ_SIZE_BYTES }], [{ gpa: this.responseGpa, lengthBytes: M.VIRTIO_MEM_RESP_SIZE_BYTES }], token);
    if (!added) {
      this.giveUp('the request queue refused a buffer');
      return;
    }
    this.pending = request;
    if (queue.kick()) this.deps.port.notify(0, this.nowNs);
  }

  /** Takes the response of the pending request if it is back; returns whether it was. */
  private reap(nowNs: number): boolean {
    const used = (this.queue as SplitQueueDriver<number>).getUsed();
    if (used === null) return false;
    const request = this.pending as PendingRequest;
    this.pending = null;
    const response = used.usedLengthBytes >= M.VIRTIO_MEM_RESP_SIZE_BYTES
      ? decodeVirtioMemResponse(this.deps.memory.read(this.responseGpa, M.VIRTIO_MEM_RESP_SIZE_BYTES))
      : null;
    if (response === null) {
      if (request.type === 'unplug') this.online(request.block);
      this.giveUp(`malformed response to ${request.type} (used length ${used.usedLengthBytes})`);
      return true;
    }
    this.responseCounts[response.type]++;
    switch (request.type) {
      case 'plug':
        if (response.type === 'ack') {
          this.plugged.set(request.block);
          this.online(request.block);
          this.retryNs = this.options.retryMinNs;
        } else this.refused(request, response.type, nowNs);
        break;
      case 'unplug':
        if (response.type === 'ack') {
          this.plugged.clear(request.block);
          this.retryNs = this.options.retryMinNs;
        } else {
          this.online(request.block);
          this.refused(request, response.type, nowNs);
        }
        break;
      case 'unplug-all':
        if (response.type === 'ack') {
          this.unplugAllRequired = false;
          this.plugged.clearAll();
          this.configDirty = true;
        } else this.refused(request, response.type, nowNs);
        break;
      case 'state':
        this.stateResults.push({
          addrBytes: this.blockGpa(request.block),
          nbBlocks: request.nbBlocks,
          response: response.type,
          state: response.type === 'ack' ? blockStateFromCode(response.stateCode) : null,
        });
        break;
    }
    return true;
  }

  /** A non-ACK answer to a size request. */
  private refused(request: PendingRequest, type: VirtioMemResponseType, nowNs: number): void {
    if (type === 'nack' && request.type === 'plug') this.configDirty = true; // -EAGAIN: requested_size moved.
    else if (type === 'busy' || type === 'nack') this.armRetry(nowNs);
    else this.giveUp(`the device answered ${type} to ${request.type} of block ${request.block}`);
  }

  private armRetry(nowNs: number): void {
    this.retryAtNs = nowNs + this.retryNs;
    this.retryNs = Math.min(this.retryNs * 2, this.options.retryMaxNs);
  }

  private giveUp(why: string): void {
    this.broken = new DriverError('DRIVER_ERR_DEVICE', `virtio-mem: ${why}; marking device broken`);
  }

  /** Gives a block's pages to the allocator (memory onlining). */
  private online(block: number): void {
    const [start, end] = this.blockPages(block);
    this.deps.allocator.unreserveRange(start, end);
  }

  private blockGpa(block: number): number {
    return this.addrBytes + block * this.blockSizeBytes;
  }

  private blockPages(block: number): [number, number] {
    const start = this.blockGpa(block) / PAGE_BYTES;
    return [start, start + this.blockSizeBytes / PAGE_BYTES];
  }

  private lastPlugged(): number {
    return this.previousPlugged(this.plugged.sizeBits);
  }

  /** The highest plugged block below `block`, or -1. */
  private previousPlugged(block: number): number {
    for (let b = block - 1; b >= 0; b--) if (this.plugged.test(b)) return b;
    return -1;
  }

  private fail(error: DriverError): DriverError {
    const { port } = this.deps;
    port.writeStatus(port.readStatus() | VIRTIO_CONFIG_S_FAILED);
    port.connectDriver(null);
    return error;
  }
}
