/**
 * QMP's JSON dialect: QEMU's parse error texts, exact integers, doubles kept apart from
 * integers, nesting limit, QEMU's printing (escapes, %.17g, QDict member order checked against
 * the key order of real QEMU 7.2 replies), and a parse∘encode round trip property.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readVectorJson } from '../testing/testdata.ts';
import { MAX_JSON_NESTING, QmpFloat, encodeQmpJson, formatDouble, parseQmpJson, qdictOrder, type QmpJson } from './json.ts';

function parseOk(text: string): QmpJson {
  const result = parseQmpJson(text);
  assert.ok(result.ok, `expected ${text} to parse: ${result.ok ? '' : result.desc}`);
  return result.value;
}

function parseError(text: string): string {
  const result = parseQmpJson(text);
  assert.ok(!result.ok, `expected ${text} to fail`);
  return result.desc;
}

test('parse errors carry QEMU 7.2 texts', () => {
  assert.equal(parseError('@'), "JSON parse error, stray '@'");
  assert.equal(parseError('{"a":tru}'), "JSON parse error, invalid keyword 'tru'");
  assert.equal(parseError('[1,]'), 'JSON parse error, expecting value');
  assert.equal(parseError('{"a":1,}'), 'JSON parse error, expecting value');
  assert.equal(parseError('{"a" 1}'), 'JSON parse error, missing : in object pair');
  assert.equal(parseError('{1:2}'), 'JSON parse error, key is not a string in object');
  assert.equal(parseError('{"a":1,"a":2}'), 'JSON parse error, duplicate key');
  assert.equal(parseError('"\\q"'), 'JSON parse error, invalid escape sequence in string');
  assert.equal(parseError('"\\ud800"'), 'JSON parse error, \\ud800 is not a valid Unicode character');
  assert.equal(parseError('[1 2]'), 'JSON parse error, expected separator in list');
  assert.equal(parseError('{"a":1 "b":2}'), 'JSON parse error, expected separator in dict');
  assert.equal(parseError('{"a":1'), 'JSON parse error, premature EOI');
  assert.equal(parseError('01'), "JSON parse error, stray '01'");
  assert.equal(parseError('{} {}'), 'JSON parse error, only one JSON value per line is supported');
});

test('nesting: 1024 levels pass, 1025 fail with QEMU text', () => {
  const nest = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
  parseOk(nest(MAX_JSON_NESTING));
  assert.equal(parseError(nest(MAX_JSON_NESTING + 1)), 'JSON nesting depth limit exceeded');
  assert.equal(parseError(`{"a":${nest(MAX_JSON_NESTING)}}`), 'JSON nesting depth limit exceeded');
});

test('integers stay exact; floats stay floats', () => {
  assert.equal(parseOk('42'), 42);
  assert.equal(parseOk('-0'), 0);
  assert.equal(parseOk('9007199254740993'), 9007199254740993n);
  assert.equal(parseOk('18446744073709551615'), 18446744073709551615n);
  assert.equal(parseOk('-9223372036854775808'), -9223372036854775808n);
  const beyond = parseOk('123456789012345678901234567890');
  assert.ok(beyond instanceof QmpFloat);
  const one = parseOk('1.0');
  assert.ok(one instanceof QmpFloat && one.value === 1);
  assert.ok(parseOk('1e3') instanceof QmpFloat);
});

test('strings: single quotes, escapes, surrogate pairs, NUL', () => {
  assert.equal(parseOk("'sq'"), 'sq');
  assert.equal(parseOk('"\\u00e9\\ud83d\\ude00"'), 'é😀');
  assert.equal(parseOk('"a\\u0000b"'), 'a\u0000b');
  assert.equal(parseOk('"\\/\\b\\f\\n\\r\\t\\"\\\\"'), '/\b\f\n\r\t"\\');
});

test('objects have a null prototype: __proto__ is data', () => {
  const value = parseOk('{"__proto__": 1, "constructor": 2}') as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(value), null);
  assert.equal(value.__proto__, 1);
  assert.equal(value.constructor, 2);
});

test('encoding: QEMU separators, ASCII-only escapes, %.17g doubles, uint64 max', () => {
  assert.equal(encodeQmpJson({ return: {} }), '{"return": {}}');
  assert.equal(encodeQmpJson('é😀\u0001\u007f/'), '"\\u00E9\\uD83D\\uDE00\\u0001\\u007F/"');
  assert.equal(encodeQmpJson(new QmpFloat(0.1)), '0.10000000000000001');
  assert.equal(encodeQmpJson(new QmpFloat(100)), '100');
  assert.equal(encodeQmpJson(new QmpFloat(1e308)), '1e+308');
  assert.equal(encodeQmpJson(new QmpFloat(5e-324)), '4.9406564584124654e-324');
  assert.equal(encodeQmpJson(new QmpFloat(Infinity)), 'null');
  assert.equal(encodeQmpJson(33.818400000000004), '33.818400000000004');
  assert.equal(encodeQmpJson(2 ** 64), '18446744073709551615');
  assert.equal(encodeQmpJson(18446744073709551615n), '18446744073709551615');
  assert.equal(encodeQmpJson([1, 'a', null, true]), '[1, "a", null, true]');
  assert.equal(formatDouble(1256.5734579439252), '1256.5734579439252');
  assert.equal(formatDouble(1e-5), '1.0000000000000001e-05');
});

test('QDict member order reproduces QEMU 7.2 replies (vectors)', () => {
  // QEMU inserts members in QAPI order; the vectors keep the order QEMU printed.
  const order = (value: Record<string, unknown>, qapiOrder: readonly string[]): void => {
    assert.deepEqual(qdictOrder(qapiOrder), Object.keys(value));
  };
  const params = readVectorJson<Record<string, unknown>>('qemu-7.2/qmp/query-migrate-parameters.json');
  order(params, [
    'announce-initial', 'announce-max', 'announce-rounds', 'announce-step', 'compress-level', 'compress-threads',
    'compress-wait-thread', 'decompress-threads', 'throttle-trigger-threshold', 'cpu-throttle-initial',
    'cpu-throttle-increment', 'cpu-throttle-tailslow', 'tls-creds', 'tls-hostname', 'tls-authz', 'max-bandwidth',
    'downtime-limit', 'x-checkpoint-delay', 'block-incremental', 'multifd-channels', 'xbzrle-cache-size',
    'max-postcopy-bandwidth', 'max-cpu-throttle', 'multifd-compression', 'multifd-zlib-level', 'multifd-zstd-level',
  ]);
  order(readVectorJson('qemu-7.2/qmp/query-status-before.json'), ['running', 'singlestep', 'status']);
  const greeting = readVectorJson<{ QMP: { version: { qemu: Record<string, unknown> } } }>('qemu-7.2/qmp/greeting.json');
  order(greeting.QMP, ['version', 'capabilities']);
  order(greeting.QMP.version.qemu, ['major', 'minor', 'micro']);
  const info = readVectorJson<{ ram: Record<string, unknown> }>('qemu-7.2/qmp/query-migrate-during-precopy.json');
  order(info as Record<string, unknown>, ['status', 'ram', 'total-time', 'expected-downtime', 'setup-time']);
  order(info.ram, [
    'transferred', 'remaining', 'total', 'duplicate', 'skipped', 'normal', 'normal-bytes', 'dirty-pages-rate', 'mbps',
    'dirty-sync-count', 'postcopy-requests', 'page-size', 'multifd-bytes', 'pages-per-second', 'precopy-bytes',
    'downtime-bytes', 'postcopy-bytes', 'dirty-sync-missed-zero-copy',
  ]);
  assert.deepEqual(qdictOrder(['return', 'id']), ['return', 'id']);
  assert.deepEqual(qdictOrder(['error', 'id']), ['id', 'error']);
  assert.deepEqual(qdictOrder(['event', 'data', 'timestamp']), ['timestamp', 'event', 'data']);
});

/** JSON values without floats (whose text form is not unique). */
const jsonValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.bigInt({ min: -(1n << 63n), max: (1n << 64n) - 1n }).filter((b) => b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)),
    fc.string({ unit: 'binary' }).filter((s) => !/[\ud800-\udfff]/.test(s)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

test('property: parse(encode(v)) gives v back', () => {
  fc.assert(
    fc.property(jsonValue, (value) => {
      const text = encodeQmpJson(value);
      const parsed = parseQmpJson(text);
      assert.ok(parsed.ok, text);
      const canonical = (v: unknown): unknown =>
        Array.isArray(v) ? v.map(canonical) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, canonical(x)])) : v;
      assert.deepEqual(canonical(parsed.value), canonical(value));
    }),
    { numRuns: 500 },
  );
});
