/**
 * Helpers of the real-mode VM tests: a VM from a command line, polling with a deadline, the
 * incrementer oracle over every vCPU's region, a page-by-page comparison of two VMs' RAM, and
 * a TCP relay whose connections a test can kill.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
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

/**
 * A TCP relay to `targetPort`; `cut` resets every connection it carries. With `dropReturnPath`
 * the bytes from the target back to the client are swallowed (a return path that hangs).
 */
export async function relay(targetPort: number, options: { dropReturnPath?: boolean } = {}): Promise<{ uri: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    if (options.dropReturnPath === true) upstream.resume();
    else upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    uri: `tcp:127.0.0.1:${port}`,
    cut: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The port of a `tcp:HOST:PORT` URI. */
export function portOf(uri: string): number {
  return Number(uri.slice(uri.lastIndexOf(':') + 1));
}
