// Every error code of the main-stream codec, produced by a hand-built fixture (Fx or hex),
// with its offset checked; each fixture is also fed byte by byte and must fail the same way.
// The last test asserts that the codes seen cover STREAM_ERROR_CODES.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FormatError } from './errors.ts';
import { StreamDecoder } from './stream-decoder.ts';
import type { StreamDecoderOptions } from './stream-decoder.ts';
import { StreamEncoder } from './stream-encoder.ts';
import { STREAM_ERROR_CODES } from './stream-errors.ts';
import type { DeviceSectionDecoder } from './stream-types.ts';
import { Fx, RecordingSink, pageOf } from './stream-fixtures.test-util.ts';

const seen = new Set<string>();

function run(chunks: readonly Uint8Array[], options: StreamDecoderOptions): { error: unknown; decoder: StreamDecoder } {
  const d = new StreamDecoder(new RecordingSink(), options);
  try {
    for (const c of chunks) d.push(c);
    d.end();
  } catch (e) {
    return { error: e, decoder: d };
  }
  return { error: null, decoder: d };
}

/** Decodes `bytes` whole and byte by byte; both must fail with `code` at `offset`. */
function expectError(code: string, bytes: Uint8Array, offset: number, options: StreamDecoderOptions = {}, message?: RegExp): FormatError {
  const whole = run([bytes], options);
  assert.ok(whole.error instanceof FormatError, `expected ${code}, got ${String(whole.error)}`);
  assert.equal(whole.error.code, code, whole.error.message);
  assert.equal(whole.error.offset, offset, whole.error.message);
  assert.equal(whole.decoder.error, whole.error);
  if (message !== undefined) assert.match(whole.error.message, message);
  if (bytes.length < 50_000) {
    const singles: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) singles.push(bytes.subarray(i, i + 1));
    const bytewise = run(singles, options);
    assert.ok(bytewise.error instanceof FormatError);
    assert.equal(bytewise.error.code, code, `byte by byte: ${bytewise.error.message}`);
    assert.equal(bytewise.error.offset, offset, `byte by byte: ${bytewise.error.message}`);
  }
  seen.add(code);
  return whole.error;
}

/** Header, CONFIGURATION "none" (17 bytes), START ram id 2 with one 16-page block "ram", EOS, footer. */
function prelude(): Fx {
  return new Fx().header().config('none').start(2, 'ram', 0, 4).memSize([['ram', 16 * 4096]]).eos().footer(2);
}
/** The prelude is 17 + 50 bytes long. */
const P = 67;
/** A PART header right after the prelude; its records start at P + 5. */
const partAt = (): Fx => prelude().part(2);
const R = P + 5;

test('header errors', () => {
  expectError('MIG_ERR_BAD_MAGIC', new Fx().hex('5145564e 00000003').build(), 0, {}, /Not a migration stream/);
  expectError('MIG_ERR_OBSOLETE_VERSION', new Fx().hex('5145564d 00000002').build(), 4, {}, /SaveVM v2 format is obsolete/);
  expectError('MIG_ERR_UNSUPPORTED_VERSION', new Fx().hex('5145564d 00000004').build(), 4, {}, /Unsupported migration stream version/);
});

test('truncation: inside a record, before EOF, inside a package', () => {
  expectError('MIG_ERR_TRUNCATED', new Fx().hex('5145564d 0000').build(), 6, {}, /inside a record/);
  expectError('MIG_ERR_TRUNCATED', new Fx().header().config('none').cmd(1).build(), 22, {}, /before EOF/);
  expectError('MIG_ERR_TRUNCATED', partAt().page(0, 'ram', pageOf(0)).build().subarray(0, R + 100), R + 100);
  expectError('MIG_ERR_TRUNCATED', prelude().cmd(7, '00000010').cmd(2, '00000001').build(), P + 18, {}, /PACKAGED/);
});

test('CONFIGURATION errors and limits', () => {
  expectError('MIG_ERR_CONFIG', new Fx().header().eof().build(), 8, {}, /Configuration section missing/);
  expectError('MIG_ERR_CONFIG', new Fx().header().config('none').hex('05 03').text('abc').be32(1).eof().build(), 17, {}, /subsection 'abc'/);
  expectError('MIG_ERR_CONFIG', new Fx().header().config('none').hex('05 1e').text('configuration/target-page-bits').be32(2).be32(12).eof().build(), 17);
  expectError('MIG_ERR_CONFIG', new Fx().header().config('none').hex('05 1e').text('configuration/target-page-bits').be32(1).be32(9).eof().build(), 53);
  expectError(
    'MIG_ERR_CONFIG',
    new Fx().header().config('none').hex('05 1e').text('configuration/target-page-bits').be32(1).be32(16).eof().build(),
    8,
    { targetPageBits: 12 },
    /Received TARGET_PAGE_BITS is 16 but local is 12/,
  );
  expectError('MIG_ERR_CONFIG', new Fx().header().config('none').config('none').build(), 17, {}, /out of place/);
  expectError('MIG_ERR_LIMIT', new Fx().header().u8(7).be32(300).build(), 9, {}, /machine type name/);
  expectError('MIG_ERR_LIMIT', new Fx().header().config('none').hex('05 1a').text('configuration/capabilities').be32(1).be32(65).build(), 49);
});

