/**
 * The parts of a real-mode VM, built from its command line: guest RAM (a SharedArrayBuffer
 * BytesBacking), the dirty log and the present map the vCPU threads share, the RAM block list
 * (boot RAM named as QEMU names it, then a virtio-mem region named after its memdev), the guest
 * model and the devices, and the vCPU plans.
 *
 * A VM started for an incoming migration builds its guest model without drivers: its RAM and
 * device state will come from the source, and a driver probing now would write rings into
 * memory the migration overwrites (see host-devices.ts for what that leaves out). The
 * allocator is built all the same, so the vCPUs get the source's regions (guest-plan.ts).
 *
 * A VM with neither vCPUs nor devices (QEMU's `-M none`) has no guest model at all.
 */
import { Guest } from '../guest/guest.ts';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { DirtyLog } from '../memory/dirty-log.ts';
import { DirtyTrackingMemory } from '../memory/dirty-tracking-memory.ts';
import { RamBlockList } from '../memory/ram-block.ts';
import { ReceivedMap } from '../memory/received-map.ts';
import { WrittenPages } from '../memory/written-pages.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { buildGuest, planVcpus } from './guest-plan.ts';
import { HostDevices, type HostDeviceCallbacks } from './host-devices.ts';
import { loadBackendFile } from './memory-backend.ts';
import { PageCacheHost } from './page-cache.ts';
import type { VcpuPlan } from './vcpu-worker.ts';
import type { VmCommandLine } from './vm-args.ts';

export interface VmMachine {
  readonly backing: BytesBacking;
  readonly dirtyLog: DirtyLog;
  /** The pages ever written since the machine was built (attached to `dirtyLog`). */
  readonly written: WrittenPages;
  /** The destination's received map, shared with the vCPUs as their present map. */
  readonly received: ReceivedMap;
  readonly blocks: RamBlockList;
  /** Guest RAM with dirty logging (devices and drivers write through it). */
  readonly memory: DirtyTrackingMemory;
  readonly guest: Guest | null;
  readonly devices: HostDevices;
  readonly plans: readonly VcpuPlan[];
  /** The vCPUs' page caches (kernel-build), serviced from the guest's allocator; or null. */
  readonly pageCaches: PageCacheHost | null;
}

/** Touches every page of guest RAM without changing it (one word per page). */
function preallocate(backing: BytesBacking): void {
  const words = backing.words;
  for (let w = 0; w < words.length; w += 1024) words[w] |= 0;
}

/** Builds the machine of `config` (see the module comment). */
export function buildMachine(config: VmCommandLine, callbacks: HostDeviceCallbacks): VmMachine {
  const vmem = config.virtioMem;
  const backing = new BytesBacking(config.ramSizeBytes + (vmem?.regionSizeBytes ?? 0), { shared: true });
  const dirtyLog = new DirtyLog(backing.pageCount);
  const written = new WrittenPages(dirtyLog);
  const backend = config.memoryBackend;
  if (backend !== null) {
    // The file's content is written straight into RAM, past the dirty log.
    const loadedBytes = loadBackendFile(backend, backing);
    written.markRange(0, Math.ceil(loadedBytes / TARGET_PAGE_SIZE));
  }
  // prealloc=on (QEMU's): the kernel maps every page now rather than at the first write.
  if (backend?.prealloc === true) preallocate(backing);
  const received = new ReceivedMap(backing.pageCount);
  const blocks = vmem === null
    ? RamBlockList.single(config.ramBlockName, config.ramSizeBytes)
    : new RamBlockList([
      { name: config.ramBlockName, offsetBytes: 0, sizeBytes: config.ramSizeBytes },
      { name: vmem.memdev, offsetBytes: vmem.addrBytes, sizeBytes: vmem.regionSizeBytes },
    ]);
  const devices = new HostDevices(config.balloon, config.ramSizeBytes, callbacks, vmem);
  const incoming = config.incoming !== null;
  const needsGuest = config.vcpus > 0 || config.balloon !== null || vmem !== null;
  const bootRamBytes = config.ramSizeBytes;
  let guest: Guest | null = null;
  let memory: DirtyTrackingMemory;
  if (!needsGuest) {
    memory = new DirtyTrackingMemory(backing, dirtyLog);
  } else if (incoming) {
    guest = buildGuest({ backing, dirtyLog, bootRamBytes, seed: config.seed });
    memory = guest.memory;
    devices.build(memory);
  } else {
    guest = buildGuest({ backing, dirtyLog, bootRamBytes, seed: config.seed, devices: (m) => devices.build(m) });
    memory = guest.memory;
  }
  const plans = guest === null ? [] : planVcpus(guest, config.workload, config.vcpus, config.seed);
  const cacheBuffers = plans.flatMap((p) => (p.pageCache === null ? [] : [p.pageCache]));
  const pageCaches = guest === null || cacheBuffers.length === 0 ? null : new PageCacheHost(guest.allocator, cacheBuffers);
  return { backing, dirtyLog, written, received, blocks, memory, guest, devices, plans, pageCaches };
}
