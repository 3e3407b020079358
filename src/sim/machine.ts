/**
 * The simulated machine of one scenario, built but not yet running: guest RAM on both sides,
 * the guest (allocator, drivers, workload) on the source's RAM, the devices of both sides, the
 * RAM block list, and the views each engine gets of its RAM.
 *
 * Layout: boot RAM is RAM block `pc.ram` at 0; a virtio-mem region, if any, follows as block
 * `mem0`. The guest kernel reserves `guest.reserved` bytes at the bottom, whose last MiB holds
 * the drivers' rings (guest.ts); with compact backings those ring pages are made exact on
 * both sides up front (devices read back exactly what the driver wrote).
 *
 * Views: the source engine reads the source's pages through an AuditedPageStore when there
 * is virtio-mem memory (to catch reads of unplugged pages); the destination engine writes
 * through one always (placements after the postcopy switch, unplugged pages received). The
 * guest runs on a HookedBacking that the world retargets to the destination at switchover.
 */
import { BytesBacking } from '../memory/bytes-backing.ts';
import { CompactBacking } from '../memory/compact-backing.ts';
import type { TrackableBacking } from '../memory/dirty-tracking-memory.ts';
import { RamBlockList, type RamBlockSpec } from '../memory/ram-block.ts';
import { ReceivedMap } from '../memory/received-map.ts';
import { MAX_ORDER_PAGES } from '../guest/allocator/buddy.ts';
import { Guest, GUEST_VRING_WINDOW_BYTES_DEFAULT } from '../guest/guest.ts';
import { Prng } from '../lib/prng.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { PagePayloadMode } from '../core/engine-types.ts';
import { AuditedPageStore } from './audited-store.ts';
import { DeviceHost } from './device-host.ts';
import { HookedBacking } from './hooked-backing.ts';
import { HostCpu } from './host-cpu.ts';
import { MemoryAudit } from './memory-audit.ts';
import { spreadKernelDataBytes, type Scenario } from './scenario/scenario.ts';

export { spreadKernelDataBytes };
import { StaleFaultHost, staleFaultSwitches } from './stale-faults.ts';

/** Exact pages a compact backing may hold: the 256 ring pages plus room for the stream's. */
export const COMPACT_EXACT_PAGES = 1024;

export interface Machine {
  readonly pageCount: number;
  readonly payloadMode: PagePayloadMode;
  readonly blocks: RamBlockList;
  /** The source's pages (frozen once the guest leaves). */
  readonly sourceBacking: TrackableBacking;
  /** The destination's pages. */
  readonly destinationBacking: TrackableBacking;
  /** What the guest runs on: the source's pages, then the destination's. */
  readonly guestMemory: HookedBacking;
  /** What the destination's devices run on (audits their writes once the guest runs there). */
  readonly destinationDeviceMemory: HookedBacking;
  /** The source engine's view of its pages. */
  readonly sourceEngineStore: TrackableBacking | AuditedPageStore;
  /** The destination engine's view of its pages. */
  readonly destinationEngineStore: AuditedPageStore;
  /** The destination's received map. */
  readonly received: ReceivedMap;
  readonly guest: Guest;
  readonly devices: DeviceHost;
  readonly audit: MemoryAudit;
  /** The pages of the drivers' rings and buffers. */
  readonly kernelPages: { readonly start: number; readonly end: number };
  /** The host's CPUs shared by migration and a hinting vCPU (scenario `host`), or null. */
  readonly hostCpu: HostCpu | null;
  /** The scenario's stale-page race faults (stale-faults.ts), or null. */
  readonly staleFaults: StaleFaultHost | null;
}

function newBacking(scenario: Scenario, pageCount: number): TrackableBacking {
  return scenario.guest.backing === 'bytes'
    ? new BytesBacking(pageCount * TARGET_PAGE_SIZE)
    : new CompactBacking(pageCount, { exactPageLimit: COMPACT_EXACT_PAGES });
}

/**
 * Builds the machine. `onHint` receives each hint the source balloon takes (the world applies
 * it to the source engine); the audit is created here and shared.
 */
