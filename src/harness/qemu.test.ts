/**
 * The harness against real QEMU 7.2: the QMP greeting's shape, query-status, typed QMP errors,
 * events, HMP, pmemsave of a file-backed guest, a QEMU → file → QEMU round trip and the
 * error text of a failed incoming load. Skipped locally without QEMU, failing in CI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QmpError } from './qmp-client.ts';
import { QemuMigrationError, startQemu, type QemuProcess } from './qemu.ts';
import { makePatternRam, makeRandomRam, makeTempDir, noneMachineWithFileArgs, removeTempDir, sha256Hex, writeRamFile } from './ram-image.ts';
import { requireQemu } from './skip.ts';

const BASE_ARGS = ['-nodefaults', '-display', 'none'];
const MiB = 1024 * 1024;

/** Runs `body` with started QEMUs that are always stopped, and a temp dir always removed. */
async function withQemus(
  argsList: ReadonlyArray<readonly string[]>,
  body: (qemus: QemuProcess[], dir: string) => Promise<void>,
  dir = makeTempDir('livemig-harness-test-'),
): Promise<void> {
  const qemus: QemuProcess[] = [];
  try {
    for (const args of argsList) qemus.push(await startQemu({ args, watchdogMs: 90_000 }));
    await body(qemus, dir);
  } finally {
    for (const qemu of qemus) await qemu.stop();
    removeTempDir(dir);
  }
}

test('QMP greeting, query-status, typed errors, events and HMP on -M none', async (t) => {
  if (requireQemu(t) === null) return;
  await withQemus([['-M', 'none', '-m', '16M', ...BASE_ARGS, '-S']], async ([qemu]) => {
    const greeting = qemu.qmp.greeting;
    assert.equal(greeting.QMP.version.qemu.major, 7);
    assert.equal(typeof greeting.QMP.version.qemu.minor, 'number');
    assert.ok(Array.isArray(greeting.QMP.capabilities));
    assert.deepEqual(await qemu.qmp.execute('query-status'), { status: 'prelaunch', singlestep: false, running: false });

    await assert.rejects(qemu.qmp.execute('no-such-command'), (error: unknown) => {
      assert.ok(error instanceof QmpError);
      assert.equal(error.class, 'CommandNotFound');
      assert.equal(error.desc, 'The command no-such-command has not been found');
      return true;
    });
    await assert.rejects(qemu.qmp.execute('migrate-incoming', { uri: 'exec:true' }), (error: unknown) => {
      assert.ok(error instanceof QmpError);
      assert.equal(error.desc, "'-incoming' was not specified on the command line");
      return true;
    });

    assert.match(await qemu.qmp.hmp('info status'), /VM status: paused \(prelaunch\)/);
    await qemu.qmp.execute('cont');
    const resume = await qemu.qmp.waitEvent('RESUME', () => true, 10_000);
    assert.equal(resume.data, undefined);
    assert.equal((await qemu.qmp.execute<{ status: string }>('query-status')).status, 'running');
  });
});

test('pmemsave of a shared memory-backend-file returns the file pattern', async (t) => {
  if (requireQemu(t) === null) return;
  const dir = makeTempDir('livemig-harness-test-');
  const pattern = makePatternRam(4 * MiB);
  const memPath = writeRamFile(join(dir, 'pattern.ram'), pattern);
  const args = [...noneMachineWithFileArgs({ id: 'patmem', sizeBytes: pattern.length, memPath }), ...BASE_ARGS, '-S'];
  await withQemus([args], async ([qemu]) => {
    const all = await qemu.pmemsave(0, pattern.length);
    assert.equal(sha256Hex(all), sha256Hex(pattern));
    const page5 = await qemu.pmemsave(5 * 4096, 4096);
    assert.deepEqual(page5, pattern.subarray(5 * 4096, 6 * 4096));
  }, dir);
});

test('QEMU → file → QEMU round trip with migrateToFile and loadFromFile', async (t) => {
  if (requireQemu(t) === null) return;
  const dir = makeTempDir('livemig-harness-test-');
  const ram = makeRandomRam(8 * MiB, { seed: 42, zeroPageEvery: 5 });
  const memPath = writeRamFile(join(dir, 'source.ram'), ram);
  const source = [...noneMachineWithFileArgs({ id: 'mem', sizeBytes: ram.length, memPath }), ...BASE_ARGS, '-S'];
  const destination = ['-M', 'none,memory-backend=mem', '-m', '8M', '-object', 'memory-backend-ram,id=mem,size=8M', ...BASE_ARGS, '-incoming', 'defer'];
  await withQemus([source, destination], async ([src, dst], tempDir) => {
    const streamPath = join(tempDir, 'roundtrip.stream');
    const info = await src.migrateToFile(streamPath, 60_000);
    assert.equal(info.status, 'completed');
    assert.equal(info.ram?.total, 8 * MiB);
    const loaded = await dst.loadFromFile(streamPath, 60_000);
    assert.equal(loaded.migration.status, 'completed');
    // The source ran with -S, so its globalstate section carries `prelaunch`, which a 7.2
    // destination applies as-is instead of starting the VM.
    assert.equal(loaded.runstate, 'prelaunch');
    assert.equal(sha256Hex(await dst.pmemsave(0, ram.length)), sha256Hex(ram));
  }, dir);
});

test('a failed incoming load reports QEMU exit and its stderr text', async (t) => {
  if (requireQemu(t) === null) return;
  const dir = makeTempDir('livemig-harness-test-');
  const badPath = join(dir, 'bad.stream');
  writeFileSync(badPath, Uint8Array.of(1, 2, 3, 4, 0, 0, 0, 3));
  const emptyPath = join(dir, 'empty.stream');
  writeFileSync(emptyPath, new Uint8Array(0));
  await withQemus([['-M', 'none', '-m', '16M', ...BASE_ARGS, '-incoming', 'defer']], async ([qemu]) => {
    // 7.2 would wait forever on an exec: command that exits without output; refused up front.
    await assert.rejects(qemu.loadFromFile(emptyPath, 30_000), /file is empty/);
    await assert.rejects(qemu.loadFromFile(join(dir, 'absent.stream'), 30_000), /no such file/);
    await assert.rejects(qemu.loadFromFile(badPath, 30_000), (error: unknown) => {
      assert.ok(error instanceof QemuMigrationError);
      assert.equal(error.status, 'failed');
      assert.match(error.stderr, /Not a migration stream/);
      assert.match(error.stderr, /load of migration failed: Invalid argument/);
      return true;
    });
    assert.deepEqual((await qemu.exited()).code, 1);
  }, dir);
});

test('the watchdog kills a QEMU that outlives its time', async (t) => {
  if (requireQemu(t) === null) return;
  const qemu = await startQemu({ args: ['-M', 'none', '-m', '16M', ...BASE_ARGS, '-S'], watchdogMs: 300 });
  try {
    const qemuPid = qemu.qemuPid;
    assert.ok(qemuPid !== null && qemuPid > 0);
    const exit = await qemu.exited();
    assert.equal(qemu.watchdogFired, true);
    // Killed directly, or through the `timeout` wrapper, which then exits with 128 + 9.
    assert.ok(exit.signal === 'SIGKILL' || exit.code === 137, JSON.stringify(exit));
    assert.throws(() => process.kill(qemuPid, 0), /ESRCH/);
  } finally {
    await qemu.stop();
  }
});
