// Live migration between QEMU 7.2 and livemig over loopback TCP, both ways.
// (f) A running QEMU `-M none` whose RAM is a memory-backend-file holding a known pattern
//     migrates to `livemig-qemu -incoming defer` (the compat binary, started and driven by the
//     same harness that drives QEMU); pmemsave over livemig's QMP returns the pattern, page
//     for page, and the destination runs.
// (g) A livemig VM with a running incrementer vCPU migrates to a QEMU `-M none` destination;
//     QEMU's pmemsave returns exactly the source's RAM at the stop, and its bytes pass the
//     incrementer oracle.
// Both need qemu-system-x86_64 (skipped locally without it, failing in CI: harness/skip.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requireQemu } from '../harness/skip.ts';
import { startQemu, type QemuProcess } from '../harness/qemu.ts';
import { mismatchedPages, writePatternFile } from '../harness/ram-pattern.ts';
import { makeTempDir, removeTempDir } from '../harness/ram-image.ts';
import type { MigrationInfo } from '../harness/qmp-client.ts';
import { BASE_ARGS, LIVEMIG_QEMU, listeningUri, startQemuToLivemig } from '../harness/livemig-interop.ts';
import { MiB } from '../lib/units.ts';
import { VCPU_STATE_PAGE } from './vcpu-control.ts';
import { oracleChecks, startVm, waitFor } from './vm.test-util.ts';

const SIZE = 256 * MiB;
const BASE = BASE_ARGS;
const UNCAPPED = 100 * 1024 ** 3;

test('(f) QEMU 7.2 migrates live over TCP to livemig-qemu; pmemsave shows the pattern', async (t) => {
  if (requireQemu(t) === null) return;
  const dir = makeTempDir('livemig-interop-');
  const started: QemuProcess[] = [];
  try {
    const { source, dest } = await startQemuToLivemig(dir, SIZE, started);
    const capabilities = [{ capability: 'events', state: true }];
    for (const q of [dest, source]) await q.qmp.execute('migrate-set-capabilities', { capabilities });
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNCAPPED });
    await dest.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    assert.deepEqual(await source.qmp.execute('query-status'), { running: true, singlestep: false, status: 'running' });
    await source.qmp.execute('migrate', { uri: await listeningUri(dest) });
    const done = await source.qmp.waitMigration(['completed', 'failed', 'cancelled'], 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const landed = await dest.qmp.waitMigration(['completed', 'failed'], 60_000);
    assert.equal(landed.status, 'completed', dest.stderr);
    assert.equal((await dest.qmp.execute<{ status: string }>('query-status')).status, 'running');
    const bytes = await dest.pmemsave(0, SIZE);
    assert.deepEqual(mismatchedPages(bytes, 0, 'pattern'), []);
    t.diagnostic(`QEMU → livemig: ${done['total-time']} ms, downtime ${done.downtime} ms, ${(done.ram as { transferred: number }).transferred} bytes`);
  } finally {
    for (const q of started.reverse()) await q.stop();
    removeTempDir(dir);
  }
});

test('(g) livemig migrates live over TCP to QEMU 7.2 -M none; QEMU pmemsave equals the source RAM', async (t) => {
  if (requireQemu(t) === null) return;
  let qemu: QemuProcess | null = null;
  // A plain `-m` guest (RAM block `ram`, as QEMU names it) whose incrementer dirties 64 MiB.
  const { vm: source } = await startVm(['-M', 'none', '-m', '256M', '--vcpus', '1', '--workload', 'incrementer:64M:128M', '--seed', '9']);
  try {
    qemu = await startQemu({ name: 'qemu-destination', watchdogMs: 120_000, args: ['-M', 'none', '-m', '256M', ...BASE, '-incoming', 'defer'] });
    await qemu.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await qemu.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    source.migrateSetParameters({ maxBandwidthBytesPerSec: BigInt(UNCAPPED) });
    // One whole pass first, so every page of the region is non-zero (sent as a full page).
    await waitFor(() => source.machine.backing.readLe32(VCPU_STATE_PAGE * 4096 + 8) >= 1, 10_000, 'a full incrementer pass');
    assert.equal(source.runState, 'running');
    source.migrate({ uri: await listeningUri(qemu) });
    // On a failure, say why on both sides: the source's error and the destination QEMU's stderr.
    const outcome = await source.outgoing!.whenFinished();
    assert.equal(outcome, 'completed', `${source.outgoing!.error?.message}; QEMU: ${qemu.stderr}`);
    const landed = await qemu.qmp.waitMigration(['completed', 'failed'], 60_000);
    assert.equal(landed.status, 'completed', qemu.stderr);
    assert.equal(source.runState, 'postmigrate');
    const bytes = await qemu.pmemsave(0, SIZE);
    assert.ok(Buffer.compare(Buffer.from(bytes), Buffer.from(source.machine.backing.bytes)) === 0, 'QEMU holds the source RAM at the stop');
    for (const check of oracleChecks(source, bytes)) assert.ok(check.ok, check.detail);
    const info = source.queryMigrate();
    t.diagnostic(`livemig → QEMU: ${info['total-time']} ms, downtime ${info.downtime} ms, ${info.ram?.transferred} bytes, ${info.ram?.normal} full pages`);
  } finally {
    await qemu?.stop();
    await source.close();
  }
});

