/**
 * Fuzzing the whole control plane below the socket (framer, JSON parser, envelope check,
 * dispatcher, visitors, HMP, FakeVmController): over 10,000 random input lines (valid requests
 * with random arguments, HMP lines, garbage, random bytes, deep nesting, huge numbers), every
 * non-blank line gets exactly one well-formed reply (events may precede it), nothing throws,
 * no controller bug surfaces, and the VM state stays sane.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MIGRATION_CAPABILITIES } from '../core/capabilities.ts';
import { checkParameters } from '../core/params.ts';
import { MIGRATION_STATUSES } from '../core/status.ts';
import { RUN_STATES } from './controller.ts';
import { QmpDispatcher } from './dispatch.ts';
import { QMP_ERROR_CLASSES } from './errors.ts';
import { FakeVmController } from './fake-vm-controller.ts';
import { encodeQmpJson, isQmpJsonObject, parseQmpJson } from './json.ts';
import { formatEvent } from './protocol.ts';
import { COMMAND_NAMES } from './schema.ts';
import { QmpSession } from './session.ts';
import { fuzzRuns } from '../testing/fuzz-runs.ts';

const LINES_PER_RUN = 50;
/** Input lines in all: 10,000 by default (fuzz-runs.ts); RUNS sessions of LINES_PER_RUN each. */
const LINES = fuzzRuns();
const RUNS = Math.ceil(LINES / LINES_PER_RUN);

const jsonLeaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }),
  fc.string({ maxLength: 12 }),
  fc.constantFrom('tcp:127.0.0.1:4444', 'exec:cat', 'unix:/tmp/x', 'nope:1', 'postcopy-ram', 'events', 'active', 'oob', 'on', '64M'),
);

const jsonValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonLeaf,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('uri', 'value', 'state', 'capabilities', 'enable', 'command-line')), tie('value'), { maxKeys: 3 }),
  ),
})).value;

const capabilityList = fc.array(
  fc.record({ capability: fc.oneof(fc.constantFrom(...MIGRATION_CAPABILITIES), fc.string({ maxLength: 5 })), state: fc.oneof(fc.boolean(), jsonLeaf) }),
  { maxLength: 3 },
);

const hmpLine = fc
  .tuple(
    fc.constantFrom(
      'info status', 'info migrate', 'info migrate_capabilities', 'info migrate_parameters', 'info balloon', 'info version', 'info',
      'migrate_set_capability', 'migrate_set_parameter', 'migrate', 'migrate -d', 'migrate_incoming', 'migrate_cancel',
      'migrate_start_postcopy', 'migrate_continue', 'migrate_pause', 'migrate_recover', 'stop', 'cont', 'balloon', 'help', 'nope',
    ),
    fc.array(fc.oneof(fc.constantFrom(...MIGRATION_CAPABILITIES, 'on', 'off', 'max-bandwidth', 'downtime-limit', '64M', '1.5k', '-1', '0x10', '"a b"', '(1+2)*3', '1/0'), fc.string({ maxLength: 6 })), { maxLength: 3 }),
  )
  .map(([command, args]) => [command, ...args].join(' '));

const uri = fc.oneof(fc.constantFrom('tcp:127.0.0.1:4444', 'exec:cat', 'unix:/tmp/x', 'fd:mig', 'nope:1', ''), fc.string({ maxLength: 8 }));
const parameterNames = fc.constantFrom('max-bandwidth', 'downtime-limit', 'multifd-channels', 'tls-creds', 'multifd-compression', 'xbzrle-cache-size', 'cpu-throttle-initial', 'max-cpu-throttle', 'announce-step', 'x');

/** Arguments that mostly fit the command, so the fuzz reaches the controller. */
function argumentsFor(command: string): fc.Arbitrary<unknown> {
  switch (command) {
    case 'migrate':
      return fc.record({ uri, blk: fc.boolean(), inc: fc.boolean(), detach: fc.boolean(), resume: fc.boolean() }, { requiredKeys: ['uri'] });
    case 'migrate-incoming':
    case 'migrate-recover':
      return fc.record({ uri });
    case 'migrate-set-capabilities':
      return fc.record({ capabilities: capabilityList });
    case 'migrate-set-parameters':
      return fc.dictionary(parameterNames, fc.oneof(fc.integer({ min: -1, max: 3_000_000 }), fc.constantFrom('none', 'zlib', 'x', null, true)), { maxKeys: 3 });
    case 'migrate-continue':
      return fc.record({ state: fc.constantFrom(...MIGRATION_STATUSES, 'bogus') });
    case 'balloon':
      return fc.record({ value: fc.oneof(fc.integer({ min: -10, max: 1 << 30 }), jsonLeaf) });
    case 'pmemsave':
      return fc.record({ val: fc.nat(), size: fc.nat(), filename: fc.string({ maxLength: 8 }) });
    case 'human-monitor-command':
      return fc.record({ 'command-line': hmpLine, 'cpu-index': fc.integer({ min: -1, max: 2 }) }, { requiredKeys: ['command-line'] });
    case 'qmp_capabilities':
      return fc.record({ enable: fc.array(fc.constantFrom('oob', 'x'), { maxLength: 2 }) });
    default:
      return fc.constant({});
  }
}

