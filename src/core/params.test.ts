// Tests of migration parameters and capabilities: the defaults and shapes of a fresh QEMU 7.2
// (query-migrate-parameters and query-migrate-capabilities), QEMU's exact error texts for
// migrate-set-parameters and migrate-set-capabilities, QEMU's check order, and the conversions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_PARAMETERS,
  PARAMETER_FIELDS,
  applySetParameters,
  fromQueryMigrateParameters,
  toQueryMigrateParameters,
} from './params.ts';
import { migrateSetParameters, parseMigrateSetParameters } from './params-schema.ts';
import {
  DEFAULT_CAPABILITY_CONTEXT,
  MIGRATION_CAPABILITIES,
  applyCapabilities,
  defaultCapabilities,
  parseCapabilityList,
  queryMigrateCapabilities,
  type MigrationCapability,
} from './capabilities.ts';

/** query-migrate-parameters of a fresh QEMU 7.2.22 (facts §9.5). */
const FRESH_QUERY = {
  'announce-initial': 50, 'announce-max': 550, 'announce-rounds': 5, 'announce-step': 100,
  'compress-level': 1, 'compress-threads': 8, 'compress-wait-thread': true, 'decompress-threads': 2,
  'throttle-trigger-threshold': 50, 'cpu-throttle-initial': 20, 'cpu-throttle-increment': 10,
  'cpu-throttle-tailslow': false, 'tls-creds': '', 'tls-hostname': '', 'tls-authz': '',
  'max-bandwidth': 134217728, 'downtime-limit': 300, 'x-checkpoint-delay': 20000, 'block-incremental': false,
  'multifd-channels': 2, 'xbzrle-cache-size': 67108864, 'max-postcopy-bandwidth': 0, 'max-cpu-throttle': 99,
  'multifd-compression': 'none', 'multifd-zlib-level': 1, 'multifd-zstd-level': 1,
};

/** Applies `args` to the defaults and returns QEMU's error text, or null on success. */
function errorOf(args: unknown): string | null {
  const result = migrateSetParameters(DEFAULT_PARAMETERS, args);
  return result.ok ? null : result.error.desc;
}

test('defaults equal a fresh QEMU 7.2 and the query lists every member in QAPI order', () => {
  const query = toQueryMigrateParameters(DEFAULT_PARAMETERS);
  assert.deepEqual(query, FRESH_QUERY);
  assert.deepEqual(Object.keys(query), PARAMETER_FIELDS.filter((f) => f.qmp !== 'block-bitmap-mapping').map((f) => f.qmp));
  assert.equal(Object.keys(query).length, 26);
  assert.equal(DEFAULT_PARAMETERS.maxBandwidthBytesPerSec, 128 * 1024 * 1024);
  assert.equal(DEFAULT_PARAMETERS.downtimeLimitMs, 300);
});

test('conversions round-trip, and a set mapping appears in the query', () => {
  assert.deepEqual(fromQueryMigrateParameters(toQueryMigrateParameters(DEFAULT_PARAMETERS)), DEFAULT_PARAMETERS);
  const mapping = [{ 'node-name': 'drive0', alias: 'a', bitmaps: [{ name: 'b0', alias: 'x', transform: { persistent: true } }] }];
  const result = migrateSetParameters(DEFAULT_PARAMETERS, { 'block-bitmap-mapping': mapping, 'downtime-limit': 500 });
  assert.ok(result.ok);
  const query = toQueryMigrateParameters(result.value);
  assert.deepEqual(query['block-bitmap-mapping'], mapping);
  assert.equal(query['downtime-limit'], 500);
  assert.deepEqual(fromQueryMigrateParameters(query), result.value);
});

test('downtime_limit out of range gives QEMU text exactly', () => {
  assert.equal(errorOf({ 'downtime-limit': 3000000 }), "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms");
  assert.equal(errorOf({ 'downtime-limit': 2000000 }), null);
  assert.equal(errorOf({ 'downtime-limit': -1 }), "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms");
  const result = migrateSetParameters(DEFAULT_PARAMETERS, { 'downtime-limit': 3000000 });
  assert.ok(!result.ok && result.error.code === 'MIG_ERR_INVALID_PARAMETER' && result.error.qmpClass === 'GenericError');
});