test('type byte, section and footer errors', () => {
  expectError('MIG_ERR_UNKNOWN_TYPE', new Fx().header().config('none').u8(0x09).build(), 17, {}, /Unknown savevm section type 9/);
  expectError('MIG_ERR_UNKNOWN_TYPE', new Fx().header().config('none').vmdesc('{}').build(), 17, {}, /VMDESCRIPTION before EOF/);
  expectError('MIG_ERR_UNKNOWN_TYPE', new Fx().header().config('none').cmd(1).u8(0x05).build(), 22);
  const missing = expectError('MIG_ERR_FOOTER_MISSING', new Fx().header().config('none').start(2, 'ram', 0, 4).memSize([]).eos().u8(0x7f).build(), 50, {}, /Missing section footer for ram/);
  assert.deepEqual(missing.section, { idstr: 'ram', sectionId: 2 });
  expectError('MIG_ERR_FOOTER_MISMATCH', new Fx().header().config('none').start(2, 'ram', 0, 4).memSize([]).eos().footer(3).build(), 50, {}, /read 0x3 expected 0x2/);
  expectError('MIG_ERR_FOOTER_MISMATCH', new Fx().header().config('none').full(1, 'timer', 0, 2).be64(0).be64(0).be64(0).footer(9).build(), 60);
  const unknown = expectError('MIG_ERR_UNKNOWN_SECTION', prelude().part(9).build(), P, {}, /Unknown savevm section 9/);
  assert.equal(unknown.section, null);
  expectError('MIG_ERR_SECTION_VERSION', new Fx().header().config('none').start(2, 'ram', 0, 3).build(), 17, {}, /unsupported version 3 for 'ram' v4/);
  expectError('MIG_ERR_SECTION_VERSION', new Fx().header().config('none').full(0, 'timer', 0, 1).be64(0).be64(0).be64(0).footer(0).build(), 17);
});

test('device sections: opaque, malformed, decoder failures, size limit', () => {
  const cpu = new Fx().header().config('pc').full(5, 'cpu', 0, 12).be32(1).footer(5).eof().build();
  const opaque = expectError('MIG_ERR_OPAQUE_SECTION', cpu, 15, {}, /'cpu'.*VMDESCRIPTION/);
  assert.deepEqual(opaque.section, { idstr: 'cpu', sectionId: 5 });
  const gs = new Fx().header().config('none').globalstate(4, 'running').build();
  gs.fill(0x41, 17 + 25 + 4, 17 + 25 + 104);
  expectError('MIG_ERR_DEVICE_STATE', gs, 42, {}, /NUL-terminated/);
  const icount = new Fx().header().config('none').full(0, 'timer', 0, 2).be64(0).be64(0).be64(0).hex('05 0c').text('timer/icount').be32(1).build();
  expectError('MIG_ERR_DEVICE_STATE', icount, 17 + 19 + 24, {}, /subsection 'timer\/icount'/);
  const throwing: DeviceSectionDecoder = {
    decode() {
      throw new TypeError('boom');
    },
  };
  expectError('MIG_ERR_DEVICE_STATE', cpu, 32, { deviceDecoder: throwing }, /boom/);
  const greedy: DeviceSectionDecoder = {
    decode(_h, r) {
      return r.bytesView(r.be32());
    },
  };
  const big = new Fx().header().config('pc').full(5, 'cpu', 0, 1).be32(5000).bytes(new Uint8Array(5000)).footer(5).eof().build();
  // The bound applies while buffering: a whole section inside one chunk is not held back.
  const small = { deviceDecoder: greedy, limits: { maxDeviceSectionBytes: 1000 } };
  assert.equal(run([big], small).error, null);
  const chunked = run([big.subarray(0, 100), big.subarray(100)], small).error;
  assert.ok(chunked instanceof FormatError && chunked.code === 'MIG_ERR_LIMIT' && chunked.offset === 15, String(chunked));
  assert.match(chunked.message, /device section larger than 1300 bytes/);
  const bytewise = run(Array.from(big, (b) => Uint8Array.of(b)), small).error;
  assert.ok(bytewise instanceof FormatError && bytewise.code === 'MIG_ERR_LIMIT' && bytewise.offset === 15, String(bytewise));
  const wide: DeviceSectionDecoder = {
    decode(_h, r) {
      return r.be64();
    },
  };
  expectError('MIG_ERR_INTEGER_RANGE', new Fx().header().config('pc').full(5, 'cpu', 0, 1).be64(2n ** 60n).footer(5).build(), 32, { deviceDecoder: wide });
});

