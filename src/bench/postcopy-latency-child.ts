/**
 * One VM of the two-process postcopy latency run (postcopy-latency.ts), forked with IPC:
 *   dest SIZE_MIB PREEMPT                          → {listening, uri}, then {dest-done, report}
 *   source SIZE_MIB PREEMPT URI POSTCOPY_BYTES_PER_SEC → {source-done, report}
 * PREEMPT is 1 or 0. CPU time is the whole process's (vCPU worker threads included). The
 * process exits by itself once its VM is closed, so a `--cpu-prof` profile gets written; a
 * close that has not let it exit within EXIT_GRACE_MS ends it with process.exit (one such hang
 * of a destination process in close was seen once in this round and is not explained yet).
 */
import { destReport, listenDest, runSource, startLatencyVm, type ChildMessage } from './postcopy-latency.ts';
import { installNativeZeroTest } from '../host/native-zero.ts';

installNativeZeroTest(); // as the CLI does (lib/zero-range.ts)

const EXIT_GRACE_MS = 10_000;

/** From the VM's close on, the process has EXIT_GRACE_MS to exit by itself. */
function armExitDeadline(): void {
  setTimeout(() => {
    process.stderr.write(`postcopy-latency-child: still alive ${EXIT_GRACE_MS} ms after its VM began to close; exiting\n`);
    process.exit(process.exitCode ?? 0);
  }, EXIT_GRACE_MS).unref();
}

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

function cpuMs(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
}

async function main(): Promise<void> {
  const [role, size, preempt, uri, postcopyBytesPerSec] = process.argv.slice(2);
  if (process.send === undefined || (role !== 'dest' && role !== 'source')) throw new Error('usage (forked with IPC): postcopy-latency-child.ts dest|source SIZE_MIB 0|1 [URI BYTES_PER_SEC]');
  const vm = await startLatencyVm(Number(size), preempt === '1', role === 'dest');
  try {
    if (role === 'dest') {
      await send({ kind: 'listening', uri: await listenDest(vm) });
      await send({ kind: 'dest-done', report: await destReport(vm, cpuMs()) });
    } else {
      const report = await runSource(vm, uri, Number(postcopyBytesPerSec));
      await send({ kind: 'source-done', report: { ...report, cpuMs: cpuMs() } });
    }
  } finally {
    armExitDeadline();
    await vm.close();
  }
}

main().then(
  () => process.disconnect?.(),
  async (error: unknown) => {
    await send({ kind: 'error', message: (error as Error).message });
    process.exitCode = 1;
    process.disconnect?.();
  },
);
