// The compact `version` payload mode (engine-types.ts PagePayloadMode): exact bytes of the
// encoder's version records against the independent Fx builder, the decoder option (fast loop
// and record-by-record path, split at every offset), the exact-page mark, wire-byte accounting,
// and the errors: a sink without ramPageVersion, a version beyond 2^53.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamDecoder } from './stream-decoder.ts';
import { encodeToBytes, StreamEncoder } from './stream-encoder.ts';
import type { RamBlockRef, StreamRecord } from './stream-types.ts';
import type { VersionPageSink } from './ram-records.ts';
import { FormatError } from './errors.ts';
import { Fx, fnv, pageOf } from './stream-fixtures.test-util.ts';

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A page source over a map of literal pages. */
const source = {
  pages: new Map<number, Uint8Array>([[7, pageOf(7)]]),
  copyPageOut(pageIndex: number, out: Uint8Array, outOffset = 0): void {
    out.set(this.pages.get(pageIndex) ?? new Uint8Array(4096), outOffset);
  },
};

class VersionSink implements VersionPageSink {
  readonly log: string[] = [];
  record(record: StreamRecord): void {
    if (record.kind === 'ram-eos' || record.kind === 'eof') this.log.push(record.kind);
  }
  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    this.log.push(`page ${block.name} ${offsetBytes} ${fnv(data)}`);
  }
  ramZero(block: RamBlockRef, offsetBytes: number, fill: number): void {
    this.log.push(`zero ${block.name} ${offsetBytes} ${fill}`);
  }
  ramPageVersion(block: RamBlockRef, offsetBytes: number, version: number): void {
    this.log.push(`version ${block.name} ${offsetBytes} ${version}`);
  }
}

/** Version value of 8 little-endian bytes, as the Fx builder writes them. */
function le64(fx: Fx, v: number): Fx {
  const low = v >>> 0;
  const high = Math.floor(v / 4294967296);
  return fx.u8(low).u8(low >>> 8).u8(low >>> 16).u8(low >>> 24).u8(high).u8(high >>> 8).u8(high >>> 16).u8(high >>> 24);
}

function versionStream(): { bytes: Uint8Array; encoder: StreamEncoder } {
  let encoder: StreamEncoder | null = null;
  const bytes = encodeToBytes((e) => {
    encoder = e;
    e.header();
    e.configuration({ machine: 'none' });
    e.sectionStart(2, 'ram', 0, 4);
    e.ramMemSize([
      { name: 'ram', usedLengthBytes: 16 * 4096 },
      { name: 'rom', usedLengthBytes: 4096 },
    ]);
    e.ramEos();
    e.footer(2);
    e.sectionPart(2);
    e.ramPageVersion('ram', 0, 5);
    e.ramPageVersion('ram', 1, 0x1_0000_0002); // above 2^32: the high half is used
    e.ramZeroPage('ram', 2);
    e.ramPageVersionExact('ram', 7, source, 7);
    e.ramPageVersion('rom', 0, 9);
    e.ramPageVersion('ram', 15, 1);
    e.ramEos();
    e.footer(2);
    e.eof();
  });
  return { bytes, encoder: encoder! };
}

test('version records are the record word, the name when needed, and an 8-byte LE version', () => {
  const { bytes } = versionStream();
  const fx = new Fx().header().config('none');
  fx.start(2, 'ram', 0, 4).memSize([['ram', 16 * 4096], ['rom', 4096]]).eos().footer(2);
  fx.part(2);
  le64(fx.word(0, 0x08).cstr('ram'), 5);
  le64(fx.word(4096, 0x28), 0x1_0000_0002);
  fx.zero(2 * 4096, null);
  fx.word(7 * 4096, 0x28).hex('ffffffff ffffffff').bytes(pageOf(7));
  le64(fx.word(0, 0x08).cstr('rom'), 9);
  le64(fx.word(15 * 4096, 0x08).cstr('ram'), 1);
  fx.eos().footer(2).eof();
  assert.equal(hexOf(bytes), hexOf(fx.build()));
});

test('wire offset counts every version record as a 4096-byte page and the exact record as a plain page', () => {
  const { bytes, encoder } = versionStream();
  // Four version records (+4088 each), one exact record (-8).
  assert.equal(encoder.payloadAdjustBytes, 4 * 4088 - 8);
  assert.equal(encoder.wireOffsetBytes, bytes.length + 4 * 4088 - 8);
});