test('RAM record flag errors', () => {
  expectError('MIG_ERR_RAM_FLAGS', partAt().word(0, 0x0a).build(), R, {}, /Unknown combination of migration flags: 0xa/);
  expectError('MIG_ERR_RAM_FLAGS', partAt().word(0, 0x400).build(), R, {}, /0x400/);
  expectError('MIG_ERR_RAM_FLAGS', partAt().word(0, 0).build(), R);
  for (const [flag, name] of [
    [0x01, 'FULL'],
    [0x40, 'XBZRLE'],
    [0x80, 'HOOK'],
    [0x100, 'COMPRESS_PAGE'],
    [0x200, 'MULTIFD_FLUSH'],
    [0x60, 'XBZRLE'],
  ] as const) {
    expectError('MIG_ERR_RAM_UNSUPPORTED', partAt().word(0, flag).build(), R, {}, new RegExp(`RAM_SAVE_FLAG_${name}`));
  }
  const postcopy = prelude()
    .cmd(3, '0000000000001000 0000000000001000')
    .cmd(4)
    .start(2, 'ram', 0, 4)
    .memSize([['ram', 4096]])
    .build();
  expectError('MIG_ERR_RAM_FLAGS', postcopy, P + 21 + 5 + 17, {}, /\(postcopy mode\)/);
});

