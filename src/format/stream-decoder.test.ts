// Decoder tests on independent fixtures: literal bytes from facts §1.7 and streams built
// with the test-only Fx builder (never with StreamEncoder), decoded whole, split at every
// offset, byte by byte and in random chunkings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ByteReader } from '../lib/bytes.ts';
import { StreamDecoder, decodeStream } from './stream-decoder.ts';
import type { StreamDecoderOptions } from './stream-decoder.ts';
import type { DeviceSectionDecoder, SectionHeader } from './stream-types.ts';
import { Fx, RecordingSink, fnv, pageOf } from './stream-fixtures.test-util.ts';

const VMDESC_JSON =
  '{"page_size": 4096, "devices": [{"name": "timer", "instance_id": 0, "vmsd_name": "timer", "version": 2, "fields": ' +
  '[{"name": "cpu_ticks_offset", "type": "int64", "size": 8}, {"name": "unused", "type": "unused_buffer", "size": 8}, ' +
  '{"name": "cpu_clock_offset", "type": "int64", "size": 8}]}, {"name": "globalstate", "instance_id": 0, "vmsd_name": ' +
  '"globalstate", "version": 1, "fields": [{"name": "size", "type": "uint32", "size": 4}, {"name": "runstate", "type": ' +
  '"buffer", "size": 100}]}]}';

/** The §1.7 capture of a 7.2 `-M none -m 16M` precopy, spelled out byte by byte. */
function facts17Stream(): Uint8Array {
  const f = new Fx()
    .hex('51 45 56 4d 00 00 00 03')
    .hex('07 00 00 00 04 6e 6f 6e 65')
    .hex('01 00 00 00 02 03 72 61 6d 00 00 00 00 00 00 00 04')
    .hex('00 00 00 00 01 00 00 04')
    .hex('03 72 61 6d 00 00 00 00 01 00 00 00')
    .hex('00 00 00 00 00 00 00 10')
    .hex('7e 00 00 00 02')
    .hex('02 00 00 00 02')
    .hex('00 00 00 00 00 00 00 02 03 72 61 6d 00');
  for (let page = 1; page < 4096; page++) f.be32(0).be32(page * 0x1000 + 0x22).u8(0);
  f.hex('00 00 00 00 00 00 00 10 7e 00 00 00 02')
    .hex('03 00 00 00 02 00 00 00 00 00 00 00 10 7e 00 00 00 02')
    .hex('04 00 00 00 00 05 74 69 6d 65 72 00 00 00 00 00 00 00 02')
    .hex('00000000038a5052 0000000000000000 00000000016a8515 7e 00000000')
    .hex('04 00 00 00 04 0b 67 6c 6f 62 61 6c 73 74 61 74 65 00 00 00 00 00 00 00 01')
    .hex('00000008 72756e6e696e67')
    .bytes(new Uint8Array(93))
    .hex('7e 00 00 00 04')
    .hex('00')
    .hex('06 00 00 01 e6')
    .text(VMDESC_JSON);
  return f.build();
}

test('the §1.7 example decodes to its records, 4096 zero pages and 37645 bytes', () => {
  const bytes = facts17Stream();
  assert.equal(bytes.length, 37645);
  const sink = new RecordingSink();
  const d = decodeStream(bytes, sink);
  assert.equal(d.offsetBytes, 37645);
  assert.deepEqual(sink.kinds(), [
    'header',
    'configuration',
    'section-begin',
    'ram-blocks',
    'ram-eos',
    'section-end',
    'section-begin',
    'ram-eos',
    'section-end',
    'section-begin',
    'ram-eos',
    'section-end',
    'section-begin',
    'device',
    'section-end',
    'section-begin',
    'device',
    'section-end',
    'eof',
    'vmdescription',
  ]);
  const log = sink.log as Array<Record<string, unknown>>;
  const zeros = log.filter((e) => 'zero' in e);
  assert.equal(zeros.length, 4096);
  assert.deepEqual(zeros[0], { zero: 'ram', index: 0, offsetBytes: 0, fill: 0 });
  assert.deepEqual(zeros[4095], { zero: 'ram', index: 0, offsetBytes: 4095 * 4096, fill: 0 });
  const r = sink.records;
  assert.deepEqual(r[1], { kind: 'configuration', configuration: { machine: 'none' }, offset: 8 });
  assert.deepEqual(r[3], { kind: 'ram-blocks', totalBytes: 16777216, blocks: [{ name: 'ram', usedLengthBytes: 16777216 }], depth: 0 });
  const ends = r.filter((x) => x.kind === 'section-end');
  assert.deepEqual(
    ends.map((x) => (x.kind === 'section-end' ? [x.header.type, x.header.idstr, x.header.sectionId, x.header.offset, x.lengthBytes] : [])),
    [
      ['start', 'ram', 2, 17, 50],
      ['part', 'ram', 2, 67, 36886],
      ['end', 'ram', 2, 36953, 18],
      ['full', 'timer', 0, 36971, 48],
      ['full', 'globalstate', 4, 37019, 134],
    ],
  );
  const devices = r.filter((x) => x.kind === 'device').map((x) => (x.kind === 'device' ? x.state : null));
  assert.deepEqual(devices, [
    { cpu_ticks_offset: 0x38a5052n, cpu_clock_offset: 0x16a8515n },
    { size: 8, runstate: 'running' },
  ]);
  assert.deepEqual(r[18], { kind: 'eof', offset: 37153, depth: 0 });
  assert.deepEqual(r[19], { kind: 'vmdescription', json: VMDESC_JSON, offset: 37154 });
  assert.doesNotThrow(() => JSON.parse(VMDESC_JSON));
});

