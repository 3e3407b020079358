/**
 * HMP through human-monitor-command: QEMU 7.2's output layouts (checked live against QEMU's
 * own `info` output for the same data when QEMU is installed), the refuse policy's two lines,
 * and the text parsers (sizes, C integers, expressions, flags).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireQemu } from '../harness/skip.ts';
import { startQemu } from '../harness/qemu.ts';
import type { MigrationParametersQmp } from '../core/params.ts';
import type { MigrationInfoQmp } from '../core/stats.ts';
import type { VmController } from './controller.ts';
import { QmpCommandError } from './errors.ts';
import { FakeVmController } from './fake-vm-controller.ts';
import { Cursor, getExpr, parseHmpArguments, qemuStrtosz, qemuStrtou64 } from './hmp-args.ts';
import { formatInfoMigrate, formatInfoMigrateParameters } from './hmp-format.ts';
import { runHmp } from './hmp.ts';

const REFUSE_DETAIL = "virtio-balloon: 'free-page-hint' does not support postcopy";
const crlf = (lines: readonly string[]): string => lines.map((l) => `${l}\r\n`).join('');

test('refuse policy: migrate_set_capability postcopy-ram on prints the detail line, then the error', () => {
  const vm = new FakeVmController({ incomingDefer: true, postcopyProbeFailure: REFUSE_DETAIL });
  assert.equal(runHmp(vm, 'migrate_set_capability postcopy-ram on'), `${REFUSE_DETAIL}\r\nError: Postcopy is not supported\r\n`);
  assert.equal(vm.capabilities['postcopy-ram'], false);
  assert.equal(runHmp(new FakeVmController({ incomingDefer: true }), 'migrate_set_capability postcopy-ram on'), '');
});

test('info status in each run state', () => {
  const vm = new FakeVmController();
  assert.equal(runHmp(vm, 'info status'), 'VM status: running\r\n');
  vm.stop();
  assert.equal(runHmp(vm, 'info status'), 'VM status: paused\r\n');
  vm.cont();
  vm.migrate({ uri: 'exec:cat' });
  vm.completeMigration();
  assert.equal(runHmp(vm, 'info status'), 'VM status: paused (postmigrate)\r\n');
  assert.equal(runHmp(new FakeVmController({ incomingDefer: true }), 'info status'), 'VM status: paused (inmigrate)\r\n');
});

test('info migrate after a completed precopy (layout of a QEMU 7.2.22 run)', () => {
  const info: MigrationInfoQmp = {
    status: 'completed',
    'setup-time': 1,
    downtime: 2,
    'total-time': 6,
    ram: {
      total: 16777216, 'postcopy-requests': 0, 'dirty-sync-count': 2, 'multifd-bytes': 0, 'pages-per-second': 0,
      'downtime-bytes': 0, 'page-size': 4096, remaining: 0, 'postcopy-bytes': 0, mbps: 60.232, transferred: 36876,
      'dirty-sync-missed-zero-copy': 0, 'precopy-bytes': 36876, duplicate: 4096, 'dirty-pages-rate': 0, skipped: 0,
      'normal-bytes': 0, normal: 0,
    },
  };
  // Recorded from `info migrate` of QEMU 7.2.22 after `migrate exec:cat>/dev/null` on -M none -m 16M.
  const qemu =
    'globals:\r\nstore-global-state: on\r\nonly-migratable: off\r\nsend-configuration: on\r\nsend-section-footer: on\r\n' +
    'decompress-error-check: on\r\nclear-bitmap-shift: 18\r\nMigration status: completed\r\ntotal time: 6 ms\r\n' +
    'downtime: 2 ms\r\nsetup: 1 ms\r\ntransferred ram: 36 kbytes\r\nthroughput: 60.23 mbps\r\nremaining ram: 0 kbytes\r\n' +
    'total ram: 16384 kbytes\r\nduplicate: 4096 pages\r\nskipped: 0 pages\r\nnormal: 0 pages\r\nnormal bytes: 0 kbytes\r\n' +
    'dirty sync count: 2\r\npage size: 4 kbytes\r\nmultifd bytes: 0 kbytes\r\npages-per-second: 0\r\nprecopy ram: 36 kbytes\r\n';
  assert.equal(crlf(formatInfoMigrate(info)), qemu);
  assert.equal(
    crlf(formatInfoMigrate({ 'socket-address': [{ port: '45005', ipv4: true, host: '127.0.0.1', type: 'inet' }] })).split('\r\n').slice(7).join('\n'),
    'socket address: [\n\ttcp:127.0.0.1:45005\n]\n',
  );
});

test('info balloon, info migrate_capabilities, info version', () => {
  const vm = new FakeVmController({ balloon: true });
  assert.equal(runHmp(vm, 'info balloon'), 'balloon: actual=16\r\n');
  assert.equal(runHmp(new FakeVmController(), 'info balloon'), 'Error: No balloon device has been activated\r\n');
  assert.match(runHmp(vm, 'info migrate_capabilities') as string, /^xbzrle: off\r\nrdma-pin-all: off\r\n[\s\S]*postcopy-preempt: off\r\n$/);
  assert.equal(runHmp(vm, 'info version'), '7.2.0livemig (fake VM)\r\n');
});

test('migrate_set_parameter: sizes with suffixes, MiB default for max-bandwidth', () => {
  const vm = new FakeVmController();
  assert.equal(runHmp(vm, 'migrate_set_parameter max-bandwidth 64M'), '');
  assert.equal(vm.parameters.maxBandwidthBytesPerSec, 64 * 1024 * 1024);
  assert.equal(runHmp(vm, 'migrate_set_parameter max-bandwidth 8'), '');
  assert.equal(vm.parameters.maxBandwidthBytesPerSec, 8 * 1024 * 1024);
  assert.equal(runHmp(vm, 'migrate_set_parameter downtime-limit 500'), '');
  assert.equal(vm.parameters.downtimeLimitMs, 500);
  assert.equal(runHmp(vm, 'migrate_set_parameter tls-creds "a b"'), '');
  assert.equal(vm.parameters.tlsCreds, 'a b');
  assert.equal(runHmp(vm, 'migrate_set_parameter compress-wait-thread off'), '');
  assert.equal(vm.parameters.compressWaitThread, false);
});

test('text parsers: qemu_strtosz, qemu_strtou64, expressions, flags', () => {
  assert.equal(qemuStrtosz('64M'), 64n << 20n);
  assert.equal(qemuStrtosz('64'), 64n);
  assert.equal(qemuStrtosz('64', 'M'), 64n << 20n);
  assert.equal(qemuStrtosz('1.5G'), 3n << 29n);
  assert.equal(qemuStrtosz('1.k'), 1024n);
  assert.equal(qemuStrtosz('0x10'), 16n);
  assert.equal(qemuStrtosz('1e'), 1n << 60n);
  for (const bad of ['64MB', '64MiB', '-1', '1e3', '1.5', '0x10k', 'abc', '', '16E']) assert.equal(qemuStrtosz(bad), null, bad);
  assert.equal(qemuStrtou64('0x5'), 5n);
  assert.equal(qemuStrtou64('010'), 8n);
  assert.equal(qemuStrtou64('300'), 300n);
  assert.equal(qemuStrtou64('-1'), (1n << 64n) - 1n);
  for (const bad of ['5k', '1.0', '08', '']) assert.equal(qemuStrtou64(bad), null, bad);
  assert.equal(getExpr(new Cursor('(1+2)*3')), 9n);
  assert.equal(getExpr(new Cursor("'a' | 0x100")), 0x161n);
  assert.equal(getExpr(new Cursor('~0')), -1n);
  assert.throws(() => getExpr(new Cursor('1/0')), /division by zero/);
  assert.deepEqual(parseHmpArguments(new Cursor('-d -r tcp:1:2'), 'detach:-d,blk:-b,inc:-i,resume:-r,uri:s', 'migrate'), {
    detach: true,
    resume: true,
    uri: 'tcp:1:2',
  });
  assert.throws(() => parseHmpArguments(new Cursor('-x u'), 'detach:-d,uri:s', 'migrate'), /migrate: unsupported option -x/);
});

test('HMP over an asynchronous controller', async () => {
  const vm = new FakeVmController();
  const slow = Object.create(vm) as VmController;
  slow.queryStatus = async () => vm.queryStatus();
  slow.migrateSetCapabilities = async () => {
    throw new QmpCommandError('GenericError', 'Postcopy is not supported', [REFUSE_DETAIL]);
  };
  assert.equal(await runHmp(slow, 'info status'), 'VM status: running\r\n');
  assert.equal(await runHmp(slow, 'migrate_set_capability postcopy-ram on'), `${REFUSE_DETAIL}\r\nError: Postcopy is not supported\r\n`);
});

/** Splits QEMU's HMP text into lines. */
function linesOf(text: string): string[] {
  assert.ok(text.endsWith('\r\n') || text === '', JSON.stringify(text));
  return text === '' ? [] : text.slice(0, -2).split('\r\n');
}

