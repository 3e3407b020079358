// Tests of VMDESCRIPTION parsing, location and description-driven device decoding: the real
// none-16M stream (timer, globalstate), a hand-written description exercising every feature,
// every error code, truncation as ShortReadError and a random-bytes robustness check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readVector } from '../testing/testdata.ts';
import fc from 'fast-check';
import { ByteReader, fromHex, ShortReadError } from '../lib/bytes.ts';
import { FormatError } from './errors.ts';
import type { SectionHeader } from './stream-types.ts';
import { findVmDescription, parseVmDescription } from './vmdesc.ts';
import { createVmDescDeviceDecoder, decodeDevicePayload, VMDESC_ERROR_CODES, type VmState } from './vmdesc-decoder.ts';


const seenCodes = new Set<string>();

function expectCode(code: string, fn: () => unknown, offset?: number): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (offset !== undefined) assert.equal(err.offset, offset, err.message);
    seenCodes.add(err.code);
    return;
  }
  assert.fail(`expected ${code}`);
}

function fullHeader(idstr: string, instanceId: number, versionId: number, offset: number, sectionId = 9): SectionHeader {
  return { type: 'full', sectionId, idstr, instanceId, versionId, offset, depth: 0 };
}

const NONE_16M_JSON =
  '{"page_size": 4096, "devices": [{"name": "timer", "instance_id": 0, "vmsd_name": "timer", "version": 2, ' +
  '"fields": [{"name": "cpu_ticks_offset", "type": "int64", "size": 8}, {"name": "unused", "type": "unused_buffer", "size": 8}, ' +
  '{"name": "cpu_clock_offset", "type": "int64", "size": 8}]}, {"name": "globalstate", "instance_id": 0, "vmsd_name": "globalstate", ' +
  '"version": 1, "fields": [{"name": "size", "type": "uint32", "size": 4}, {"name": "runstate", "type": "buffer", "size": 100}]}]}';

test('findVmDescription locates the record of a real 7.2 stream by its length', () => {
  const file = readVector('qemu-7.2/none-16M.stream');
  const found = findVmDescription(file);
  assert.ok(found !== null);
  assert.equal(found.method, 'length');
  assert.equal(found.lengthBytes, 486);
  assert.equal(found.offset, file.length - 5 - 486);
  assert.equal(file[found.offset - 1], 0x00, 'EOF precedes the record');
  assert.equal(found.json, NONE_16M_JSON);
  assert.deepEqual(found.description.devices.map((d) => [d.name, d.instanceId, d.vmsdName, d.version, d.fields.length]), [
    ['timer', 0, 'timer', 2, 3],
    ['globalstate', 0, 'globalstate', 1, 2],
  ]);
  assert.equal(found.description.pageSizeBytes, 4096);
});

test('findVmDescription falls back to the analyze-migration.py heuristic, else null', () => {
  const file = readVector('qemu-7.2/none-16M.stream');
  const trailing = new Uint8Array(file.length + 3);
  trailing.set(file);
  trailing.set([0x41, 0x42, 0x43], file.length);
  const found = findVmDescription(trailing);
  assert.ok(found !== null);
  assert.equal(found.method, 'analyze-migration');
  assert.equal(found.json, NONE_16M_JSON);
  assert.equal(findVmDescription(file.subarray(0, file.length - 1)), null, 'cut JSON: nothing valid');
  assert.equal(findVmDescription(new Uint8Array(0)), null);
  assert.equal(findVmDescription(fromHex('00 7b')), null);
  // The heuristic finds a record whose JSON is broken: a typed error, as the script raises.
  expectCode('MIG_ERR_VMDESC_BAD_JSON', () => findVmDescription(Uint8Array.from([0, 6, 0, 0, 0, 2, 0x7b, 0x7b, 0x41])), 1);
});

