// A measurement, not run by default (set LIVEMIG_BENCH=1): livemig → livemig precopy of a
// 1 GiB guest (LIVEMIG_BENCH_SIZE to change) between two `livemig vm` processes on loopback
// TCP, driven over QMP as an operator would. The source's RAM is a non-zero pattern (every page
// a full PAGE record); with LIVEMIG_BENCH_WORKLOAD (e.g. incrementer:128M:256M) one vCPU
// dirties memory during the run. The destination gets LIVEMIG_BENCH_SETTLE_MS (default 1000)
// after its start before `migrate`. Reports GB/s (stream bytes over total-time), wall time to the
// destination's completion, downtime and passes; spot-checks destination pages with pmemsave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QmpClient } from '../harness/qmp-client.ts';
import { mismatchedPages, writePatternFile } from '../harness/ram-pattern.ts';
import { makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import { parseSizeBytes } from '../lib/units.ts';

const LIVEMIG = fileURLToPath(new URL('../../bin/livemig.js', import.meta.url));

function spawnVm(args: readonly string[]): { child: ChildProcess; stderr: () => string } {
  let stderr = '';
  const child = spawn(process.execPath, [LIVEMIG, 'vm', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, stderr: () => stderr };
}

test('bench: livemig → livemig precopy between two processes', { skip: process.env.LIVEMIG_BENCH !== '1' }, async (t) => {
  const size = parseSizeBytes(process.env.LIVEMIG_BENCH_SIZE ?? '1G') ?? 0;
  const workload = process.env.LIVEMIG_BENCH_WORKLOAD || undefined;
  const dir = makeTempDir('livemig-bench-');
  const children: ChildProcess[] = [];
  const clients: QmpClient[] = [];
  const pattern = join('/dev/shm', `livemig-bench-${process.pid}.ram`);
  try {
    writePatternFile(pattern, size);
    const machine = ['-M', 'none,memory-backend=mem'];
    const vcpu = workload === undefined ? [] : ['--vcpus', '1', '--workload', workload];
    const source = spawnVm([...machine, '-object', `memory-backend-file,id=mem,size=${size},mem-path=${pattern}`, ...vcpu, '-qmp', `unix:${join(dir, 's.sock')},server=on,wait=off`]);
    const dest = spawnVm([...machine, '-object', `memory-backend-ram,id=mem,size=${size}`, ...vcpu, '-incoming', 'tcp:127.0.0.1:0', '-qmp', `unix:${join(dir, 'd.sock')},server=on,wait=off`]);
    children.push(source.child, dest.child);
    const src = await QmpClient.connectUnix(join(dir, 's.sock'), { timeoutMs: 60_000 });
    const dst = await QmpClient.connectUnix(join(dir, 'd.sock'), { timeoutMs: 60_000 });
    clients.push(src, dst);
    removeTempDir(pattern);
    const caps = { capabilities: [{ capability: 'events', state: true }] };
    await src.execute('migrate-set-capabilities', caps);
    await dst.execute('migrate-set-capabilities', caps);
    await src.execute('migrate-set-parameters', { 'max-bandwidth': 100 * 1024 ** 3 });
    const listening = await dst.execute<{ 'socket-address': Array<{ port: string }> }>('query-migrate');
    // The destination touches its RAM while it waits (vm-core.ts); give it a moment, as an
    // operator starting the destination before `migrate` does.
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.LIVEMIG_BENCH_SETTLE_MS ?? 1000)));
    const started = process.hrtime.bigint();
    await src.execute('migrate', { uri: `tcp:127.0.0.1:${listening['socket-address'][0].port}` });
    await dst.waitEvent('MIGRATION', (e) => ['completed', 'failed'].includes((e.data as { status: string }).status), 120_000);
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const info = await src.waitMigration(['completed', 'failed'], 60_000);
    assert.equal(info.status, 'completed', source.stderr());
    assert.equal((await dst.execute<{ status: string }>('query-migrate')).status, 'completed', dest.stderr());
    const ram = info.ram as { transferred: number; normal: number; duplicate: number; 'dirty-sync-count': number };
    const totalMs = info['total-time'] as number;
    t.diagnostic(`size ${size} B, workload ${workload ?? 'none'}: transferred ${ram.transferred} B in ${totalMs} ms = ${(ram.transferred / totalMs / 1e6).toFixed(2)} GB/s; ` +
      `wall to destination completed ${wallMs.toFixed(0)} ms = ${(size / wallMs / 1e6).toFixed(2)} GB of guest RAM/s; downtime ${info.downtime} ms; passes ${ram['dirty-sync-count']}; normal ${ram.normal}, zero ${ram.duplicate}`);
    if (workload === undefined) {
      const probe = join(dir, 'probe.bin');
      for (const offset of [0, size / 2, size - 4 * 1024 * 1024]) {
        await dst.execute('pmemsave', { val: offset, size: 4 * 1024 * 1024, filename: probe });
        const { readFileSync } = await import('node:fs');
        assert.deepEqual(mismatchedPages(new Uint8Array(readFileSync(probe)), offset, 'pattern'), []);
      }
    }
    await src.execute('quit');
    await dst.execute('quit');
  } finally {
    for (const c of clients) c.close();
    for (const child of children) if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    removeTempDir(pattern);
    removeTempDir(dir);
  }
});
