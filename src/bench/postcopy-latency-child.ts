/**
 * One VM of the two-process postcopy latency run (postcopy-latency.ts), forked with IPC:
 *   dest SIZE_MIB PREEMPT                          → {listening, uri}, then {dest-done, report};
 *                                                     closes once the parent sends any message
 *   source SIZE_MIB PREEMPT URI POSTCOPY_BYTES_PER_SEC → {source-done, report}
 * PREEMPT is 1 or 0. CPU time is the whole process's (vCPU worker threads included). The
 * process ends with process.exit once its VM is closed (see the end of this file); the parent
 * kills a run whose children are not gone after RUN_TIMEOUT_MS (postcopy-latency.ts), and a
 * child whose parent is gone (its IPC channel closed) exits.
 */
import { destReport, listenDest, runSource, startLatencyVm, type ChildMessage } from './postcopy-latency.ts';
import { installNativeZeroTest } from '../host/native-zero.ts';
import type { LivemigVm } from '../host/vm.ts';
import { enableHopTrace } from '../host/hop-trace.ts';
import { schedDelta, threadSched } from './schedstat.ts';

installNativeZeroTest(); // as the CLI does (lib/zero-range.ts)
// The child runs in its own session (postcopy-latency.ts, `detached`), so a Ctrl-C of the
// parent's terminal does not reach it: it ends when the parent's IPC channel goes.
process.once('disconnect', () => process.exit(1));
if (process.env.LIVEMIG_BENCH_HOPS === '1') enableHopTrace();


function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

function vcpuNames(vm: LivemigVm): Map<number, string> {
  return new Map((vm.vcpus?.threadIds ?? []).map((tid, i) => [tid, `vcpu${i}`]));
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
    const schedBefore = threadSched();
    if (role === 'dest') {
      const quit = new Promise<void>((resolve) => process.once('message', () => resolve()));
      await send({ kind: 'listening', uri: await listenDest(vm) });
      const report = await destReport(vm, cpuMs());
      await send({ kind: 'dest-done', report: { ...report, threads: schedDelta(schedBefore, threadSched(vcpuNames(vm))) } });
      // Closing now could drop SHUT before it left (and reset the connections under a source
      // that has not read it): the parent says when the source is done.
      await quit;
    } else {
      const report = await runSource(vm, uri, Number(postcopyBytesPerSec));
      await send({ kind: 'source-done', report: { ...report, cpuMs: cpuMs(), threads: schedDelta(schedBefore, threadSched(vcpuNames(vm))) } });
    }
  } finally {
    await vm.close();
  }
}

// process.exit, not an empty event loop: a natural exit was seen to spin in Node's
// Environment::CleanupHandles (perf: uv_run ← CleanupHandles ← FreeEnvironment) after the VM
// closed, so the child never ended. `--cpu-prof` profiles are still written on process.exit.
main().then(
  () => process.exit(0),
  async (error: unknown) => {
    await send({ kind: 'error', message: (error as Error).message });
    process.exit(1);
  },
);