const request = fc
  .tuple(
    fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...COMMAND_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) }),
    fc.integer({ min: 0, max: 9 }),
    jsonValue,
  )
  .chain(([command, dice, id]) =>
    fc.oneof({ weight: 3, arbitrary: argumentsFor(command) }, { weight: 1, arbitrary: jsonValue }).map((args) => {
      const r: Record<string, unknown> = dice === 0 ? { 'exec-oob': command } : { execute: command };
      if (dice % 3 !== 1) r.arguments = args;
      if (dice % 2 === 0) r.id = id;
      return encodeQmpJson(r);
    }),
  );

const garbage = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer({ min: 0, max: 1500 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  fc.integer({ min: 0, max: 1100 }).map((depth) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
  fc.bigInt({ min: -(1n << 200n), max: 1n << 200n }).map((n) => `{"execute":"query-status","id":${n}}`),
  fc.constantFrom('1e400', '-1e400', '{"execute":"balloon","arguments":{"value":1e999}}', '"\\ud800"', "{'execute':'query-status'}", '', '   '),
  request.map((line) => line.slice(0, Math.max(0, line.length - 3))),
);

const qmpCapabilities = fc.constantFrom('{"execute":"qmp_capabilities"}', '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}');

const line = fc.oneof({ weight: 7, arbitrary: request }, { weight: 3, arbitrary: garbage }, { weight: 1, arbitrary: qmpCapabilities });
const bytes = fc.uint8Array({ maxLength: 60 }).map((b) => b.filter((x) => x !== 0x0a));

function isWellFormedReply(text: string): boolean {
  const parsed = parseQmpJson(text);
  if (!parsed.ok || !isQmpJsonObject(parsed.value)) return false;
  const keys = Object.keys(parsed.value).filter((k) => k !== 'id');
  if (keys.length !== 1) return false;
  if (keys[0] === 'return') return true;
  const error = parsed.value.error;
  return (
    keys[0] === 'error' &&
    isQmpJsonObject(error) &&
    Object.keys(error).length === 2 &&
    (QMP_ERROR_CLASSES as readonly string[]).includes(error.class as string) &&
    typeof error.desc === 'string' &&
    error.desc.length > 0
  );
}

function isWellFormedEvent(text: string): boolean {
  const parsed = parseQmpJson(text);
  return parsed.ok && isQmpJsonObject(parsed.value) && typeof parsed.value.event === 'string' && isQmpJsonObject(parsed.value.timestamp);
}

test(`fuzz: ${RUNS * LINES_PER_RUN} random lines, one well-formed reply each, never a throw`, () => {
  let total = 0;
  fc.assert(
    fc.property(fc.array(fc.oneof({ weight: 9, arbitrary: line.map((l) => new TextEncoder().encode(l.replace(/\n/g, ' '))) }, { weight: 1, arbitrary: bytes }), { minLength: LINES_PER_RUN, maxLength: LINES_PER_RUN }), fc.boolean(), (inputs, preNegotiate) => {
      const vm = new FakeVmController({ balloon: true, cpuCount: 1 });
      const bugs: unknown[] = [];
      const out: string[] = [];
      const session = new QmpSession(new QmpDispatcher(vm, { onInternalError: (_c, e) => bugs.push(e) }), { send: (l) => out.push(l), maxLineBytes: 4096 });
      vm.subscribe((event) => session.deliverEvent(formatEvent(event, { seconds: 1, microseconds: 2 })));
      session.start();
      if (preNegotiate) session.receive(new TextEncoder().encode('{"execute":"qmp_capabilities"}\n'));
      for (const input of inputs) {
        const before = out.length;
        session.receive(Uint8Array.from([...input, 0x0a]));
        total++;
        const written = out.slice(before);
        const replies = written.filter((l) => !l.startsWith('{"timestamp"'));
        const blank = /^[ \t\r]*$/.test(new TextDecoder().decode(input)) && input.every((b) => b < 0x80);
        assert.equal(replies.length, blank ? 0 : 1, `input ${JSON.stringify(new TextDecoder().decode(input)).slice(0, 200)} gave ${JSON.stringify(written)}`);
        for (const reply of replies) assert.ok(isWellFormedReply(reply), reply);
        for (const event of written.filter((l) => l.startsWith('{"timestamp"'))) assert.ok(isWellFormedEvent(event), event);
        assert.equal(session.pendingRequests, 0);
      }
      assert.deepEqual(bugs, []);
      assert.ok((RUN_STATES as readonly string[]).includes(vm.runState));
      assert.ok((MIGRATION_STATUSES as readonly string[]).includes(vm.sourceStatus));
      assert.equal(checkParameters(Object.fromEntries(Object.entries(vm.parameters).map(([k, v]) => [k, typeof v === 'number' ? BigInt(Math.round(Math.min(v, 2 ** 64 - 1))) : v])) as never, { zeroCopySend: vm.capabilities['zero-copy-send'] }), null);
      // Still serving: a negotiated query-status answers.
      const before = out.length;
      session.receive(new TextEncoder().encode('{"execute":"qmp_capabilities"}\n{"execute":"query-status","id":"end"}\n'));
      const status = out.slice(before).filter((l) => !l.startsWith('{"timestamp"')).at(-1) ?? '';
      assert.match(status, /^\{"return": \{"status": "[a-z-]+", "singlestep": false, "running": (true|false)\}, "id": "end"\}$/);
    }),
    { numRuns: RUNS },
  );
  assert.ok(total >= LINES, `only ${total} lines`);
});
