/**
 * A livemig destination fed by a QEMU 7.2 source: QEMU `-M none` whose RAM is the pattern
 * file (every page a PAGE record) migrates over loopback TCP to `livemig-qemu` (the compat
 * binary, driven by the same harness as QEMU: host/qemu-interop.test.ts case f). Timed as the
 * qemu group times QEMU → QEMU (harness runPrecopy: `migrate` → destination `completed`), so
 * the two are comparable row for row.
 */
import { fileURLToPath } from 'node:url';
import { startQemu, type QemuProcess } from '../harness/qemu.ts';
import { runPrecopy, type PrecopyRun } from '../harness/qemu-migrate.ts';
import type { MigrationInfo } from '../harness/qmp-client.ts';
import { MiB } from '../lib/units.ts';
import { benchSettleMs } from './registry.ts';

const LIVEMIG_QEMU = fileURLToPath(new URL('../../bin/livemig-qemu.js', import.meta.url));
const BASE = ['-nodefaults', '-display', 'none'];
const UNCAPPED_BANDWIDTH = 100 * 1024 ** 3;

/** One QEMU → livemig precopy of `sizeBytes` (a multiple of 1 MiB) from `patternPath`. */
export async function qemuToLivemigOnce(sizeBytes: number, patternPath: string, clockNs?: () => number): Promise<PrecopyRun> {
  const machine = ['-M', 'none,memory-backend=mem', '-m', `${sizeBytes / MiB}M`, ...BASE];
  const started: QemuProcess[] = [];
  try {
    const destination = await startQemu({
      name: 'livemig-qemu', qemuPath: LIVEMIG_QEMU, watchdogMs: 300_000,
      args: [...machine, '-object', `memory-backend-ram,id=mem,size=${sizeBytes}`, '-incoming', 'defer'],
    });
    started.push(destination);
    const source = await startQemu({
      name: 'qemu-source', watchdogMs: 300_000,
      args: [...machine, '-object', `memory-backend-file,id=mem,size=${sizeBytes},mem-path=${patternPath},share=on,prealloc=on`],
    });
    started.push(source);
    const capabilities = [{ capability: 'events', state: true }];
    for (const q of [destination, source]) await q.qmp.execute('migrate-set-capabilities', { capabilities });
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNCAPPED_BANDWIDTH });
    await destination.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const info = await destination.qmp.execute<MigrationInfo>('query-migrate');
    const port = Number((info['socket-address'] as Array<{ port: string }> | undefined)?.[0]?.port);
    if (!Number.isInteger(port) || port <= 0) throw new Error(`livemig-qemu: no listening port in query-migrate: ${JSON.stringify(info)}`);
    // As for the livemig pair: the destination prepares its RAM while it waits (vm-core.ts).
    await new Promise((resolve) => setTimeout(resolve, benchSettleMs()));
    return await runPrecopy({ source, destination, uri: `tcp:127.0.0.1:${port}`, stop: async () => undefined }, sizeBytes, 300_000, clockNs);
  } finally {
    for (const q of started.reverse()) await q.stop();
  }
}