test('the timer and globalstate sections of the real stream decode by their description', () => {
  const file = readVector('qemu-7.2/none-16M.stream');
  const desc = findVmDescription(file)!.description;
  const decoder = createVmDescDeviceDecoder(desc);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  // Sections located by hand (testdata/qemu-7.2/none-16M.sections.txt): FULL timer at 36971,
  // FULL globalstate at 37019; header = 1 + 4 + 1 + len(idstr) + 4 + 4 bytes.
  const timerAt = 36971;
  assert.equal(file[timerAt], 0x04);
  const timerPayload = timerAt + 14 + 'timer'.length;
  const r = new ByteReader(file, timerPayload);
  const timer = decoder.decode(fullHeader('timer', 0, 2, timerAt, 0), r) as VmState;
  assert.deepEqual(timer, {
    fields: {
      cpu_ticks_offset: Number(view.getBigInt64(timerPayload)),
      unused: '0000000000000000',
      cpu_clock_offset: Number(view.getBigInt64(timerPayload + 16)),
    },
    subsections: {},
  });
  assert.equal(r.pos, timerPayload + 24);
  assert.equal(file[r.pos], 0x7e, 'the footer follows');

  const gsAt = 37019;
  const gsPayload = gsAt + 14 + 'globalstate'.length;
  const r2 = new ByteReader(file, gsPayload);
  const gs = decoder.decode(fullHeader('globalstate', 0, 1, gsAt, 4), r2) as VmState;
  const runstateHex = Buffer.from('running').toString('hex') + '00'.repeat(93);
  assert.deepEqual(gs, { fields: { size: 8, runstate: runstateHex }, subsections: {} });
  assert.equal(r2.pos, gsPayload + 104);
  assert.equal(file[r2.pos], 0x7e);
});

const HAND_DESC = JSON.stringify({
  page_size: 4096,
  devices: [
    {
      name: 'dev0', instance_id: 1, vmsd_name: 'mydev', version: 3,
      fields: [
        { name: 'a', type: 'int8', size: 1 },
        { name: 'b', type: 'uint16', size: 2 },
        { name: 'c', type: 'int32 le', size: 4 },
        { name: 'd', type: 'uint64', size: 8 },
        { name: 'e', type: 'int64', size: 8 },
        { name: 'f', type: 'bool', size: 1 },
        { name: 'regs', array_len: 3, type: 'uint32', size: 4 },
        { name: 'q', index: 0, type: 'struct', size: 15, struct: { vmsd_name: 'q', version: 1, fields: [{ name: 'num', type: 'uint16', size: 2 }], subsections: [{ vmsd_name: 'q/extra', version: 2, fields: [{ name: 'x', type: 'uint8', size: 1 }] }] } },
        { name: 'q', index: 1, type: 'struct', size: 2, struct: { vmsd_name: 'q', version: 1, fields: [{ name: 'num', type: 'uint16', size: 2 }] } },
        { name: 'blob', type: 'buffer', size: 3 },
        { name: '__proto__', type: 'weird', size: 2 },
        { name: 'pts', array_len: 2, type: 'struct', size: 4, struct: { vmsd_name: 'pt', version: 1, fields: [{ name: 'x', type: 'int16', size: 2 }, { name: 'y', type: 'int16', size: 2 }] } },
      ],
      subsections: [
        { vmsd_name: 'mydev/one', version: 1, fields: [{ name: 'n', type: 'uint32', size: 4 }], subsections: [{ vmsd_name: 'mydev/one/deep', version: 5, fields: [{ name: 'z', type: 'uint8', size: 1 }] }] },
        { vmsd_name: 'mydev/two', version: 2, fields: [{ name: 'm', type: 'uint8', size: 1 }] },
      ],
    },
    { name: 'oldstyle', instance_id: 0, size: 4, fields: [{ name: 'data', size: 4, type: 'buffer' }] },
  ],
});

