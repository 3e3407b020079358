/**
 * Our replies diffed against real QEMU 7.2 replies (testdata/qemu-7.2/qmp): for every command
 * both implement, the same keys, JSON types and error classes (diffShape), the same values where
 * the state is the same (capabilities, parameters, status, error texts), and the same member
 * order on the wire (QEMU's QDict order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readVectorJson } from '../testing/testdata.ts';
import { diffShape, formatShapeDifferences } from './diff-shape.ts';
import type { FakeVmOptions } from './fake-vm-controller.ts';
import { drive, type Driven } from './session-driver.test-util.ts';

const vector = <T = unknown>(name: string): T => readVectorJson<T>(`qemu-7.2/qmp/${name}.json`);

function driven(options: FakeVmOptions = {}): Driven {
  const d = drive(options);
  d.negotiate();
  return d;
}

/** Sends `request`; returns the raw reply line and its parsed `return`. */
function ret(d: Driven, request: Record<string, unknown>): { line: string; value: unknown } {
  const lines = d.request(request).filter((l) => !l.startsWith('{"timestamp"'));
  assert.equal(lines.length, 1);
  const reply = JSON.parse(lines[0]) as { return?: unknown; error?: unknown };
  assert.ok('return' in reply, lines[0]);
  return { line: lines[0], value: reply.return };
}

function assertShape(ours: unknown, theirs: unknown, what: string): void {
  const differences = diffShape(ours, theirs);
  assert.equal(differences.length, 0, `${what}:\n${formatShapeDifferences(differences)}`);
}

/** Member order on the wire, recursively for objects (QEMU's vectors keep QEMU's order). */
function assertSameOrder(ours: unknown, theirs: unknown, what: string): void {
  if (typeof ours !== 'object' || ours === null || typeof theirs !== 'object' || theirs === null) return;
  if (Array.isArray(ours) && Array.isArray(theirs)) {
    if (theirs.length > 0) ours.forEach((item) => assertSameOrder(item, theirs[0], what));
    return;
  }
  const mine = Object.keys(ours).filter((k) => k in theirs);
  const qemu = Object.keys(theirs).filter((k) => k in ours);
  assert.deepEqual(mine, qemu, `${what}: member order`);
  for (const key of mine) assertSameOrder((ours as Record<string, unknown>)[key], (theirs as Record<string, unknown>)[key], `${what}.${key}`);
}

test('greeting: same shape and order', () => {
  const d = drive();
  const ours = JSON.parse(d.out[0]) as unknown;
  assertShape(ours, vector('greeting'), 'greeting');
  assertSameOrder(ours, vector('greeting'), 'greeting');
});

test('query-status: equal to QEMU in the same four states', () => {
  const fresh = driven();
  const before = ret(fresh, { execute: 'query-status' });
  assert.deepEqual(before.value, vector('query-status-before'));
  assertSameOrder(before.value, vector('query-status-before'), 'query-status');
  fresh.call({ execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } });
  fresh.vm.completeMigration();
  assert.deepEqual(ret(fresh, { execute: 'query-status' }).value, vector('query-status-after'));
  const incoming = driven({ incomingDefer: true });
  assert.deepEqual(ret(incoming, { execute: 'query-status' }).value, vector('query-status-incoming-before'));
  incoming.vm.runState = 'running';
  assert.deepEqual(ret(incoming, { execute: 'query-status' }).value, vector('query-status-incoming-after'));
});

test('query-migrate-capabilities and query-migrate-parameters: equal, same order', () => {
  const d = driven();
  const caps = ret(d, { execute: 'query-migrate-capabilities' });
  assert.deepEqual(caps.value, vector('query-migrate-capabilities'));
  assertSameOrder(caps.value, vector('query-migrate-capabilities'), 'capabilities');
  const params = ret(d, { execute: 'query-migrate-parameters' });
  assert.deepEqual(params.value, vector('query-migrate-parameters'));
  assertSameOrder(params.value, vector('query-migrate-parameters'), 'parameters');
});