test('range checks use QEMU texts (underscore names) on the merged set', () => {
  assert.equal(errorOf({ 'multifd-channels': 0 }), "Parameter 'multifd_channels' expects a value between 1 and 255");
  assert.equal(errorOf({ 'compress-level': 10 }), "Parameter 'compress_level' expects a value between 0 and 9");
  assert.equal(errorOf({ 'throttle-trigger-threshold': 0 }), "Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100");
  assert.equal(errorOf({ 'cpu-throttle-increment': 100 }), "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99");
  assert.equal(errorOf({ 'multifd-zstd-level': 21 }), "Parameter 'multifd_zstd_level' expects a value between 0 and 20");
  assert.equal(errorOf({ 'xbzrle-cache-size': 4095 }), "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size");
  assert.equal(errorOf({ 'xbzrle-cache-size': 3 * 4096 }), "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size");
  assert.equal(errorOf({ 'announce-step': 0 }), "Parameter 'announce_step' expects a value between 0 and 10000");
  assert.equal(errorOf({ 'announce-rounds': 1001 }), "Parameter 'announce_rounds' expects a value between 0 and 1000");
  // The cross check reads the merged set: raising the initial throttle above the cap fails.
  assert.equal(errorOf({ 'cpu-throttle-initial': 60, 'max-cpu-throttle': 50 }), "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99");
  const lowCap = migrateSetParameters(DEFAULT_PARAMETERS, { 'max-cpu-throttle': 30 });
  assert.ok(lowCap.ok);
  const raised = migrateSetParameters(lowCap.value, { 'cpu-throttle-initial': 40 });
  assert.ok(!raised.ok && raised.error.desc.startsWith("Parameter 'max_cpu_throttle'"));
});

test('visitor errors use dashed names and come before range checks', () => {
  assert.equal(errorOf({ 'multifd-channels': 256 }), "Parameter 'multifd-channels' expects uint8_t");
  assert.equal(errorOf({ 'multifd-channels': -1 }), "Parameter 'multifd-channels' expects uint8_t");
  assert.equal(errorOf({ 'x-checkpoint-delay': 2 ** 32 }), "Parameter 'x-checkpoint-delay' expects uint32_t");
  assert.equal(errorOf({ 'downtime-limit': 'x' }), "Parameter 'downtime-limit' expects uint64");
  assert.equal(errorOf({ 'downtime-limit': 1.5 }), "Parameter 'downtime-limit' expects uint64");
  assert.equal(errorOf({ 'max-bandwidth': 2 ** 70 }), "Parameter 'max-bandwidth' expects uint64");
  assert.equal(errorOf({ 'cpu-throttle-tailslow': 1 }), "Invalid parameter type for 'cpu-throttle-tailslow', expected: boolean");
  assert.equal(errorOf({ 'tls-creds': 3 }), "Invalid parameter type for 'tls-creds', expected: StrOrNull");
  assert.equal(errorOf({ 'multifd-compression': 'lz4' }), "Parameter 'multifd-compression' does not accept value 'lz4'");
  assert.equal(errorOf({ 'multifd-compression': 1 }), "Invalid parameter type for 'multifd-compression', expected: string");
  assert.equal(errorOf({ 'block-bitmap-mapping': {} }), "Invalid parameter type for 'block-bitmap-mapping', expected: array");
  assert.equal(errorOf({ 'block-bitmap-mapping': [{ 'node-name': 'n', alias: 'a' }] }), "Parameter 'block-bitmap-mapping[0].bitmaps' is missing");
  assert.equal(errorOf({ nope: 1 }), "Parameter 'nope' is unexpected");
  // QAPI member order decides between two bad members; visiting beats checking.
  assert.equal(errorOf({ 'multifd-channels': 300, 'downtime-limit': 3000000 }), "Parameter 'multifd-channels' expects uint8_t");
  assert.equal(errorOf({ 'multifd-channels': 300, 'announce-initial': 'x' }), "Parameter 'announce-initial' expects uint64");
  assert.equal(errorOf({ nope: 1, 'downtime-limit': 'x' }), "Parameter 'downtime-limit' expects uint64");
  assert.equal(errorOf(null), "QMP input member 'arguments' must be an object");
});

test('negative uint64 values wrap as in QEMU: max-bandwidth=-1 is accepted', () => {
  const parsed = parseMigrateSetParameters({ 'max-bandwidth': -1 });
  assert.ok(parsed.ok);
  assert.equal(parsed.value.maxBandwidthBytesPerSec, 18446744073709551615n);
  const applied = migrateSetParameters(DEFAULT_PARAMETERS, { 'max-bandwidth': -1 });
  assert.ok(applied.ok);
  assert.equal(applied.value.maxBandwidthBytesPerSec, 2 ** 64);
  assert.equal(migrateSetParameters(DEFAULT_PARAMETERS, { 'max-bandwidth': 18446744073709551615n }).ok, true);
});

test('tls null means empty, and an empty object changes nothing', () => {
  const withTls = migrateSetParameters(DEFAULT_PARAMETERS, { 'tls-creds': 'tls0', 'tls-hostname': 'h' });
  assert.ok(withTls.ok && withTls.value.tlsCreds === 'tls0');
  const cleared = migrateSetParameters(withTls.value, { 'tls-creds': null });
  assert.ok(cleared.ok && cleared.value.tlsCreds === '' && cleared.value.tlsHostname === 'h');
  const same = migrateSetParameters(DEFAULT_PARAMETERS, {});
  assert.ok(same.ok);
  assert.deepEqual(same.value, DEFAULT_PARAMETERS);
});

