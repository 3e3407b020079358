/**
 * Helpers of the real-mode VM tests: a VM from a command line, polling with a deadline, the
 * incrementer oracle over every vCPU's region, and a page-by-page comparison of two VMs' RAM.
 */
import { checkIncrementer, comparePages, type IncrementerCheck, type PageComparison, type PageFilter } from '../guest/oracle.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import type { BytesBacking } from '../memory/bytes-backing.ts';
import { LIVEMIG_VM_OPTIONS, tokenizeQemuArgs } from './qemu-args.ts';
import { VCPU_STATE_PAGE, VCPU_STATE_SLOT_BYTES } from './vcpu-control.ts';
import { regionPage } from './vcpu-worker.ts';
import { interpretVmArgs, type VmCommandLine } from './vm-args.ts';
import { LivemigVm } from './vm.ts';

/** A VM command line from `livemig vm` arguments. */
export function vmConfig(args: readonly string[]): VmCommandLine {
  return interpretVmArgs(tokenizeQemuArgs(args, LIVEMIG_VM_OPTIONS));
}

/** Starts a VM whose reports are collected instead of printed. */
export async function startVm(args: readonly string[]): Promise<{ vm: LivemigVm; reports: string[] }> {
  const reports: string[] = [];
  const vm = await LivemigVm.start(vmConfig(args), { report: (line) => reports.push(line) });
  return { vm, reports };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every 5 ms until it holds; throws after `timeoutMs` with `what`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The incrementer cursor vCPU `vcpu` saved in the state page of `backing`. */
export function savedCursor(backing: BytesBacking, vcpu: number): number {
  return backing.readLe32(VCPU_STATE_PAGE * TARGET_PAGE_SIZE + vcpu * VCPU_STATE_SLOT_BYTES + 4);
}

/**
 * Runs the incrementer oracle over each vCPU's region of `vm`'s RAM (the plans are the same on
 * both sides of a migration), the edge expected at the cursor saved in the state page.
 */
export function oracleChecks(vm: LivemigVm, bytes: Uint8Array = vm.machine.backing.bytes): IncrementerCheck[] {
  return vm.machine.plans.map((plan, vcpu) => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const cursor = view.getUint32(VCPU_STATE_PAGE * TARGET_PAGE_SIZE + vcpu * VCPU_STATE_SLOT_BYTES + 4, true);
    return checkIncrementer((i) => bytes[regionPage(plan, i) * TARGET_PAGE_SIZE], plan.pageCount, { expectedEdgeIndex: cursor });
  });
}

/** Compares two VMs' RAM page by page, skipping `allowed` (pages free in the guest). */
export function compareRam(a: BytesBacking, b: BytesBacking, allowed?: PageFilter): PageComparison {
  return comparePages(a, b, { allowedToDiffer: allowed, pageEquals: (p) => a.pageEquals(b, p) });
}