// (h) Postcopy, QEMU 7.2 source → livemig-qemu destination: precopy starts throttled, the
//     source switches with migrate-start-postcopy while pages remain, both sides pass through
//     postcopy-active to completed, and the destination's RAM is the pattern page for page.
test('(h) QEMU 7.2 postcopy to livemig-qemu: postcopy-active then completed; pmemsave shows the pattern', async (t) => {
  if (requireQemu(t) === null) return;
  const size = 64 * MiB;
  const dir = makeTempDir('livemig-interop-postcopy-');
  const started: QemuProcess[] = [];
  try {
    const pattern = join(dir, 'pattern.ram');
    writePatternFile(pattern, size);
    const dest = await startQemu({
      name: 'livemig-qemu', qemuPath: LIVEMIG_QEMU, watchdogMs: 120_000,
      args: ['-M', 'none,memory-backend=mem', '-m', '64M', ...BASE, '-object', `memory-backend-ram,id=mem,size=${size}`, '-incoming', 'defer'],
    });
    started.push(dest);
    const source = await startQemu({
      name: 'qemu-source', watchdogMs: 120_000,
      args: ['-M', 'none,memory-backend=mem', '-m', '64M', ...BASE, '-object', `memory-backend-file,id=mem,size=${size},mem-path=${pattern},share=on,prealloc=on`],
    });
    started.push(source);
    const capabilities = [{ capability: 'events', state: true }, { capability: 'postcopy-ram', state: true }];
    for (const q of [dest, source]) await q.qmp.execute('migrate-set-capabilities', { capabilities });
    // 16 MiB/s: a quarter of the RAM at most goes before the switch.
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 16 * MiB });
    await dest.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    await source.qmp.execute('migrate', { uri: await listeningUri(dest) });
    await source.qmp.waitMigration(['active'], 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await source.qmp.execute('migrate-start-postcopy');
    const seen = new Set<string>();
    const deadline = Date.now() + 60_000;
    let src: MigrationInfo;
    let dst: MigrationInfo;
    for (;;) {
      src = await source.qmp.execute<MigrationInfo>('query-migrate');
      dst = await dest.qmp.execute<MigrationInfo>('query-migrate');
      seen.add(`src:${src.status}`).add(`dst:${dst.status}`);
      if (['completed', 'failed', 'cancelled'].includes(src.status ?? '') && ['completed', 'failed'].includes(dst.status ?? '')) break;
      assert.ok(Date.now() < deadline, `postcopy did not finish: ${JSON.stringify({ src, dst })}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(src.status, 'completed', JSON.stringify(src));
    assert.equal(dst.status, 'completed', dest.stderr);
    assert.ok(seen.has('src:postcopy-active') && seen.has('dst:postcopy-active'), [...seen].join(' '));
    const ram = src.ram as { 'postcopy-bytes': number; 'precopy-bytes': number };
    assert.ok(ram['postcopy-bytes'] > 0, JSON.stringify(ram));
    assert.equal((await dest.qmp.execute<{ status: string }>('query-status')).status, 'running');
    const bytes = await dest.pmemsave(0, size);
    assert.deepEqual(mismatchedPages(bytes, 0, 'pattern'), []);
    t.diagnostic(`QEMU → livemig postcopy: ${src['total-time']} ms, precopy ${ram['precopy-bytes']} B, postcopy ${ram['postcopy-bytes']} B`);
  } finally {
    for (const q of started.reverse()) await q.stop();
    removeTempDir(dir);
  }
});