/** Reads a be32 count and that many bytes: stands in for a VMDESCRIPTION-driven decoder. */
const counted: DeviceSectionDecoder = {
  decode(header: SectionHeader, r: ByteReader) {
    const n = r.be32();
    return { idstr: header.idstr, n, data: fnv(r.bytesView(n)) };
  },
};

/**
 * One stream with every record kind: commands, RAM, package, devices, EOF, VMDESCRIPTION.
 * Its CONFIGURATION sets 1 KiB target pages (page bits 10), which keeps the exhaustive split
 * tests quick; 4 KiB pages are covered by the §1.7 example and the real vectors.
 */
const PS = 1024;
function allKinds(): Uint8Array {
  const pkg = new Fx()
    .cmd(4)
    .timer(0, -5n, 77n)
    .globalstate(4, 'running')
    .full(9, 'dev', 0, 3)
    .be32(5)
    .text('hello')
    .footer(9)
    .cmd(2, '00000003')
    .cmd(5);
  return new Fx()
    .header()
    .config('pc-i440fx-7.2')
    .hex('05 1e').text('configuration/target-page-bits').be32(1).be32(10)
    .hex('05 1a').text('configuration/capabilities').be32(1).be32(1).cstr('validate-uuid')
    .hex('05 12').text('configuration/uuid').be32(1).hex('00112233445566778899aabbccddeeff')
    .cmd(1)
    .cmd(2, '00000001')
    .cmd(3, '0000000000001000 0000000000001000')
    .start(3, 'ram', 0, 4)
    .memSize([['a', 4 * PS], ['bb', 2 * PS]])
    .eos()
    .footer(3)
    .part(3)
    .page(0, 'a', pageOf(1, PS))
    .page(PS, null, pageOf(2, PS))
    .zero(2 * PS, null)
    .zero(0, 'bb', 7)
    .page(PS, null, pageOf(3, PS))
    .eos()
    .footer(3)
    .cmd(6, new Fx().u8(0).cstr('a').u8(0).be64(3 * PS).be64(PS))
    .cmd(2, '00000002')
    .cmd(7, new Fx().be32(pkg.length))
    .bytes(pkg.build())
    .cmd(2, '00000004')
    .part(3)
    .page(3 * PS, 'a', pageOf(4, PS))
    .eos()
    .footer(3)
    .end(3)
    .eos()
    .footer(3)
    .eof()
    .vmdesc('{"page_size": 4096, "devices": []}')
    .build();
}

const allKindsOptions: StreamDecoderOptions = { deviceDecoder: counted };

function decodeChunks(chunks: readonly Uint8Array[], options: StreamDecoderOptions = allKindsOptions): unknown[] {
  const sink = new RecordingSink();
  const d = new StreamDecoder(sink, options);
  for (const c of chunks) d.push(c);
  d.end();
  return sink.log;
}