test('query-migrate: the shapes of every recorded state', () => {
  const d = driven();
  assert.deepEqual(ret(d, { execute: 'query-migrate' }).value, vector('query-migrate-before'));
  d.call({ execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } });
  d.vm.clockNs += 1_500_000_000;
  const during = ret(d, { execute: 'query-migrate' }).value;
  assertShape(during, vector('query-migrate-during-precopy'), 'during precopy');
  assertSameOrder(during, vector('query-migrate-during-precopy'), 'during precopy');
  d.vm.completeMigration();
  const after = ret(d, { execute: 'query-migrate' }).value;
  assertShape(after, vector('query-migrate-after-tcp'), 'after tcp');
  assertShape(after, vector('query-migrate-after-exec'), 'after exec');
  assertSameOrder(after, vector('query-migrate-after-tcp'), 'after');

  const postcopy = driven();
  postcopy.call({ execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'postcopy-ram', state: true }] } });
  postcopy.call({ execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } });
  postcopy.call({ execute: 'migrate-start-postcopy' });
  assertShape(ret(postcopy, { execute: 'query-migrate' }).value, vector('query-migrate-postcopy-active-source'), 'postcopy source');

  const destination = driven({ incomingDefer: true });
  assert.deepEqual(ret(destination, { execute: 'query-migrate' }).value, vector('query-migrate-incoming-before'));
  destination.call({ execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:59495' } });
  destination.vm.setDestinationStatus('active');
  const incoming = ret(destination, { execute: 'query-migrate' }).value;
  assert.deepEqual(incoming, vector('query-migrate-incoming-during'));
  assertSameOrder(incoming, vector('query-migrate-incoming-during'), 'incoming during');
  destination.vm.setDestinationStatus('postcopy-active');
  assertShape(ret(destination, { execute: 'query-migrate' }).value, vector('query-migrate-postcopy-active-destination'), 'postcopy destination');
  destination.vm.setDestinationStatus('completed');
  assertShape(ret(destination, { execute: 'query-migrate' }).value, vector('query-migrate-incoming-after'), 'incoming after');
});

interface ErrorVector {
  readonly error: { readonly class: string; readonly desc: string };
}

test('error-replies.json: the same class and text for each recorded refusal', () => {
  const errors = vector<Record<string, unknown>>('error-replies');
  const expectSame = (d: Driven, request: Record<string, unknown>, key: string): void => {
    assert.deepEqual(d.call(request), { error: (errors[key] as ErrorVector).error }, key);
  };
  const completed = driven();
  completed.call({ execute: 'migrate', arguments: { uri: 'exec:cat' } });
  completed.vm.completeMigration();
  expectSame(completed, { execute: 'migrate-start-postcopy' }, 'migrate-start-postcopy without postcopy-ram (source, after completion)');
  expectSame(completed, { execute: 'migrate', arguments: { uri: 'exec:cat' } }, 'migrate again from a source in postmigrate');
  const d = driven();
  expectSame(d, { execute: 'migrate-incoming', arguments: { uri: 'tcp:0:1' } }, 'migrate-incoming on a non-incoming QEMU');
  expectSame(d, { execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'no-such-cap', state: true }] } }, 'migrate-set-capabilities unknown capability');
  expectSame(d, { execute: 'migrate-set-parameters', arguments: { 'downtime-limit': 3000000 } }, 'migrate-set-parameters downtime-limit=3000000');
  expectSame(d, { execute: 'migrate-set-parameters', arguments: { 'multifd-channels': 0 } }, 'migrate-set-parameters multifd-channels=0');
  assert.deepEqual(d.call({ execute: 'migrate-set-parameters', arguments: { 'max-bandwidth': -1 } }), errors['migrate-set-parameters max-bandwidth=-1 (accepted!)']);
  const params = ret(d, { execute: 'query-migrate-parameters' });
  assert.equal(errors['query-migrate-parameters max-bandwidth after max-bandwidth=-1'], 2 ** 64);
  assert.match(params.line, /"max-bandwidth": 18446744073709551615,/);

  const closed = driven();
  assert.deepEqual(closed.call({ execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:51773' } }), errors['migrate to a closed port (fresh source)']);
  closed.vm.failMigration("Failed to connect to '127.0.0.1:51773': Connection refused");
  assert.deepEqual(ret(closed, { execute: 'query-migrate' }).value, errors['query-migrate after migrate to a closed port']);
  const exec = driven();
  exec.call({ execute: 'migrate', arguments: { uri: 'exec:exit 3' } });
  exec.vm.completeMigration(0);
  assertShape(ret(exec, { execute: 'query-migrate' }).value, errors['query-migrate after migrate exec:exit 3'], 'exec:exit 3');
});

test('events: the same shape as QEMU\'s for each event we emit', () => {
  const d = driven();
  d.call({ execute: 'migrate-set-capabilities', arguments: { capabilities: [{ capability: 'events', state: true }] } });
  d.request({ execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:4444' } });
  d.vm.completeMigration();
  const ours = d.out.filter((l) => l.startsWith('{"timestamp"')).map((l) => JSON.parse(l) as { event: string });
  const theirs = [...vector<Array<{ event: string }>>('events-source-tcp'), ...vector<Array<{ event: string }>>('events-destination-tcp')];
  const names = new Set(ours.map((e) => e.event));
  assert.deepEqual([...names].sort(), ['MIGRATION', 'MIGRATION_PASS', 'STOP']);
  for (const event of ours) {
    const model = theirs.find((e) => e.event === event.event);
    assert.ok(model !== undefined);
    assertShape(event, model, event.event);
    assertSameOrder(event, model, event.event);
  }
  const statuses = ours.filter((e) => e.event === 'MIGRATION').map((e) => (e as unknown as { data: { status: string } }).data.status);
  assert.deepEqual(statuses, ['setup', 'active', 'completed']);
});
