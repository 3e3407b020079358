// More decoder tests on Fx fixtures: zero-copy page views, the options that add MEM_SIZE
// fields, the remaining commands, and a device decoder retried across many chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ByteReader } from '../lib/bytes.ts';
import { StreamDecoder, decodeStream } from './stream-decoder.ts';
import type { StreamDecoderOptions } from './stream-decoder.ts';
import type { DeviceSectionDecoder, SectionHeader } from './stream-types.ts';
import { Fx, RecordingSink, fnv, pageOf } from './stream-fixtures.test-util.ts';

/** Reads a be32 count and that many bytes: stands in for a VMDESCRIPTION-driven decoder. */
const counted: DeviceSectionDecoder = {
  decode(header: SectionHeader, r: ByteReader) {
    const n = r.be32();
    return { idstr: header.idstr, n, data: fnv(r.bytesView(n)) };
  },
};

function decodeChunks(chunks: readonly Uint8Array[], options: StreamDecoderOptions): unknown[] {
  const sink = new RecordingSink();
  const d = new StreamDecoder(sink, options);
  for (const c of chunks) d.push(c);
  d.end();
  return sink.log;
}

test('page payloads inside one chunk are views of the chunk, not copies', () => {
  const bytes = new Fx()
    .header()
    .config('none')
    .start(2, 'ram', 0, 4)
    .memSize([['ram', 3 * 4096]])
    .eos()
    .footer(2)
    .part(2)
    .page(0, 'ram', pageOf(9))
    .page(4096, null, pageOf(10))
    .page(8192, null, pageOf(11))
    .eos()
    .footer(2)
    .eof()
    .build();
  const views: Uint8Array[] = [];
  const d = new StreamDecoder({ record() {}, ramPage: (_b, _o, data) => views.push(data), ramZero() {} });
  d.push(bytes);
  d.end();
  assert.equal(views.length, 3);
  for (const v of views) assert.equal(v.buffer, bytes.buffer);
  assert.equal(views[2].byteOffset, bytes.length - 1 - 13 - 4096);
});

test('x-ignore-shared in CONFIGURATION and postcopy huge-page blocks add MEM_SIZE fields', () => {
  const ignoreShared = new Fx()
    .header()
    .config('none')
    .hex('05 1a').text('configuration/capabilities').be32(1).be32(1).cstr('x-ignore-shared')
    .start(2, 'ram', 0, 4)
    .word(8192, 0x04).cstr('ram').be64(8192).be64(0x100000)
    .eos()
    .footer(2)
    .eof()
    .build();
  const s1 = new RecordingSink();
  decodeStream(ignoreShared, s1);
  assert.deepEqual(s1.records[3], { kind: 'ram-blocks', totalBytes: 8192, blocks: [{ name: 'ram', usedLengthBytes: 8192, gpa: 0x100000 }], depth: 0 });

  const huge = new Fx()
    .header()
    .config('none')
    .start(2, 'ram', 0, 4)
    .word(3 * 4096 + 0x200000, 0x04)
    .cstr('small').be64(3 * 4096)
    .cstr('huge').be64(0x200000).be64(0x200000)
    .eos()
    .footer(2)
    .eof()
    .build();
  const s2 = new RecordingSink();
  decodeStream(huge, s2, { postcopyRam: true, hugePageBlocks: ['huge'] });
  assert.deepEqual(s2.records[3], {
    kind: 'ram-blocks',
    totalBytes: 3 * 4096 + 0x200000,
    blocks: [
      { name: 'small', usedLengthBytes: 3 * 4096 },
      { name: 'huge', usedLengthBytes: 0x200000, pageSizeBytes: 0x200000 },
    ],
    depth: 0,
  });
});

test('remaining commands, an empty package and a stream without CONFIGURATION', () => {
  const bytes = new Fx()
    .header()
    .cmd(3)
    .cmd(8)
    .cmd(9)
    .cmd(10, new Fx().cstr('pc.ram'))
    .cmd(7, '00000000')
    .cmd(2, 'ffffffff')
    .eof()
    .build();
  const sink = new RecordingSink();
  decodeStream(bytes, sink, { requireConfiguration: false });
  assert.deepEqual(sink.log, [
    { kind: 'header', version: 3 },
    { kind: 'command', command: { kind: 'postcopy-advise-empty' }, offset: 8, depth: 0 },
    { kind: 'command', command: { kind: 'enable-colo' }, offset: 13, depth: 0 },
    { kind: 'command', command: { kind: 'postcopy-resume' }, offset: 18, depth: 0 },
    { kind: 'command', command: { kind: 'recv-bitmap', blockName: 'pc.ram' }, offset: 23, depth: 0 },
    { kind: 'command', command: { kind: 'packaged', lengthBytes: 0 }, offset: 35, depth: 0 },
    { kind: 'packaged-end', offset: 44 },
    { kind: 'command', command: { kind: 'ping', value: 0xffffffff }, offset: 44, depth: 0 },
    { kind: 'eof', offset: 53, depth: 0 },
  ]);
});

test('a device decoder that needs more bytes is retried until the section is whole', () => {
  const payload = new Uint8Array(300_000).map((_, i) => i * 7);
  const bytes = new Fx()
    .header()
    .config('none')
    .full(5, 'big', 0, 1)
    .be32(payload.length)
    .bytes(payload)
    .footer(5)
    .eof()
    .build();
  const whole = decodeChunks([bytes], { deviceDecoder: counted });
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 1000) chunks.push(bytes.subarray(at, at + 1000));
  assert.deepEqual(decodeChunks(chunks, { deviceDecoder: counted }), whole);
  assert.deepEqual((whole[3] as { state: unknown }).state, { idstr: 'big', n: 300_000, data: fnv(payload) });
});

test('across chunk boundaries only the cut record is copied; the other pages stay views of their chunk', () => {
  const f = new Fx().header().config('none').start(2, 'ram', 0, 4).memSize([['ram', 40 * 4096]]).eos().footer(2).part(2).page(0, 'ram', pageOf(0));
  for (let i = 1; i < 40; i++) f.page(i * 4096, null, pageOf(i));
  const bytes = f.eos().footer(2).eof().build();
  const chunkBytes = 10_000;
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += chunkBytes) chunks.push(bytes.slice(at, at + chunkBytes));
  const buffers = new Set(chunks.map((c) => c.buffer));
  let views = 0;
  let copies = 0;
  const d = new StreamDecoder({
    record() {},
    ramPage: (_b, offsetBytes, data) => {
      assert.equal(fnv(data), fnv(pageOf(offsetBytes / 4096)));
      if (buffers.has(data.buffer)) views++;
      else copies++;
    },
    ramZero() {},
  });
  for (const c of chunks) d.push(c);
  d.end();
  assert.equal(views + copies, 40);
  assert.ok(copies <= chunks.length - 1, `${copies} copies for ${chunks.length} chunks`);
  assert.ok(views >= 40 - (chunks.length - 1));
});
