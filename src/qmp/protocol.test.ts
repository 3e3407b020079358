/**
 * The pure protocol: line framing split at every byte offset (multi-byte characters too), the
 * line-length limit, invalid UTF-8, the envelope check with QEMU's texts, the greeting's shape,
 * event printing, and a session that keeps answering after every kind of bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readVectorJson } from '../testing/testdata.ts';
import { diffShape } from './diff-shape.ts';
import { parseQmpJson } from './json.ts';
import {
  BAD_UTF8_TEXT,
  LINE_TOO_LONG_TEXT,
  LIVEMIG_VERSION,
  LineFramer,
  checkRequest,
  formatEvent,
  formatReply,
  greeting,
  timestampOfMicros,
  type FramedInput,
} from './protocol.ts';
import { drive } from './session-driver.test-util.ts';

const encoder = new TextEncoder();

function frameInTwo(bytes: Uint8Array, split: number, max?: number): FramedInput[] {
  const framer = new LineFramer(max);
  return [...framer.push(bytes.subarray(0, split)), ...framer.push(bytes.subarray(split))];
}

test('framing: the same lines whatever the split offset (ASCII and multi-byte UTF-8)', () => {
  const text = '{"execute":"query-status","id":"é😀"}\n\n{"execute":"stop"}\r\n  {"a":1}\n';
  const bytes = encoder.encode(text);
  const expected: FramedInput[] = [
    { kind: 'line', text: '{"execute":"query-status","id":"é😀"}' },
    { kind: 'line', text: '' },
    { kind: 'line', text: '{"execute":"stop"}\r' },
    { kind: 'line', text: '  {"a":1}' },
  ];
  for (let split = 0; split <= bytes.length; split++) {
    assert.deepEqual(frameInTwo(bytes, split), expected, `split at ${split}`);
  }
  // One byte at a time.
  const framer = new LineFramer();
  const lines = [...bytes].flatMap((b) => framer.push(Uint8Array.of(b)));
  assert.deepEqual(lines, expected);
});

test('framing: a line over the limit gives one error, is skipped, and framing goes on', () => {
  const long = `{"execute":"query-status","id":"${'x'.repeat(100)}"}`;
  const bytes = encoder.encode(`${long}\n{"execute":"stop"}\n`);
  for (let split = 0; split <= bytes.length; split++) {
    assert.deepEqual(
      frameInTwo(bytes, split, 64),
      [
        { kind: 'error', desc: LINE_TOO_LONG_TEXT },
        { kind: 'line', text: '{"execute":"stop"}' },
      ],
      `split at ${split}`,
    );
  }
  // Exactly at the limit is fine.
  const framer = new LineFramer(5);
  assert.deepEqual(framer.push(encoder.encode('12345\n123456\n')), [
    { kind: 'line', text: '12345' },
    { kind: 'error', desc: LINE_TOO_LONG_TEXT },
  ]);
  assert.equal(framer.bufferedBytes, 0);
});

test('framing: invalid UTF-8 is an error for that line only', () => {
  const framer = new LineFramer();
  const out = framer.push(Uint8Array.from([0x22, 0xff, 0x22, 0x0a, ...encoder.encode('{}\n')]));
  assert.deepEqual(out, [
    { kind: 'error', desc: BAD_UTF8_TEXT },
    { kind: 'line', text: '{}' },
  ]);
});

function check(text: string, oob = false) {
  const parsed = parseQmpJson(text);
  assert.ok(parsed.ok);
  return checkRequest(parsed.value, oob);
}

function checkError(text: string, oob = false): string {
  const result = check(text, oob);
  assert.ok(!result.ok, text);
  assert.equal(result.error.class, 'GenericError');
  return result.error.desc;
}

test('envelope check: QEMU 7.2 texts, id echoed when the input is an object', () => {
  assert.equal(checkError('[1]'), 'QMP input must be a JSON object');
  assert.equal(checkError('{"execute":5}'), "QMP input member 'execute' must be a string");
  assert.equal(checkError('{"foo":1}'), "QMP input member 'foo' is unexpected");
  assert.equal(checkError('{}'), "QMP input lacks member 'execute'");
  assert.equal(checkError('{"execute":"x","arguments":[]}'), "QMP input member 'arguments' must be an object");
  assert.equal(checkError('{"exec-oob":"x"}'), "QMP input member 'exec-oob' is unexpected");
  assert.equal(checkError('{"exec-oob":"x","execute":"x"}', true), "QMP input member 'execute' clashes with 'exec-oob'");
  assert.equal(checkError('{"exec-oob":5}', true), "QMP input member 'exec-oob' must be a string");
  const withId = check('{"id":{"a":[1]}}');
  assert.ok(!withId.ok);
  assert.deepEqual(JSON.parse(JSON.stringify(withId.id)), { a: [1] });
  const ok = check('{"exec-oob":"migrate-pause","id":7}', true);
  assert.ok(ok.ok);
  assert.equal(ok.request.oob, true);
  assert.equal(ok.request.command, 'migrate-pause');
  assert.equal(ok.request.id, 7);
});

test('greeting: the shape of QEMU 7.2 with our package string', () => {
  const ours = greeting(LIVEMIG_VERSION);
  assert.deepEqual(diffShape(ours, readVectorJson('qemu-7.2/qmp/greeting.json')), []);
  assert.equal(ours.QMP.version.package, 'livemig 0.1.0');
  assert.deepEqual(ours.QMP.capabilities, ['oob']);
});

test('replies and events print with QEMU member order', () => {
  assert.equal(formatReply({ kind: 'return', value: {}, id: 'x' }), '{"return": {}, "id": "x"}');
  assert.equal(formatReply({ kind: 'error', error: { class: 'GenericError', desc: 'd' }, id: 1 }), '{"id": 1, "error": {"class": "GenericError", "desc": "d"}}');
  assert.equal(formatReply({ kind: 'return', value: [], id: undefined }), '{"return": []}');
  const ts = timestampOfMicros(1795757238963783);
  assert.deepEqual(ts, { seconds: 1795757238, microseconds: 963783 });
  assert.equal(formatEvent({ event: 'STOP' }, ts), '{"timestamp": {"seconds": 1795757238, "microseconds": 963783}, "event": "STOP"}');
  assert.equal(
    formatEvent({ event: 'MIGRATION', data: { status: 'setup' } }, ts),
    '{"timestamp": {"seconds": 1795757238, "microseconds": 963783}, "event": "MIGRATION", "data": {"status": "setup"}}',
  );
});

test('a session answers every bad input and keeps serving', () => {
  const d = drive({}, { maxLineBytes: 256 });
  d.negotiate();
  const bad = [
    '{bad json',
    '[1,2]',
    '42',
    '{"execute":5}',
    '{"execute":"nope"}',
    '{"execute":"migrate","arguments":{"uri":5}}',
    '{"execute":"migrate","arguments":{"uri":"x","y":1}}',
    `{"execute":"query-status","id":"${'x'.repeat(300)}"}`,
    '[[[[[[[[[[',
    '{"execute":"query-status","id":"\\ud800"}',
  ];
  for (const line of bad) {
    const replies = d.send(line);
    assert.equal(replies.length, 1, line);
    assert.match(replies[0], /^\{("id": .*, )?"error": \{"class": "(GenericError|CommandNotFound)", "desc": ".+"\}\}$/, line);
    assert.deepEqual(d.call({ execute: 'query-status', id: 1 }), { return: { status: 'running', singlestep: false, running: true }, id: 1 });
  }
  assert.deepEqual(d.send('   '), []);
  const invalidUtf8 = new Uint8Array([0x7b, 0xc3, 0x28, 0x7d, 0x0a]);
  const before = d.out.length;
  d.session.receive(invalidUtf8);
  assert.deepEqual(d.out.slice(before), [`{"error": {"class": "GenericError", "desc": "${BAD_UTF8_TEXT}"}}`]);
});