test('RAM block and offset errors', () => {
  expectError('MIG_ERR_RAM_NO_BLOCK', partAt().zero(0, null).build(), R, {}, /Ack, bad migration stream!/);
  expectError('MIG_ERR_RAM_UNKNOWN_BLOCK', partAt().zero(0, 'zz').build(), R, {}, /Can't find block zz/);
  expectError('MIG_ERR_RAM_OFFSET', partAt().zero(16 * 4096, 'ram').build(), R, {}, /Illegal RAM offset 0x10000/);
  expectError('MIG_ERR_RAM_OFFSET', partAt().zero(0, 'ram').word(2 ** 60, 0x28).build(), R + 13, {}, /Illegal RAM offset 0x1000000000000000/);
  expectError('MIG_ERR_RAM_OFFSET', partAt().page(0, 'ram', pageOf(0)).zero(16 * 4096, null).build(), R + 12 + 4096);
  const blocks = (entries: ReadonlyArray<readonly [string, number]>, total: number): Uint8Array =>
    new Fx().header().config('none').start(2, 'ram', 0, 4).word(total, 0x04).bytes(new Fx().memSize(entries).build().subarray(8)).eos().footer(2).eof().build();
  expectError('MIG_ERR_RAM_BLOCKS', blocks([['a', 4096], ['a', 4096]], 8192), 17 + 17 + 8 + 10, {}, /appears twice/);
  expectError('MIG_ERR_RAM_BLOCKS', blocks([['a', 8192]], 4096), 17 + 17 + 8, {}, /exceed the MEM_SIZE total/);
  expectError('MIG_ERR_RAM_BLOCKS', partAt().memSize([['ram', 4096]]).build(), R, {}, /MEM_SIZE record in a PART section/);
  expectError('MIG_ERR_LIMIT', blocks([['a', 4096], ['b', 4096], ['c', 4096]], 3 * 4096), 17 + 17 + 8 + 2 * 10, { limits: { maxRamBlocks: 2 } });
  expectError('MIG_ERR_LIMIT', blocks([], 2 ** 45), 34, {}, /MEM_SIZE total/);
  const hugeTotal = new Fx().header().config('none').start(2, 'ram', 0, 4).word(2 ** 60, 0x04).build();
  expectError('MIG_ERR_INTEGER_RANGE', hugeTotal, 34, {}, /MEM_SIZE total/);
  expectError('MIG_ERR_INTEGER_RANGE', blocks([['a', 2 ** 60]], 4096), 44);
});

/** A prelude followed by the command `num` with `payload`; the command starts at P. */
const cmdAfterPrelude = (num: number, payload: Fx | string = ''): Uint8Array => prelude().cmd(num, payload).build();

test('command errors', () => {
  expectError('MIG_ERR_COMMAND_UNKNOWN', cmdAfterPrelude(0), P, {}, /MIG_CMD 0x0 unknown \(len 0x0\)/);
  expectError('MIG_ERR_COMMAND_UNKNOWN', cmdAfterPrelude(11), P, {}, /SWITCHOVER_START is a QEMU 10.0\+ command/);
  expectError('MIG_ERR_COMMAND_UNKNOWN', prelude().u8(8).be16(0x20).be16(0xffff).build(), P, {}, /MIG_CMD 0x20 unknown \(len 0xffff\)/);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(2, '000001'), P, {}, /PING received with bad length - expecting 4, got 3/);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(1, '00'), P);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(7, '00'), P);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(3, '0000000000001000'), P, {}, /CMD_POSTCOPY_ADVISE invalid length \(8\)/);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(6, '00 01 61 00 0000000000000000 00000000000010'), P, {}, /invalid length \(19\)/);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(10, '03 6d656d 00'), P, {}, /CMD_RECV_BITMAP length 5/);
  expectError('MIG_ERR_COMMAND_LENGTH', cmdAfterPrelude(10), P);
  const ok = (f: Fx): Fx => f.u8(0).cstr('ram').u8(0).be64(0).be64(4096);
  expectError('MIG_ERR_COMMAND_PAYLOAD', cmdAfterPrelude(6, new Fx().u8(1).cstr('ram').u8(0).be64(0).be64(4096)), P, {}, /invalid version \(1\)/);
  expectError('MIG_ERR_COMMAND_PAYLOAD', cmdAfterPrelude(6, new Fx().u8(0).cstr('ram').u8(5).be64(0).be64(4096)), P, {}, /missing nil \(5\)/);
  expectError('MIG_ERR_COMMAND_PAYLOAD', cmdAfterPrelude(6, new Fx().u8(0).cstr('ram').u8(0).be64(0).be64(4096).u8(1)), P, {}, /whole 16-byte pairs/);
  expectError('MIG_ERR_COMMAND_PAYLOAD', cmdAfterPrelude(6, new Fx().u8(0).u8(40).text('ram').u8(0).be64(0).be64(4096)), P, {}, /shorter than its content/);
  const thirteen = new Fx().u8(0).cstr('ram').u8(0);
  for (let i = 0; i < 13; i++) thirteen.be64(0).be64(4096);
  expectError('MIG_ERR_LIMIT', prelude().cmd(3, '0000000000001000 0000000000001000').cmd(6, thirteen).build(), P + 21, {}, /13 ranges/);
  expectError('MIG_ERR_LIMIT', cmdAfterPrelude(7, '10000001'), P, {}, /PACKAGED length 268435457/);
  expectError('MIG_ERR_INTEGER_RANGE', cmdAfterPrelude(3, 'ffffffffffffffff 0000000000001000'), P + 5);
  assert.equal(run([prelude().cmd(3, '0000000000001000 0000000000001000').cmd(6, ok(new Fx())).eof().build()], {}).error, null);
});

test('postcopy state and discard checks against the block list', () => {
  const advise = (f: Fx): Fx => f.cmd(3, '0000000000001000 0000000000001000');
  expectError('MIG_ERR_POSTCOPY_STATE', cmdAfterPrelude(4), P, {}, /CMD_POSTCOPY_LISTEN in wrong postcopy state \(none\)/);
  expectError('MIG_ERR_POSTCOPY_STATE', advise(prelude()).cmd(5).build(), P + 21, {}, /CMD_POSTCOPY_RUN/);
  expectError('MIG_ERR_POSTCOPY_STATE', advise(advise(prelude())).build(), P + 21, {}, /CMD_POSTCOPY_ADVISE/);
  expectError('MIG_ERR_POSTCOPY_STATE', cmdAfterPrelude(6, new Fx().u8(0).cstr('ram').u8(0).be64(0).be64(4096)), P);
  const range = (name: string, start: number, len: number): Fx => new Fx().u8(0).cstr(name).u8(0).be64(start).be64(len);
  expectError('MIG_ERR_RAM_UNKNOWN_BLOCK', advise(prelude()).cmd(6, range('pc.ram', 0, 4096)).build(), P + 21, {}, /unknown block 'pc.ram'/);
  expectError('MIG_ERR_RAM_MISALIGNED', advise(prelude()).cmd(6, range('ram', 0x800, 4096)).build(), P + 21, {}, /not aligned/);
  expectError('MIG_ERR_RAM_MISALIGNED', advise(prelude()).cmd(6, range('ram', 0, 100)).build(), P + 21);
  expectError('MIG_ERR_RAM_OFFSET', advise(prelude()).cmd(6, range('ram', 15 * 4096, 2 * 4096)).build(), P + 21, {}, /beyond block 'ram'/);
});