export function buildMachine(scenario: Scenario, seed: number, onHint: (startPage: number, pageCount: number, cmdId: number) => void): Machine {
  const memoryBytes = scenario.guest.memoryBytes;
  const vmem = scenario.virtioMem;
  const totalBytes = memoryBytes + (vmem?.regionBytes ?? 0);
  const pageCount = totalBytes / TARGET_PAGE_SIZE;
  const sourceBacking = newBacking(scenario, pageCount);
  const destinationBacking = newBacking(scenario, pageCount);
  const kernelEndPage = Math.ceil(scenario.guest.reservedBytes / TARGET_PAGE_SIZE);
  const kernelPages = { start: kernelEndPage - GUEST_VRING_WINDOW_BYTES_DEFAULT / TARGET_PAGE_SIZE, end: kernelEndPage };
  for (const backing of [sourceBacking, destinationBacking]) {
    if (backing instanceof CompactBacking) for (let p = kernelPages.start; p < kernelPages.end; p++) backing.makeExact(p);
  }
  const specs: RamBlockSpec[] = [{ name: 'pc.ram', offsetBytes: 0, sizeBytes: memoryBytes }];
  if (vmem !== null) specs.push({ name: 'mem0', offsetBytes: memoryBytes, sizeBytes: vmem.regionBytes });
  const blocks = new RamBlockList(specs);

  const switches = scenario.faults === null ? null : staleFaultSwitches(scenario.faults.behaveAs, scenario.faults.staleRaces);
  const staleFaults = switches === null ? null : new StaleFaultHost(switches, pageCount);
  const devices = new DeviceHost({
    ramSizeBytes: totalBytes,
    balloon: scenario.balloon === null || switches === null ? scenario.balloon : { ...scenario.balloon, hintFaults: switches.device },
    virtioMem: vmem === null ? null : { addrBytes: memoryBytes, regionBytes: vmem.regionBytes, pluggedBytes: vmem.pluggedBytes, blockBytes: vmem.blockBytes },
    postcopyRam: scenario.capabilities['postcopy-ram'],
    onHint,
  });
  const stream = scenario.link.stream;
  const host = scenario.host;
  const hostCpu = host === null ? null : new HostCpu({
    cores: host.cores,
    bandwidthBytesPerSec: stream.bandwidthBytesPerSec,
    scanNsPerPage: stream.scanCostNsPerPage ?? 0,
    rescanNsPerPage: host.rescanCostNsPerPage ?? undefined,
    switchoverNs: host.switchoverNs,
  });
  const guestMemory = new HookedBacking(sourceBacking);
  const guest = new Guest({
    backing: guestMemory,
    bootRamBytes: memoryBytes,
    kernelReservedBytes: scenario.guest.reservedBytes,
    devices: (memory) => devices.guestDevices(memory),
    workload: scenario.workload,
    balloon: scenario.balloon === null
      ? undefined
      : {
          hintBlocksPerStep: scenario.balloon.hintBatch,
          hintPacing: scenario.balloon.hintPacing,
          initOnAlloc: scenario.guest.initOnAlloc,
          cpuShare: hostCpu === null ? null : () => hostCpu.share(),
        },
    seed: new Prng(seed).fork().u32(),
    dirtyLog: staleFaults?.log ?? undefined,
  });
  const g = scenario.guest;
  const bootRamPages = memoryBytes / TARGET_PAGE_SIZE;
  const spreadBytes = g.kernelDataLayout === 'spread' ? spreadKernelDataBytes(g.kernelDataBytes, g.kernelDataLowBytes) : 0;
  writeKernelData(sourceBacking, g.kernelDataBytes - spreadBytes, kernelPages.start);
  reserveTop(guest, sourceBacking, g.reservedTopBytes, bootRamPages);
  const firstFreeBlock = fragment(guest, sourceBacking, g.fragmentedBytes, g.fragmentedZeroBytes, kernelEndPage);
  const topBlock = Math.floor((bootRamPages - Math.floor(g.reservedTopBytes / TARGET_PAGE_SIZE)) / MAX_ORDER_PAGES);
  const spanEndBlock = Math.min(topBlock, Math.floor((bootRamPages * g.kernelDataSpan) / MAX_ORDER_PAGES));
  spreadKernelData(guest, sourceBacking, spreadBytes / (MAX_ORDER_PAGES * TARGET_PAGE_SIZE), firstFreeBlock, spanEndBlock);
  const destinationDeviceMemory = new HookedBacking(destinationBacking);
  devices.buildDestination(destinationDeviceMemory);
  // The audit learns the unplugged pages when the migration starts (the guest plugs at boot).
  const audit = new MemoryAudit(pageCount);
  return {
    pageCount,
    payloadMode: scenario.guest.backing === 'bytes' ? 'bytes' : 'version',
    blocks,
    sourceBacking,
    destinationBacking,
    guestMemory,
    destinationDeviceMemory,
    sourceEngineStore: sourceEngineStore(sourceBacking, vmem !== null, staleFaults),
    destinationEngineStore: new AuditedPageStore(destinationBacking),
    received: new ReceivedMap(pageCount),
    guest,
    devices,
    audit,
    kernelPages,
    hostCpu,
    staleFaults,
  };
}

/**
 * The source engine's view of its pages: audited with virtio-mem (unplugged reads) or KVM's
 * manual protect (a page about to be sent CLEARs its chunk first).
 */