test('every record kind decodes with the expected records', () => {
  const bytes = allKinds();
  const sink = new RecordingSink();
  decodeStream(bytes, sink, allKindsOptions);
  assert.deepEqual(sink.kinds(), [
    'header', 'configuration',
    'command:open-return-path', 'command:ping', 'command:postcopy-advise',
    'section-begin', 'ram-blocks', 'ram-eos', 'section-end',
    'section-begin', 'ram-eos', 'section-end',
    'command:postcopy-ram-discard', 'command:ping', 'command:packaged',
    'command:postcopy-listen',
    'section-begin', 'device', 'section-end',
    'section-begin', 'device', 'section-end',
    'section-begin', 'device', 'section-end',
    'command:ping', 'command:postcopy-run', 'packaged-end',
    'command:ping',
    'section-begin', 'ram-eos', 'section-end',
    'section-begin', 'ram-eos', 'section-end',
    'eof', 'vmdescription',
  ]);
  const cfg = sink.records[1];
  assert.equal(cfg.kind, 'configuration');
  if (cfg.kind === 'configuration') {
    assert.equal(cfg.configuration.machine, 'pc-i440fx-7.2');
    assert.equal(cfg.configuration.targetPageBits, 10);
    assert.deepEqual(cfg.configuration.capabilities, ['validate-uuid']);
    assert.equal(fnv(cfg.configuration.uuid as Uint8Array), fnv(new Fx().hex('00112233445566778899aabbccddeeff').build()));
  }
  const pages = (sink.log as Array<Record<string, unknown>>).filter((e) => 'page' in e || 'zero' in e);
  assert.deepEqual(pages, [
    { page: 'a', index: 0, offsetBytes: 0, data: fnv(pageOf(1, PS)), lengthBytes: PS },
    { page: 'a', index: 0, offsetBytes: PS, data: fnv(pageOf(2, PS)), lengthBytes: PS },
    { zero: 'a', index: 0, offsetBytes: 2 * PS, fill: 0 },
    { zero: 'bb', index: 1, offsetBytes: 0, fill: 7 },
    { page: 'bb', index: 1, offsetBytes: PS, data: fnv(pageOf(3, PS)), lengthBytes: PS },
    { page: 'a', index: 0, offsetBytes: 3 * PS, data: fnv(pageOf(4, PS)), lengthBytes: PS },
  ]);
  const commands = sink.records.filter((r) => r.kind === 'command');
  assert.deepEqual(
    commands.map((c) => (c.kind === 'command' ? [c.command, c.depth] : null)),
    [
      [{ kind: 'open-return-path' }, 0],
      [{ kind: 'ping', value: 1 }, 0],
      [{ kind: 'postcopy-advise', pageSizeSummary: 4096, targetPageSize: 4096 }, 0],
      [{ kind: 'postcopy-ram-discard', blockName: 'a', ranges: [{ startBytes: 3 * PS, lengthBytes: PS }] }, 0],
      [{ kind: 'ping', value: 2 }, 0],
      [{ kind: 'packaged', lengthBytes: 232 }, 0],
      [{ kind: 'postcopy-listen' }, 1],
      [{ kind: 'ping', value: 3 }, 1],
      [{ kind: 'postcopy-run' }, 1],
      [{ kind: 'ping', value: 4 }, 0],
    ],
  );
  const devices = sink.records.filter((r) => r.kind === 'device').map((r) => (r.kind === 'device' ? [r.header.idstr, r.header.depth, r.state] : null));
  assert.deepEqual(devices, [
    ['timer', 1, { cpu_ticks_offset: -5n, cpu_clock_offset: 77n }],
    ['globalstate', 1, { size: 8, runstate: 'running' }],
    ['dev', 1, { idstr: 'dev', n: 5, data: fnv(new Fx().text('hello').build()) }],
  ]);
});

test('two-chunk splits at every offset give identical output', () => {
  const bytes = allKinds();
  const whole = decodeChunks([bytes]);
  for (let k = 0; k <= bytes.length; k++) {
    assert.deepEqual(decodeChunks([bytes.subarray(0, k), bytes.subarray(k)]), whole, `split at ${k}`);
  }
});

test('byte-by-byte feeding gives identical output (all kinds and the §1.7 example)', () => {
  for (const [bytes, options] of [
    [allKinds(), allKindsOptions],
    [facts17Stream(), {}],
  ] as const) {
    const whole = decodeChunks([bytes], options);
    const singles: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) singles.push(bytes.subarray(i, i + 1));
    assert.deepEqual(decodeChunks(singles, options), whole);
  }
});

test('random chunkings give identical output', () => {
  const bytes = allKinds();
  const whole = decodeChunks([bytes]);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 20 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks: Uint8Array[] = [];
      let at = 0;
      for (const p of points) {
        chunks.push(bytes.subarray(at, p));
        at = p;
      }
      chunks.push(bytes.subarray(at));
      assert.deepEqual(decodeChunks(chunks), whole);
    }),
    { numRuns: 300 },
  );
});

test('offsetBytes follows complete records and receivedBytes follows input', () => {
  const bytes = allKinds();
  const d = new StreamDecoder(new RecordingSink(), allKindsOptions);
  d.push(bytes.subarray(0, 10));
  assert.equal(d.receivedBytes, 10);
  assert.equal(d.offsetBytes, 8);
  d.push(bytes.subarray(10));
  assert.equal(d.offsetBytes, bytes.length);
  assert.equal(d.sawEof, true);
  d.end();
  d.end();
});