test('PACKAGED errors', () => {
  const nested = new Fx().cmd(7, '00000000');
  expectError('MIG_ERR_PACKAGED', prelude().cmd(7, new Fx().be32(nested.length)).bytes(nested.build()).build(), P + 9, {}, /PACKAGED inside PACKAGED/);
  const crossing = new Fx().cmd(2, '00000001');
  expectError('MIG_ERR_PACKAGED', prelude().cmd(7, '00000006').bytes(crossing.build()).build(), P + 9, {}, /crosses the end/);
  const ramInside = new Fx().part(2);
  expectError('MIG_ERR_PACKAGED', prelude().cmd(7, '00000005').bytes(ramInside.build()).zero(0, 'ram').build(), P + 14, {}, /ended inside a section/);
});

test('VMDESCRIPTION and trailing bytes', () => {
  const done = (): Fx => new Fx().header().config('none').eof();
  expectError('MIG_ERR_TRAILING', done().u8(0x01).build(), 18, {}, /Expected vmdescription section, but got 1/);
  expectError('MIG_ERR_TRAILING', done().vmdesc('{}').u8(0).build(), 25, {}, /after the VMDESCRIPTION/);
  expectError('MIG_ERR_LIMIT', done().vmdesc('{"a": 1}').build(), 18, { limits: { maxVmdescriptionBytes: 7 } }, /VMDESCRIPTION of 8 bytes/);
  expectError('MIG_ERR_LIMIT', done().u8(6).be32(0xffffffff).build(), 18, {}, /VMDESCRIPTION of 4294967295 bytes/);
});

test('sticky errors, callback failures and push after end', () => {
  const d = new StreamDecoder(new RecordingSink());
  assert.throws(() => d.push(new Fx().hex('00000000').build()), (e: unknown) => e instanceof FormatError && e.code === 'MIG_ERR_BAD_MAGIC');
  const first = d.error;
  assert.ok(first !== null);
  assert.throws(() => d.push(new Uint8Array(1)), (e: unknown) => e === first);
  assert.throws(() => d.end(), (e: unknown) => e === first);

  const boom = new RangeError('sink is full');
  const throwing = new StreamDecoder({
    record() {},
    ramZero() {
      throw boom;
    },
    ramPage() {},
  });
  assert.throws(() => throwing.push(partAt().zero(0, 'ram').build()), (e: unknown) => e === boom);
  assert.equal(throwing.error?.code, 'MIG_ERR_CALLBACK');
  assert.equal(throwing.error?.cause, boom);
  seen.add('MIG_ERR_CALLBACK');

  const ended = new StreamDecoder(new RecordingSink());
  ended.push(new Fx().header().config('none').eof().build());
  ended.end();
  assert.throws(() => ended.push(new Uint8Array(1)), (e: unknown) => e instanceof FormatError && e.code === 'MIG_ERR_USAGE' && e.offset === 18);
  seen.add('MIG_ERR_USAGE');
});

test('encoder misuse is MIG_ERR_ENCODE', () => {
  const e = new StreamEncoder({ onChunk() {} });
  for (const bad of [
    () => e.ramPage('ram', 100, new Uint8Array(4096)),
    () => e.ramPage('ram', 0, new Uint8Array(10)),
    () => e.ramZero('x'.repeat(256), 0),
    () => e.ramZero('ram', 0, 256),
    () => e.be64(-1),
    () => e.globalstatePayload({ runstate: 'r'.repeat(100) }),
    () => e.command({ kind: 'postcopy-ram-discard', blockName: 'ram', ranges: [] }),
    () => e.command({ kind: 'packaged', lengthBytes: 2 ** 32 }),
    () => e.configuration({ machine: 'none', uuid: new Uint8Array(3) }),
    () => e.ramPages('ram', new Uint8Array(4096), 0, 0, 100),
  ]) {
    assert.throws(bad, (err: unknown) => err instanceof FormatError && err.code === 'MIG_ERR_ENCODE');
  }
  seen.add('MIG_ERR_ENCODE');
});

test('every error code is produced by a test above', () => {
  const missing = STREAM_ERROR_CODES.filter((c) => !seen.has(c));
  assert.deepEqual(missing, []);
  assert.equal(new Set(STREAM_ERROR_CODES).size, STREAM_ERROR_CODES.length);
});