test('zero copy refuses multifd compression and TLS', () => {
  const parsed = parseMigrateSetParameters({ 'multifd-compression': 'zstd' });
  assert.ok(parsed.ok);
  const refused = applySetParameters(DEFAULT_PARAMETERS, parsed.value, { zeroCopySend: true });
  assert.ok(!refused.ok && refused.error.desc === 'Zero copy only available for non-compressed non-TLS multifd migration');
  assert.ok(applySetParameters(DEFAULT_PARAMETERS, parsed.value, { zeroCopySend: false }).ok);
});

test('capabilities: 21 names in 7.2 order, all off, listed in order by the query', () => {
  assert.equal(MIGRATION_CAPABILITIES.length, 21);
  assert.deepEqual([...MIGRATION_CAPABILITIES], ['xbzrle', 'rdma-pin-all', 'auto-converge', 'zero-blocks', 'compress', 'events',
    'postcopy-ram', 'x-colo', 'release-ram', 'block', 'return-path', 'pause-before-switchover', 'multifd', 'dirty-bitmaps',
    'postcopy-blocktime', 'late-block-activate', 'x-ignore-shared', 'validate-uuid', 'background-snapshot',
    'zero-copy-send', 'postcopy-preempt']);
  const query = queryMigrateCapabilities(defaultCapabilities());
  assert.deepEqual(query.map((c) => c.capability), [...MIGRATION_CAPABILITIES]);
  assert.ok(query.every((c) => c.state === false));
});

test('capability list parsing uses QEMU texts', () => {
  const text = (value: unknown) => {
    const r = parseCapabilityList(value);
    return r.ok ? null : r.error.desc;
  };
  assert.equal(text([{ capability: 'no-such-cap', state: true }]), "Parameter 'capability' does not accept value 'no-such-cap'");
  assert.equal(text([{ capability: 'events', state: true }, { capability: 'multifd' }]), "Parameter 'capabilities[1].state' is missing");
  assert.equal(text([{ capability: 'events', state: 'on' }]), "Invalid parameter type for 'capabilities[0].state', expected: boolean");
  assert.equal(text([{ capability: 'events', state: true, x: 1 }]), "Parameter 'capabilities[0].x' is unexpected");
  assert.equal(text('events'), "Invalid parameter type for 'capabilities', expected: array");
  assert.deepEqual(parseCapabilityList([{ capability: 'events', state: true }]), { ok: true, value: [{ capability: 'events', state: true }] });
});

/** The compatibility text for turning `names` on from the defaults, or null if allowed. */
function conflict(names: MigrationCapability[], context = DEFAULT_CAPABILITY_CONTEXT, current = defaultCapabilities()): string | null {
  const result = applyCapabilities(current, names.map((capability) => ({ capability, state: true })), context);
  return result.ok ? null : result.error.desc;
}

test('capability compatibility checks give QEMU texts', () => {
  assert.equal(conflict(['postcopy-preempt']), 'Postcopy preempt requires postcopy-ram');
  assert.equal(conflict(['postcopy-ram', 'postcopy-preempt']), null);
  assert.equal(conflict(['postcopy-ram', 'postcopy-preempt', 'compress']), 'Postcopy preempt not compatible with compress');
  assert.equal(conflict(['postcopy-ram', 'x-ignore-shared']), 'Postcopy is not compatible with ignore-shared');
  assert.equal(conflict(['multifd', 'compress']), 'Multifd is not compatible with compress');
  assert.equal(conflict(['background-snapshot', 'auto-converge']), 'Background-snapshot is not compatible with auto-converge');
  assert.equal(conflict(['zero-copy-send']), 'Zero copy only available for non-compressed non-TLS multifd migration');
  assert.equal(conflict(['zero-copy-send', 'multifd']), null);
  assert.equal(conflict(['zero-copy-send', 'multifd'], { ...DEFAULT_CAPABILITY_CONTEXT, tlsEnabled: true }), 'Zero copy only available for non-compressed non-TLS multifd migration');
  const noPostcopyHost = { ...DEFAULT_CAPABILITY_CONTEXT, incoming: true, postcopySupportedByHost: false };
  assert.equal(conflict(['postcopy-ram'], noPostcopyHost), 'Postcopy is not supported');
  // The probe runs only when postcopy-ram is newly turned on, and only on an incoming side.
  const alreadyOn = { ...defaultCapabilities(), 'postcopy-ram': true };
  assert.equal(conflict(['events'], noPostcopyHost, alreadyOn), null);
  assert.equal(conflict(['postcopy-ram'], { ...noPostcopyHost, incoming: false }), null);
  const result = applyCapabilities(defaultCapabilities(), [{ capability: 'events', state: true }, { capability: 'events', state: false }]);
  assert.ok(result.ok && result.value.events === false);
});