const SUB_ONE = '05 09 6d796465762f6f6e65 00000001 0000002a 05 0e 6d796465762f6f6e652f64656570 00000005 07';
const SUB_TWO = '05 09 6d796465762f74776f 00000002 63';
const DEV0_FIELDS =
  'ff 0102 feffffff ffffffffffffffff fffffffffffffffe 01 00000001 00000002 00000003' +
  ' 0007 05 07 712f6578747261 00000002 09' + // q[0] with subsection q/extra
  ' 0008 616263 beef 0001 fffe 0003 0004';
const DEV0_EXPECTED = JSON.parse(`{
  "fields": {"a": -1, "b": 258, "c": -2, "d": "18446744073709551615", "e": -2, "f": true, "regs": [1, 2, 3],
    "q": [{"fields": {"num": 7}, "subsections": {"q/extra": {"fields": {"x": 9}, "subsections": {}}}},
          {"fields": {"num": 8}, "subsections": {}}],
    "blob": "616263", "__proto__": "beef",
    "pts": [{"fields": {"x": 1, "y": -2}, "subsections": {}}, {"fields": {"x": 3, "y": 4}, "subsections": {}}]},
  "subsections": {
    "mydev/one": {"fields": {"n": 42}, "subsections": {"mydev/one/deep": {"fields": {"z": 7}, "subsections": {}}}},
    "mydev/two": {"fields": {"m": 99}, "subsections": {}}}
}`) as VmState;

test('a hand-written description decodes ints, bools, arrays, structs, subsections, old-style devices', () => {
  const desc = parseVmDescription(HAND_DESC);
  const decoder = createVmDescDeviceDecoder(desc);
  const payload = fromHex(`${DEV0_FIELDS} ${SUB_ONE} ${SUB_TWO} 7e`);
  const r = new ByteReader(payload);
  const state = decoder.decode(fullHeader('dev0', 1, 3, 1000), r) as VmState;
  assert.deepEqual(state, DEV0_EXPECTED);
  assert.equal(Object.getPrototypeOf(state.fields), Object.prototype, '__proto__ is an own field, not the prototype');
  assert.deepEqual(JSON.parse(JSON.stringify(state)), DEV0_EXPECTED);
  assert.equal(payload[r.pos], 0x7e);
  // Subsections written in another order still match by name.
  const swapped = decoder.decode(fullHeader('dev0', 1, 3, 0), new ByteReader(fromHex(`${DEV0_FIELDS} ${SUB_TWO} ${SUB_ONE}`)));
  assert.deepEqual(swapped, DEV0_EXPECTED);
  const old = decoder.decode(fullHeader('oldstyle', 0, 1, 0), new ByteReader(fromHex('deadbeef')));
  assert.deepEqual(old, { fields: { data: 'deadbeef' }, subsections: {} });
  assert.equal(desc.devices[1].sizeBytes, 4);
});

test('every truncation of a payload throws ShortReadError, never a FormatError', () => {
  const desc = parseVmDescription(HAND_DESC);
  const payload = fromHex(`${DEV0_FIELDS} ${SUB_ONE} ${SUB_TWO}`);
  for (let n = 0; n < payload.length; n++) {
    assert.throws(() => decodeDevicePayload(desc.devices[0], new ByteReader(payload, 0, n)), ShortReadError, `prefix ${n}`);
  }
  assert.deepEqual(decodeDevicePayload(desc.devices[0], new ByteReader(payload)), DEV0_EXPECTED);
});

