/**
 * Dispatch over FakeVmController: every refusal with QEMU 7.2's class and text (negotiation,
 * lookup, OOB, argument visitors, and the migration and balloon commands without a migration
 * or device), the refuse policy's QMP error, events only for negotiated clients, controller
 * bugs mapped to GenericError, and ordering with an asynchronous controller (in-band in order,
 * exec-oob overtaking, flow control).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmController } from './controller.ts';
import { QmpDispatcher } from './dispatch.ts';
import { QmpCommandError } from './errors.ts';
import { FakeVmController } from './fake-vm-controller.ts';
import { QmpSession } from './session.ts';
import { drive } from './session-driver.test-util.ts';

const REFUSE_DETAIL = "virtio-balloon: 'free-page-hint' does not support postcopy";

function errorOf(reply: Record<string, unknown>): { class: string; desc: string } {
  assert.ok('error' in reply, `expected an error, got ${JSON.stringify(reply)}`);
  return reply.error as { class: string; desc: string };
}

function expectError(d: ReturnType<typeof drive>, request: Record<string, unknown>, errorClass: string, desc: string): void {
  assert.deepEqual(errorOf(d.call(request)), { class: errorClass, desc }, JSON.stringify(request));
}

test('negotiation: before it only qmp_capabilities exists; after it qmp_capabilities is refused', () => {
  const d = drive();
  expectError(d, { execute: 'query-status' }, 'CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
  expectError(d, { execute: 'no-such' }, 'CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
  expectError(d, { execute: 'qmp_capabilities', arguments: { enable: ['foo'] } }, 'GenericError', "Parameter 'null' does not accept value 'foo'");
  assert.equal(d.session.negotiated, false);
  assert.deepEqual(d.call({ execute: 'qmp_capabilities', id: 'n' }), { return: {}, id: 'n' });
  assert.equal(d.session.negotiated, true);
  assert.equal(d.session.state.oobEnabled, false);
  expectError(d, { execute: 'qmp_capabilities' }, 'CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
  expectError(d, { execute: 'no-such' }, 'CommandNotFound', 'The command no-such has not been found');
});

test('OOB: only after enabling, only for migrate-pause and migrate-recover', () => {
  const plain = drive();
  plain.negotiate();
  expectError(plain, { 'exec-oob': 'migrate-pause' }, 'GenericError', "QMP input member 'exec-oob' is unexpected");
  const d = drive();
  d.negotiate(['oob']);
  assert.equal(d.session.state.oobEnabled, true);
  expectError(d, { 'exec-oob': 'query-status' }, 'GenericError', 'The command query-status does not support OOB');
  expectError(d, { 'exec-oob': 'migrate-pause' }, 'GenericError', 'migrate-pause is currently only supported during postcopy-active state');
  expectError(d, { 'exec-oob': 'migrate-recover', arguments: { uri: 'tcp:1:2' } }, 'GenericError', 'Migrate recover can only be run when postcopy is paused.');
});

test('argument visitors: QEMU 7.2 texts', () => {
  const d = drive();
  d.negotiate();
  expectError(d, { execute: 'migrate', arguments: { uri: 5 } }, 'GenericError', "Invalid parameter type for 'uri', expected: string");
  expectError(d, { execute: 'migrate', arguments: {} }, 'GenericError', "Parameter 'uri' is missing");
  expectError(d, { execute: 'migrate', arguments: { uri: 'tcp:x:1', blk: 3, zzz: 1 } }, 'GenericError', "Invalid parameter type for 'blk', expected: boolean");
  expectError(d, { execute: 'migrate', arguments: { uri: 'tcp:x:1', zzz: 1 } }, 'GenericError', "Parameter 'zzz' is unexpected");
  expectError(d, { execute: 'query-status', arguments: { x: 1 } }, 'GenericError', "Parameter 'x' is unexpected");
  assert.deepEqual(errorOf(JSON.parse(d.send('{"execute":"balloon","arguments":{"value":1.0}}')[0])), {
    class: 'GenericError',
    desc: "Invalid parameter type for 'value', expected: integer",
  });
  expectError(d, { execute: 'migrate-continue', arguments: { state: 'bogus' } }, 'GenericError', "Parameter 'state' does not accept value 'bogus'");
  expectError(
    d,
    { execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'no-such-cap', state: true }] } },
    'GenericError',
    "Parameter 'capability' does not accept value 'no-such-cap'",
  );
  expectError(
    d,
    { execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'events', state: 1 }] } },
    'GenericError',
    "Invalid parameter type for 'capabilities[0].state', expected: boolean",
  );
  expectError(d, { execute: 'migrate-set-parameters', arguments: { 'downtime-limit': 3000000 } }, 'GenericError', "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms");
  expectError(d, { execute: 'migrate-set-parameters', arguments: { 'multifd-channels': 0 } }, 'GenericError', "Parameter 'multifd_channels' expects a value between 1 and 255");
  expectError(d, { execute: 'human-monitor-command', arguments: { 'command-line': 'info status', 'cpu-index': 1 } }, 'GenericError', "Parameter 'cpu-index' expects a CPU number");
});

test('migration commands without a migration, and the balloon without a device', () => {
  const d = drive();
  d.negotiate();
  expectError(d, { execute: 'migrate-start-postcopy' }, 'GenericError', 'Enable postcopy with migrate_set_capability before the start of migration');
  d.call({ execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'postcopy-ram', state: true }] } });
  expectError(d, { execute: 'migrate-start-postcopy' }, 'GenericError', 'Postcopy must be started after migration has been started');
  expectError(d, { execute: 'migrate-incoming', arguments: { uri: 'tcp:0:4444' } }, 'GenericError', "'-incoming' was not specified on the command line");
  expectError(d, { execute: 'balloon', arguments: { value: 1 } }, 'DeviceNotActive', 'No balloon device has been activated');
  expectError(d, { execute: 'query-balloon' }, 'DeviceNotActive', 'No balloon device has been activated');
  expectError(d, { execute: 'migrate-continue', arguments: { state: 'pre-switchover' } }, 'GenericError', 'Migration not in expected state: none');
  expectError(d, { execute: 'migrate', arguments: { uri: 'tcp:1', resume: true } }, 'GenericError', 'Cannot resume if there is no paused migration');
  assert.deepEqual(d.call({ execute: 'migrate_cancel' }), { return: {} });
  expectError(d, { execute: 'migrate', arguments: { uri: 'nope:1' } }, 'GenericError', "Parameter 'uri' expects a valid migration protocol");
  assert.deepEqual(d.call({ execute: 'query-migrate' }), { return: { status: 'failed' } });
});

test('migration commands during and after a migration', () => {
  const d = drive();
  d.negotiate();
  assert.deepEqual(d.call({ execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } }), { return: {} });
  expectError(d, { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } }, 'GenericError', "There's a migration process in progress");
  expectError(d, { execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'events', state: true }] } }, 'GenericError', "There's a migration process in progress");
  assert.deepEqual(d.call({ execute: 'migrate-set-parameters', arguments: { 'max-bandwidth': 1048576 } }), { return: {} });
  d.vm.completeMigration();
  expectError(d, { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } }, 'GenericError', "Can't migrate the vm that was paused due to previous migration");
  const incoming = drive({ incomingDefer: true });
  incoming.negotiate();
  expectError(incoming, { execute: 'migrate', arguments: { uri: 'tcp:1:2' } }, 'GenericError', 'Guest is waiting for an incoming migration');
  assert.deepEqual(incoming.call({ execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:4444' } }), { return: {} });
  expectError(incoming, { execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:4444' } }, 'GenericError', 'The incoming migration has already been started');
});

test('refuse policy: QMP says only "Postcopy is not supported"', () => {
  const d = drive({ incomingDefer: true, postcopyProbeFailure: REFUSE_DETAIL });
  d.negotiate();
  expectError(d, { execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'postcopy-ram', state: true }] } }, 'GenericError', 'Postcopy is not supported');
  // The source side never runs the probe.
  const source = drive({ postcopyProbeFailure: REFUSE_DETAIL });
  source.negotiate();
  assert.deepEqual(source.call({ execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'postcopy-ram', state: true }] } }), { return: {} });
});

test('events reach only negotiated clients, before the reply that caused them', () => {
  const d = drive();
  // An event while not negotiated is not delivered.
  d.vm.emit({ event: 'RESUME' });
  assert.equal(d.out.length, 1);
  d.negotiate();
  const stop = d.send('{"execute":"stop"}');
  assert.equal(stop.length, 2);
  assert.match(stop[0], /^\{"timestamp": \{"seconds": \d+, "microseconds": \d+\}, "event": "STOP"\}$/);
  assert.equal(stop[1], '{"return": {}}');
  // Already paused: no event, as in QEMU.
  assert.deepEqual(d.send('{"execute":"stop"}'), ['{"return": {}}']);
  const cont = d.send('{"execute":"cont"}');
  assert.equal(cont.length, 2);
  assert.match(cont[0], /"event": "RESUME"/);
  assert.equal(cont[1], '{"return": {}}');
});

test('a controller bug becomes a GenericError and is reported', () => {
  const vm = new FakeVmController();
  vm.queryMigrate = () => {
    throw new TypeError('boom');
  };
  const bugs: string[] = [];
  const out: string[] = [];
  const session = new QmpSession(new QmpDispatcher(vm, { onInternalError: (command, error) => bugs.push(`${command}: ${String(error)}`) }), { send: (l) => out.push(l) });
  session.receive(new TextEncoder().encode('{"execute":"qmp_capabilities"}\n{"execute":"query-migrate","id":1}\n'));
  assert.equal(out.at(-1), '{"id": 1, "error": {"class": "GenericError", "desc": "boom"}}');
  assert.deepEqual(bugs, ['query-migrate: TypeError: boom']);
});

/** A controller whose migrate and migratePause answer after a delay. */
function slowVm(): { vm: VmController; release: () => void } {
  const vm = new FakeVmController();
  vm.setSourceStatus('postcopy-active');
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const slow = Object.create(vm) as VmController;
  slow.queryMigrate = async () => {
    await gate;
    return vm.queryMigrate();
  };
  return { vm: slow, release };
}

