/**
 * What runs inside a real-mode VM: the guest model (guest/guest.ts: buddy allocator, balloon
 * driver) on the main thread, and one workload per vCPU thread over pages taken from the
 * guest's allocator, so the guest considers them in use and free page hinting never hands
 * them to the host.
 *
 * Determinism: the allocator is a pure model and the drivers take their rings from the kernel's
 * reserved memory, not from the allocator, so a VM built from the same command line (RAM size,
 * vCPUs, workload, seed) gives every vCPU the same pages. A migration destination relies on
 * that: its vCPUs continue over the same regions (the incrementer finds its cursor in the vCPU
 * state page, see vcpu-control.ts).
 *
 * Default sizes: an incrementer or random workload without a size takes half of the guest's
 * free memory; each vCPU gets an equal share of the size and of the rate.
 *
 * kernel-build (allocator churn) owns no region: each vCPU allocates and frees blocks through
 * its page cache (page-cache.ts) from the guest's allocator while it runs, so the pages it
 * frees become free in the guest, and free page hinting can give them to the host. It keeps
 * 60% of the guest's RAM allocated by default, as the simulator's kernel-build does.
 */
import type { GuestDevices } from '../guest/guest.ts';
import { Guest } from '../guest/guest.ts';
import { PageSet, type WorkloadSpec } from '../guest/workloads/index.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { BytesBacking } from '../memory/bytes-backing.ts';
import type { DirtyLog } from '../memory/dirty-log.ts';
import type { DirtyTrackingMemory } from '../memory/dirty-tracking-memory.ts';
import { createPageCacheBuffer } from './page-cache.ts';
import type { WorkloadChoice } from './vm-args.ts';
import type { VcpuPlan } from './vcpu-worker.ts';

/** Builds the guest model over the VM's RAM and dirty log. */
export function buildGuest(options: {
  readonly backing: BytesBacking;
  readonly dirtyLog: DirtyLog;
  /** Memory present at boot (default all); the rest is a virtio-mem region. */
  readonly bootRamBytes?: number;
  readonly seed: number;
  readonly devices?: (memory: DirtyTrackingMemory) => GuestDevices;
}): Guest {
  const { backing, dirtyLog, bootRamBytes, devices, seed } = options;
  return new Guest({ backing, dirtyLog, bootRamBytes, devices, workload: { kind: 'idle' }, seed });
}

/** A per-vCPU seed derived from the VM's seed. */
function vcpuSeed(seed: number, vcpu: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + vcpu * 0x85ebca6b + 1) >>> 0;
}

const EMPTY_REGION = new Int32Array(0);
/** kernel-build's default allocated share of RAM. */
const KERNEL_BUILD_USED_FRACTION = 0.6;

/** The plans of `vcpus` vCPUs running `choice` (see the module comment). */
export function planVcpus(guest: Guest, choice: WorkloadChoice, vcpus: number, seed: number): VcpuPlan[] {
  const plans: VcpuPlan[] = [];
  if (choice.kind === 'kernel-build') return planKernelBuild(guest, choice, vcpus, seed);
  const freeBytes = guest.freeBytes();
  const totalBytes = choice.kind === 'idle' ? 0 : choice.sizeBytes ?? Math.floor(freeBytes / 2);
  const pagesPerVcpu = Math.floor(totalBytes / TARGET_PAGE_SIZE / Math.max(1, vcpus));
  for (let vcpu = 0; vcpu < vcpus; vcpu++) {
    if (choice.kind === 'idle' || pagesPerVcpu === 0) {
      plans.push({ workload: { kind: 'idle' }, seed: vcpuSeed(seed, vcpu), blockPfns: EMPTY_REGION, blockOrder: 0, pageCount: 0, savesCursor: false, pageCache: null });
      continue;
    }
    const set = PageSet.allocate(guest.allocator, pagesPerVcpu, PageSet.orderFor(pagesPerVcpu));
    const blockCount = set.pageCount >>> set.blockOrder;
    const blockPfns = new Int32Array(blockCount);
    for (let b = 0; b < blockCount; b++) blockPfns[b] = set.pageAt(b << set.blockOrder);
    const rateBytesPerS = choice.rateBytesPerS / vcpus;
    const workload: WorkloadSpec = choice.kind === 'incrementer'
      ? { kind: 'incrementer', rateBytesPerS }
      : { kind: choice.kind, rateBytesPerS, sizeBytes: set.pageCount * TARGET_PAGE_SIZE };
    plans.push({ workload, seed: vcpuSeed(seed, vcpu), blockPfns, blockOrder: set.blockOrder, pageCount: set.pageCount, savesCursor: choice.kind === 'incrementer', pageCache: null });
  }
  return plans;
}

/** kernel-build: churn on every vCPU, each with its page cache (see the module comment). */
function planKernelBuild(guest: Guest, choice: WorkloadChoice & { kind: 'kernel-build' }, vcpus: number, seed: number): VcpuPlan[] {
  const usedBytes = choice.usedBytes ?? Math.floor(guest.pageCount * TARGET_PAGE_SIZE * KERNEL_BUILD_USED_FRACTION);
  const plans: VcpuPlan[] = [];
  for (let vcpu = 0; vcpu < vcpus; vcpu++) {
    const workload: WorkloadSpec = { kind: 'churn', usedTargetBytes: Math.floor(usedBytes / vcpus), rateBytesPerS: choice.rateBytesPerS / vcpus };
    plans.push({
      workload, seed: vcpuSeed(seed, vcpu), blockPfns: EMPTY_REGION, blockOrder: 0, pageCount: guest.pageCount, savesCursor: false,
      pageCache: createPageCacheBuffer(guest.pageCount),
    });
  }
  return plans;
}
