// `livemig vm` and `livemig-qemu` as processes. (1) Two `livemig vm` processes with running
// incrementer vCPUs, driven only over QMP (unix sockets): migrate over TCP completes, the
// run states and HMP `info status` are QEMU's, query-migrate on the destination shows the
// completed status, and `quit` ends both with status 0 and removes the pidfile. (2) Command
// line errors end `livemig-qemu` with QEMU's text and status 1, and --version prints a QEMU
// version line. (3) The npm QMP client node-qemu drives a livemig migration unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QMPClient } from 'node-qemu';
import { QmpClient } from '../harness/qmp-client.ts';
import { CapturedIo, EXIT_USAGE } from './io.ts';
import { LIVEMIG_VM_FLAVOUR, runVm } from './vm-command.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LIVEMIG = join(ROOT, 'bin/livemig.js');
const LIVEMIG_QEMU = join(ROOT, 'bin/livemig-qemu.js');

interface VmProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr: string;
}

function spawnVm(args: readonly string[]): VmProcess {
  const child = spawn(process.execPath, [LIVEMIG, 'vm', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const vm: VmProcess = { child, stderr: '', exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stderr?.on('data', (chunk: Buffer) => (vm.stderr += chunk.toString()));
  return vm;
}

function killByPid(vm: VmProcess): void {
  if (vm.child.exitCode === null && vm.child.pid !== undefined) {
    try {
      process.kill(vm.child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

test('two livemig vm processes migrate over TCP, driven over QMP', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-vmcmd-'));
  const guest = ['-m', '64M', '--vcpus', '1', '--workload', 'incrementer:16M:32M', '--seed', '4'];
  const source = spawnVm([...guest, '-qmp', `unix:${join(dir, 'src.sock')},server=on,wait=off`, '-pidfile', join(dir, 'src.pid')]);
  const dest = spawnVm([...guest, '-incoming', 'tcp:127.0.0.1:0', '-qmp', `unix:${join(dir, 'dst.sock')},server=on,wait=off`]);
  const clients: QmpClient[] = [];
  try {
    const src = await QmpClient.connectUnix(join(dir, 'src.sock'), { timeoutMs: 20_000 });
    const dst = await QmpClient.connectUnix(join(dir, 'dst.sock'), { timeoutMs: 20_000 });
    clients.push(src, dst);
    assert.equal(src.greeting.QMP.version.qemu.major, 7);
    assert.ok(existsSync(join(dir, 'src.pid')));
    assert.deepEqual(await dst.execute('query-status'), { running: false, singlestep: false, status: 'inmigrate' });
    const listening = await dst.execute<{ 'socket-address': Array<{ port: string }> }>('query-migrate');
    const uri = `tcp:127.0.0.1:${listening['socket-address'][0].port}`;
    await src.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await src.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 3 });
    await src.execute('migrate', { uri });
    const done = await src.waitMigration(['completed', 'failed', 'cancelled'], 30_000);
    assert.equal(done.status, 'completed', source.stderr);
    await src.waitEvent('MIGRATION', (e) => (e.data as { status: string }).status === 'completed', 5000);
    assert.equal((await dst.waitMigration(['completed', 'failed'], 30_000)).status, 'completed', dest.stderr);
    assert.equal(await src.hmp('info status'), 'VM status: paused (postmigrate)\r\n');
    assert.equal(await dst.hmp('info status'), 'VM status: running\r\n');
    await src.execute('quit');
    await dst.execute('quit');
    assert.equal(await source.exited, 0, source.stderr);
    assert.equal(await dest.exited, 0, dest.stderr);
    assert.ok(!existsSync(join(dir, 'src.pid')), 'the pidfile is removed at exit');
  } finally {
    for (const c of clients) c.close();
    killByPid(source);
    killByPid(dest);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('livemig-qemu refuses bad options with QEMU\'s text and prints a version', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [LIVEMIG_QEMU, ...args], { encoding: 'utf8', timeout: 30_000 });
  const bad = run(['-M', 'none', '-foo']);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, 'qemu-system-x86_64: -foo: invalid option\n');
  const smp = run(['-M', 'none', '-smp', '2']);
  assert.equal(smp.status, 1);
  assert.equal(smp.stderr, "qemu-system-x86_64: Invalid SMP CPUs 2. The max CPUs supported by machine 'none' is 1\n");
  const version = run(['--version']);
  assert.equal(version.status, 0);
  assert.match(version.stdout, /^QEMU emulator version 7\.2\.0 \(livemig [\d.]+\)\n/);
});

test('livemig vm: a bad command line is a usage error (exit 2), as for every livemig command', async () => {
  const io = new CapturedIo();
  assert.equal(await runVm(['-M', 'none', '-foo'], io, LIVEMIG_VM_FLAVOUR), EXIT_USAGE);
  assert.equal(io.stderr, 'livemig: -foo: invalid option\n');
});

test('node-qemu drives a livemig migration unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'livemig-nodeqemu-'));
  const guest = ['-m', '64M', '--vcpus', '1', '--workload', 'incrementer:16M:32M'];
  const source = spawnVm([...guest, '-qmp', `unix:${join(dir, 'src.sock')},server=on,wait=off`]);
  const dest = spawnVm([...guest, '-incoming', 'defer', '-qmp', `unix:${join(dir, 'dst.sock')},server=on,wait=off`]);
  const clients: QMPClient[] = [];
  try {
    // node-qemu does not retry a missing socket: wait for the harness client first.
    for (const name of ['src.sock', 'dst.sock']) (await QmpClient.connectUnix(join(dir, name), { timeoutMs: 20_000 })).close();
    const src = new QMPClient({ socketPath: join(dir, 'src.sock') });
    const dst = new QMPClient({ socketPath: join(dir, 'dst.sock') });
    clients.push(src, dst);
    await src.connect();
    await dst.connect();
    assert.equal((await src.queryStatus()).status, 'running');
    const statuses: string[] = [];
    dst.on('MIGRATION', (event: { status: string }) => statuses.push(event.status));
    await dst.migrateSetCapabilities([{ capability: 'events', state: true }]);
    await dst.migrateIncoming('tcp:127.0.0.1:0');
    const listening = (await dst.queryMigrate()) as { 'socket-address'?: Array<{ port: string }> };
    await src.migrateSetParameters({ 'max-bandwidth': 1024 ** 3 });
    await src.migrate({ uri: `tcp:127.0.0.1:${listening['socket-address']![0].port}` });
    const deadline = Date.now() + 30_000;
    let status = '';
    while (status !== 'completed' && status !== 'failed' && Date.now() < deadline) {
      status = ((await src.queryMigrate()) as { status?: string }).status ?? '';
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(status, 'completed', source.stderr);
    while (!statuses.includes('completed') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    // QEMU 7.2's destination sequence (vectors/qemu-7.2/qmp/events-destination-tcp.json).
    assert.deepEqual(statuses, ['setup', 'active', 'completed'], dest.stderr);
    assert.equal((await dst.queryStatus()).status, 'running');
  } finally {
    for (const c of clients) await c.close().catch(() => undefined);
    killByPid(source);
    killByPid(dest);
    rmSync(dir, { recursive: true, force: true });
  }
});
