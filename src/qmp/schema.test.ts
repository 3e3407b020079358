/**
 * The schema table: every command's example is replayed against FakeVmController in its
 * fixture and must produce exactly the documented reply, which must also satisfy the command's
 * return schema; every event example satisfies its schema; every command name is one QEMU 7.2
 * has (checked live with QEMU's query-commands when QEMU is installed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireQemu } from '../harness/skip.ts';
import { startQemu } from '../harness/qemu.ts';
import { FakeVmController } from './fake-vm-controller.ts';
import { COMMANDS, COMMAND_NAMES, EVENTS, type ExampleFixture } from './schema.ts';
import { drive, type Driven } from './session-driver.test-util.ts';

function fixture(name: ExampleFixture): Driven {
  switch (name) {
    case 'fresh':
      return drive();
    case 'incoming-defer':
      return drive({ incomingDefer: true });
    case 'balloon':
      return drive({ balloon: true });
    case 'postcopy-active': {
      const d = drive();
      d.vm.capabilities = { ...d.vm.capabilities, 'postcopy-ram': true };
      d.vm.migrate({ uri: 'tcp:127.0.0.1:4444' });
      d.vm.migrateStartPostcopy();
      return d;
    }
    case 'postcopy-paused-destination': {
      const d = drive({ incomingDefer: true });
      d.vm.setDestinationStatus('postcopy-paused');
      return d;
    }
    case 'pre-switchover': {
      const d = drive();
      d.vm.migrate({ uri: 'tcp:127.0.0.1:4444' });
      d.vm.setSourceStatus('pre-switchover');
      return d;
    }
  }
}

for (const name of COMMAND_NAMES) {
  test(`example of ${name} replays`, () => {
    const spec = COMMANDS[name];
    const example = spec.example;
    const d = fixture(example.fixture);
    if (name !== 'qmp_capabilities') d.negotiate();
    const request: Record<string, unknown> = { execute: name, id: 'example' };
    if (example.arguments !== undefined) request.arguments = example.arguments;
    const reply = d.call(request);
    const expected = typeof example.return === 'function' ? (example.return as () => unknown)() : example.return;
    assert.deepEqual(reply, { return: expected, id: 'example' });
    const parsed = spec.returns.safeParse(reply.return);
    assert.ok(parsed.success, parsed.success ? '' : parsed.error.message);
  });
}

test('the return schemas accept the fake VM in other states too', () => {
  const vm = new FakeVmController({ balloon: true });
  vm.capabilities = { ...vm.capabilities, events: true };
  vm.migrate({ uri: 'tcp:127.0.0.1:4444' });
  assert.ok(COMMANDS['query-migrate'].returns.safeParse(vm.queryMigrate()).success);
  vm.completeMigration();
  assert.ok(COMMANDS['query-migrate'].returns.safeParse(vm.queryMigrate()).success);
  assert.ok(COMMANDS['query-status'].returns.safeParse(vm.queryStatus()).success);
  assert.ok(COMMANDS['query-balloon'].returns.safeParse(vm.queryBalloon()).success);
});

test('event examples satisfy their schemas', () => {
  for (const [name, event] of Object.entries(EVENTS)) {
    if (event.data === null) continue;
    assert.ok(event.data.safeParse(event.example).success, name);
  }
});

test('only migrate-pause and migrate-recover allow OOB', () => {
  assert.deepEqual(
    COMMAND_NAMES.filter((name) => COMMANDS[name].allowOob),
    ['migrate-pause', 'migrate-recover'],
  );
});

test('every command we implement exists in QEMU 7.2', { timeout: 60_000 }, async (t) => {
  if (requireQemu(t) === null) return;
  const qemu = await startQemu({ name: 'schema', args: ['-M', 'none', '-m', '16M', '-nodefaults', '-display', 'none'] });
  try {
    const theirs = new Set((await qemu.qmp.execute<Array<{ name: string }>>('query-commands')).map((c) => c.name));
    assert.deepEqual(COMMAND_NAMES.filter((name) => !theirs.has(name)), []);
  } finally {
    await qemu.stop();
  }
});