test('the decoder in version mode delivers versions, zeros and exact pages, at every split', () => {
  const { bytes } = versionStream();
  const expected = [
    'ram-eos',
    'version ram 0 5',
    `version ram 4096 ${0x1_0000_0002}`,
    'zero ram 8192 0',
    `page ram ${7 * 4096} ${fnv(pageOf(7))}`,
    'version rom 0 9',
    `version ram ${15 * 4096} 1`,
    'ram-eos',
    'eof',
  ];
  const whole = new VersionSink();
  const decoder = new StreamDecoder(whole, { pagePayloadMode: 'version' });
  decoder.push(bytes);
  assert.deepEqual(whole.log, expected);
  for (let cut = 1; cut < bytes.length; cut++) {
    const sink = new VersionSink();
    const d = new StreamDecoder(sink, { pagePayloadMode: 'version' });
    d.push(bytes.subarray(0, cut));
    d.push(bytes.subarray(cut));
    assert.deepEqual(sink.log, expected, `split at ${cut}`);
  }
});

test('version mode needs a sink with ramPageVersion', () => {
  const plainSink = { record(): void {}, ramPage(): void {}, ramZero(): void {} };
  assert.throws(() => new StreamDecoder(plainSink, { pagePayloadMode: 'version' }), /ramPageVersion/);
  // The default mode is unchanged and does not ask for it.
  assert.doesNotThrow(() => new StreamDecoder(plainSink));
});

test('a version beyond 2^53 is a typed integer-range error', () => {
  const fx = new Fx().header().config('none');
  fx.start(2, 'ram', 0, 4).memSize([['ram', 4096]]).eos().footer(2);
  fx.part(2).word(0, 0x08).cstr('ram').hex('00000000 00002000');
  const sink = new VersionSink();
  const decoder = new StreamDecoder(sink, { pagePayloadMode: 'version' });
  assert.throws(() => decoder.push(fx.build()), (e: unknown) => e instanceof FormatError && e.code === 'MIG_ERR_INTEGER_RANGE');
});

test('the encoder refuses a version that is not a non-negative safe integer', () => {
  const e = new StreamEncoder({ onChunk: () => {} });
  assert.throws(() => e.ramPageVersion('ram', 0, -1), FormatError);
  assert.throws(() => e.ramPageVersion('ram', 0, 2 ** 53), FormatError);
});

test('ramZeroPage and ramPageFrom write the same bytes as ramZero and ramPage', () => {
  const fast = encodeToBytes((e) => {
    e.ramZeroPage('ram', 3);
    e.ramPageFrom('ram', 7, source, 7);
    e.ramZeroPage('ram', 2 ** 21); // offset 2^33: the record word's high half is used
  });
  const slow = encodeToBytes((e) => {
    e.ramZero('ram', 3 * 4096);
    e.ramPage('ram', 7 * 4096, pageOf(7));
    e.ramZero('ram', 2 ** 33);
  });
  assert.equal(hexOf(fast), hexOf(slow));
});

test('ramZeroRun and ramPageVersionRun write the same bytes as per-page calls, across chunks and 2^20 pages', () => {
  const versions = new Uint32Array(4000);
  for (let i = 0; i < versions.length; i++) versions[i] = 1 + ((i * 2654435761) >>> 8);
  const starts = [0, 5, 2 ** 20 - 1000, 2 ** 32 - 4001];
  for (const start of starts) {
    const opts = { chunkSizeBytes: 2 * 4096 + 512 };
    const chunks: Uint8Array[] = [];
    const enc = new StreamEncoder({ onChunk: (c) => chunks.push(c), ...opts });
    enc.ramZeroRun('ram', start, 3000);
    enc.ramPageVersionRun('ram', start + 3000, versions, 7, 900);
    enc.ramZeroRun('rom', start, 1);
    enc.ramZeroRun('rom', start + 1, 0);
    enc.flush();
    const slow = encodeToBytes((e) => {
      for (let i = 0; i < 3000; i++) e.ramZeroPage('ram', start + i);
      for (let i = 0; i < 900; i++) e.ramPageVersion('ram', start + 3000 + i, versions[7 + i]);
      e.ramZeroPage('rom', start);
    }, opts);
    assert.equal(hexOf(Buffer.concat(chunks)), hexOf(slow), `start ${start}`);
    assert.equal(enc.payloadAdjustBytes, 900 * 4088);
    assert.ok(chunks.length > 3);
  }
});
