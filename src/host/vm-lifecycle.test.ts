// One VM's control plane without a migration: run states and their events, QEMU's refusals
// for commands the state does not allow, pmemsave, and a memory-backend-file (loaded at start;
// written back at exit with share=on, left alone with share=off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB } from '../lib/units.ts';
import type { VmEvent } from './vm-types.ts';
import { VmCommandError } from './vm-types.ts';
import { sleep, startVm } from './vm.test-util.ts';

function refusal(body: () => unknown): string {
  try {
    body();
  } catch (error) {
    assert.ok(error instanceof VmCommandError, `expected VmCommandError, got ${error}`);
    return `${error.errorClass}: ${error.desc}`;
  }
  return assert.fail('accepted');
}

test('run states, events and refusals follow QEMU', async () => {
  const { vm } = await startVm(['-m', '32M', '-S', '--vcpus', '1', '--workload', 'random:8M:4M']);
  try {
    const events: string[] = [];
    vm.subscribe((e: VmEvent) => events.push(e.event));
    assert.deepEqual(vm.queryStatus(), { running: false, singlestep: false, status: 'prelaunch' });
    vm.stop();
    assert.equal(vm.runState, 'prelaunch', 'stop does nothing before the guest ran');
    vm.cont();
    assert.equal(vm.runState, 'running');
    await sleep(50);
    assert.ok(vm.vcpus!.totalPageWrites() > 0);
    vm.stop();
    assert.equal(vm.runState, 'paused');
    vm.cont();
    assert.deepEqual(events, ['RESUME', 'STOP', 'RESUME']);
    assert.equal(refusal(() => vm.queryBalloon()), 'DeviceNotActive: No balloon device has been activated');
    assert.equal(refusal(() => vm.migrateStartPostcopy()), 'GenericError: Enable postcopy with migrate_set_capability before the start of migration');
    assert.equal(refusal(() => vm.migrate({ uri: 'bogus:1' })), "GenericError: Parameter 'uri' expects a valid migration protocol");
    await assert.rejects(vm.migrateIncoming({ uri: 'tcp:127.0.0.1:0' }), /'-incoming' was not specified on the command line/);
    vm.migrateSetParameters({ tlsCreds: 'nope' });
    assert.equal(refusal(() => vm.migrate({ uri: 'tcp:127.0.0.1:1' })), "GenericError: No TLS credentials with id 'nope'");
    assert.equal(vm.queryVersion().qemu.major, 7);
  } finally {
    await vm.close();
  }
});

test('an incoming VM refuses migrate and a second migrate-incoming', async () => {
  const { vm } = await startVm(['-m', '16M', '-incoming', 'defer']);
  try {
    assert.equal(vm.runState, 'inmigrate');
    assert.equal(refusal(() => vm.migrate({ uri: 'tcp:127.0.0.1:1' })), 'GenericError: Guest is waiting for an incoming migration');
    await vm.migrateIncoming({ uri: 'tcp:127.0.0.1:0' });
    assert.equal(vm.queryMigrate().status, 'setup');
    assert.ok(Array.isArray(vm.queryMigrate()['socket-address']));
    await assert.rejects(vm.migrateIncoming({ uri: 'tcp:127.0.0.1:0' }), /The incoming migration has already been started/);
  } finally {
    await vm.close();
  }
});

test('pmemsave and memory-backend-file load and write-back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-lifecycle-'));
  try {
    const shared = join(dir, 'shared.ram');
    const priv = join(dir, 'private.ram');
    const content = Buffer.alloc(8 * MiB, 0x5a);
    writeFileSync(shared, content);
    writeFileSync(priv, content);
    for (const [path, share] of [[shared, 'on'], [priv, 'off']] as const) {
      const { vm } = await startVm(['-M', 'none,memory-backend=m', '-object', `memory-backend-file,id=m,size=8M,mem-path=${path},share=${share}`, '--vcpus', '1', '--workload', 'random:64M:1M']);
      assert.equal(vm.machine.backing.bytes[8 * MiB - 1], 0x5a, 'the file was loaded');
      await sleep(100);
      vm.stop();
      const out = join(dir, 'dump.bin');
      await vm.pmemsave({ val: 4096, size: 2 * 4096, filename: out });
      assert.deepEqual(new Uint8Array(readFileSync(out)), vm.machine.backing.bytes.slice(4096, 3 * 4096));
      const atExit = vm.machine.backing.bytes.slice();
      await vm.close();
      const file = readFileSync(path);
      if (share === 'on') assert.ok(file.equals(Buffer.from(atExit)), 'share=on writes guest RAM back');
      else assert.ok(file.equals(content), 'share=off leaves the file alone');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