function sourceEngineStore(backing: TrackableBacking, virtioMem: boolean, faults: StaleFaultHost | null): TrackableBacking | AuditedPageStore {
  const log = faults?.log ?? null;
  const manualProtect = log !== null && log.faults.manualProtect;
  if (!virtioMem && !manualProtect) return backing;
  const store = new AuditedPageStore(backing);
  if (manualProtect) store.onRead = (p) => log.beforeSend(p);
  return store;
}

/**
 * The kernel's data at boot (image, page tables, struct pages, page cache): pages
 * [0, kernelDataBytes / 4096) of the source get content, below the rings at `ringStart`.
 * Written to the backing directly: before `migrate`, the dirty log does not matter.
 */
function writeKernelData(backing: TrackableBacking, kernelDataBytes: number, ringStart: number): void {
  const pages = Math.min(Math.ceil(kernelDataBytes / TARGET_PAGE_SIZE), ringStart);
  for (let p = 0; p < pages; p++) backing.bumpPage(p);
}

/**
 * Memory the kernel keeps at the top of boot RAM (memblock allocates top-down: the struct page
 * array, page tables): taken out of the allocator and given content, so it is never free and
 * is sent as data, last in the scan.
 */
function reserveTop(guest: Guest, backing: TrackableBacking, topBytes: number, bootRamPages: number): void {
  const pages = Math.floor(topBytes / TARGET_PAGE_SIZE);
  if (pages === 0) return;
  const start = bootRamPages - pages;
  if (!guest.allocator.reserveRange(start, bootRamPages)) throw new Error(`guest.reserved-top: pages [${start}, ${bootRamPages}) are not free at boot`);
  for (let p = start; p < bootRamPages; p++) backing.bumpPage(p);
}

/**
 * Free memory the hint driver cannot take: in each of the first 4 MiB blocks above reserved
 * (as many as `fragmentedBytes` needs), the last page is kept by the kernel (given content),
 * so the block's other pages never coalesce into a 4 MiB block. Lowest first: the allocator
 * hands them out first. Of their free pages, `zeroBytes` worth (spread evenly over the blocks,
 * just below each pinned page) are taken out of the allocator too and stay zero: memory that
 * the guest's movable allocations do not reach (ZONE_DMA, the free rest of unmovable
 * pageblocks), which the scan meets as zero pages among the boot data.
 */
function fragment(guest: Guest, backing: TrackableBacking, fragmentedBytes: number, zeroBytes: number, reservedPages: number): number {
  const blocks = Math.ceil(fragmentedBytes / (MAX_ORDER_PAGES * TARGET_PAGE_SIZE));
  const zeroPages = Math.floor(zeroBytes / TARGET_PAGE_SIZE);
  if (zeroPages > blocks * (MAX_ORDER_PAGES - 1)) throw new Error(`guest.fragmented-zero: ${zeroPages} pages do not fit in the free pages of ${blocks} fragmented blocks`);
  const first = Math.ceil(reservedPages / MAX_ORDER_PAGES);
  for (let i = 0; i < blocks; i++) {
    const pinned = (first + i + 1) * MAX_ORDER_PAGES - 1;
    const zero = Math.floor(((i + 1) * zeroPages) / blocks) - Math.floor((i * zeroPages) / blocks);
    if (!guest.allocator.reserveRange(pinned - zero, pinned + 1)) throw new Error(`guest.fragmented: pages [${pinned - zero}, ${pinned + 1}) are not free at boot`);
    backing.bumpPage(pinned);
  }
  return first + blocks;
}

/**
 * The kernel's boot data spread through RAM (`kernel-data-layout: spread`), as a Linux guest
 * has it after physical KASLR placed the kernel and the allocator placed its page cache:
 * `blocks` whole 4 MiB blocks, evenly spaced over the 4 MiB blocks [firstBlock, endBlock),
 * taken out of the allocator and given content. Whole blocks leave the memory the hint driver
 * can take as it was.
 */
function spreadKernelData(guest: Guest, backing: TrackableBacking, blocks: number, firstBlock: number, endBlock: number): void {
  if (blocks === 0) return;
  const span = endBlock - firstBlock;
  if (blocks > span) throw new Error(`guest.kernel-data: ${blocks} blocks of 4 MiB do not fit in the ${span} free blocks`);
  for (let i = 0; i < blocks; i++) {
    const start = (firstBlock + Math.floor(((i + 0.5) * span) / blocks)) * MAX_ORDER_PAGES;
    const end = start + MAX_ORDER_PAGES;
    if (!guest.allocator.reserveRange(start, end)) throw new Error(`guest.kernel-data: pages [${start}, ${end}) are not free at boot`);
    for (let p = start; p < end; p++) backing.bumpPage(p);
  }
}