test('description and decoding errors carry codes and offsets', () => {
  expectCode('MIG_ERR_VMDESC_BAD_JSON', () => parseVmDescription('{"page_size": 4096,'));
  expectCode('MIG_ERR_VMDESC_INVALID', () => parseVmDescription('{"page_size": 4096}'));
  expectCode('MIG_ERR_VMDESC_INVALID', () => parseVmDescription('{"page_size": 4096, "devices": [{"name": "x", "instance_id": 0, "fields": [{"name": "a", "type": "int8"}]}]}'));
  expectCode('MIG_ERR_VMDESC_INVALID', () =>
    parseVmDescription('{"page_size": 1, "devices": [{"name": "x", "instance_id": 0, "fields": [{"name": "a", "index": 1, "type": "int8", "size": 1}]}]}'));
  expectCode('MIG_ERR_VMDESC_LIMIT', () => parseVmDescription(`${'['.repeat(100)}${']'.repeat(100)}`));
  expectCode('MIG_ERR_VMDESC_LIMIT', () =>
    parseVmDescription('{"page_size": 1, "devices": [{"name": "x", "instance_id": 0, "fields": [{"name": "a", "array_len": 5, "type": "int8", "size": 1}]}]}', { maxArrayLen: 4 }));
  expectCode('MIG_ERR_VMDESC_LIMIT', () =>
    parseVmDescription('{"page_size": 1, "devices": [{"name": "x", "instance_id": 0, "fields": [{"name": "a", "type": "buffer", "size": 1e12}]}]}'));

  const decoder = createVmDescDeviceDecoder(parseVmDescription(HAND_DESC));
  const dev0 = (hex: string, version = 3) => () => decoder.decode(fullHeader('dev0', 1, version, 1000), new ByteReader(fromHex(hex)));
  const payloadAt = 1000 + 14 + 4;
  const fieldsLength = fromHex(DEV0_FIELDS).length;
  expectCode('MIG_ERR_VMDESC_UNKNOWN_DEVICE', () => decoder.decode(fullHeader('dev0', 2, 3, 1000), new ByteReader(new Uint8Array(0))), payloadAt);
  expectCode('MIG_ERR_VMDESC_VERSION_MISMATCH', dev0(DEV0_FIELDS, 4), payloadAt);
  expectCode('MIG_ERR_VMDESC_VERSION_MISMATCH', dev0(`${DEV0_FIELDS} 05 09 6d796465762f74776f 00000003 63`), payloadAt + fieldsLength);
  expectCode('MIG_ERR_VMDESC_MISSING_SUBSECTION', dev0(`${DEV0_FIELDS} 7e`), payloadAt + fieldsLength);
  expectCode('MIG_ERR_VMDESC_UNKNOWN_SUBSECTION', dev0(`${DEV0_FIELDS} 05 09 6d796465762f78787878 00000001`), payloadAt + fieldsLength);
  expectCode('MIG_ERR_VMDESC_UNKNOWN_SUBSECTION', dev0(`${DEV0_FIELDS} ${SUB_TWO} ${SUB_TWO}`), payloadAt + fieldsLength + fromHex(SUB_TWO).length);
  assert.throws(dev0(`${DEV0_FIELDS} 00`), (err) => err instanceof FormatError && err.section?.idstr === 'dev0' && err.section.sectionId === 9);
});

test('every vmdesc error code is produced by some test', () => {
  for (const code of VMDESC_ERROR_CODES) assert.ok(seenCodes.has(code), `code ${code} never produced`);
});

test('random payloads against the descriptions give a state, ShortReadError or FormatError only', () => {
  const devices = [...parseVmDescription(HAND_DESC).devices, ...parseVmDescription(NONE_16M_JSON).devices];
  const base = fromHex(`${DEV0_FIELDS} ${SUB_ONE} ${SUB_TWO}`);
  fc.assert(
    fc.property(fc.nat(devices.length - 1), fc.array(fc.record({ at: fc.nat(base.length - 1), value: fc.nat(255) }), { maxLength: 4 }), fc.nat(base.length), (d, edits, cut) => {
      const bytes = base.slice(0, cut);
      for (const e of edits) if (e.at < bytes.length) bytes[e.at] = e.value;
      try {
        decodeDevicePayload(devices[d], new ByteReader(bytes));
      } catch (err) {
        if (!(err instanceof FormatError) && !(err instanceof ShortReadError)) throw err;
      }
    }),
    { numRuns: 2000 },
  );
});