test('info migrate and info migrate_parameters match QEMU for QEMU\'s own data', { timeout: 120_000 }, async (t) => {
  if (requireQemu(t) === null) return;
  const source = await startQemu({ name: 'hmp-source', args: ['-M', 'none', '-m', '16M', '-nodefaults', '-display', 'none'] });
  const destination = await startQemu({ name: 'hmp-destination', args: ['-M', 'none', '-m', '16M', '-nodefaults', '-display', 'none', '-incoming', 'defer'] });
  try {
    const qmp = source.qmp;
    await qmp.execute('migrate-set-parameters', { 'downtime-limit': 123, 'max-bandwidth': 1234567, 'tls-hostname': 'x y', 'announce-step': 16 });
    const params = await qmp.execute<MigrationParametersQmp>('query-migrate-parameters');
    assert.deepEqual(formatInfoMigrateParameters(params), linesOf(await qmp.hmp('info migrate_parameters')));
    // A failed migration with an error description.
    await qmp.execute('migrate', { uri: 'tcp:127.0.0.1:1' });
    await qmp.waitMigration(['failed'], 10_000);
    assert.deepEqual(formatInfoMigrate(await qmp.execute<MigrationInfoQmp>('query-migrate')), linesOf(await qmp.hmp('info migrate')));
    // A completed precopy with RAM statistics.
    await qmp.execute('migrate', { uri: 'exec:cat > /dev/null' });
    const done = await qmp.waitMigration(['completed', 'failed'], 30_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(formatInfoMigrate(done as MigrationInfoQmp), linesOf(await qmp.hmp('info migrate')));
    // A destination listening on TCP.
    await destination.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const listening = await destination.qmp.execute<MigrationInfoQmp>('query-migrate');
    assert.deepEqual(formatInfoMigrate(listening), linesOf(await destination.qmp.hmp('info migrate')));
  } finally {
    await source.stop();
    await destination.stop();
  }
});