test('async controller: in-band replies in order, exec-oob overtakes, flow control', async () => {
  const { vm, release } = slowVm();
  const out: string[] = [];
  const flow: boolean[] = [];
  const session = new QmpSession(new QmpDispatcher(vm), { send: (l) => out.push(l), maxQueuedRequests: 3, onFlowControl: (p) => flow.push(p) });
  const send = (line: string): void => session.receive(new TextEncoder().encode(`${line}\n`));
  send('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}');
  send('{"execute":"query-migrate","id":"slow"}');
  send('{"execute":"query-status","id":"after"}');
  send('{"execute":"query-status","id":"after2"}');
  send('{"execute":"query-status","id":"after3"}');
  send('{"exec-oob":"migrate-pause","id":"oob"}');
  assert.deepEqual(flow, [true]);
  assert.equal(out.length, 2);
  assert.equal(out[1], '{"return": {}, "id": "oob"}');
  release();
  await session.whenIdle();
  assert.deepEqual(
    out.slice(2).map((l) => (JSON.parse(l) as { id: string }).id),
    ['slow', 'after', 'after2', 'after3'],
  );
  assert.deepEqual(flow, [true, false]);
});

test('QmpCommandError reports are kept for HMP and not sent over QMP', () => {
  const error = new QmpCommandError('GenericError', 'Postcopy is not supported', [REFUSE_DETAIL]);
  assert.deepEqual(error.toBody(), { class: 'GenericError', desc: 'Postcopy is not supported' });
  assert.deepEqual(error.reports, [REFUSE_DETAIL]);
});
