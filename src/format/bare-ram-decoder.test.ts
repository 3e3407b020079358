// The postcopy-preempt channel's decoder (bare RAM records, facts §3.10), the main decoder's
// restart on a recovery connection (facts §3.11), and the per-block received bitmap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bitmap } from '../lib/bitmap.ts';
import { BareRamDecoder } from './bare-ram-decoder.ts';
import { FormatError } from './errors.ts';
import { bitmapFromRecvBitmap, recvBitmapFromBitmap, recvBitmapFromRange } from './recv-bitmap.ts';
import type { VersionPageSink } from './ram-records.ts';
import { StreamDecoder } from './stream-decoder.ts';
import { MIG_ERR_RAM_FLAGS, MIG_ERR_RAM_NO_BLOCK, MIG_ERR_RAM_UNKNOWN_BLOCK, MIG_ERR_TRAILING, MIG_ERR_TRUNCATED } from './stream-errors.ts';
import { Fx, pageOf, RecordingSink } from './stream-fixtures.test-util.ts';
import type { RamBlockRef } from './stream-types.ts';

const BLOCKS: RamBlockRef[] = [
  { index: 0, name: 'pc.ram', usedLengthBytes: 64 * 4096 },
  { index: 1, name: 'ram1', usedLengthBytes: 16 * 4096 },
];

/** Named PAGE, CONTINUE ZERO, CONTINUE PAGE, named ZERO in the other block, named PAGE, EOS. */
function channelBytes(): Uint8Array {
  return new Fx()
    .page(0x5000, 'ram1', pageOf(1))
    .zero(0x6000, null)
    .page(0x7000, null, pageOf(2))
    .zero(0x3f000, 'pc.ram')
    .page(0x1000, 'ram1', pageOf(3))
    .eos()
    .build();
}

function decodeAll(chunks: readonly Uint8Array[]): RecordingSink {
  const sink = new RecordingSink();
  const decoder = new BareRamDecoder(sink);
  decoder.adoptBlocks(BLOCKS);
  for (const chunk of chunks) decoder.push(chunk);
  decoder.end();
  assert.equal(decoder.sawEos, true);
  return sink;
}

test('bare RAM records decode the same at every split offset, with their own CONTINUE state, until EOS', () => {
  const bytes = channelBytes();
  const whole = decodeAll([bytes]).log;
  assert.deepEqual(whole.slice(0, 5).map((e) => Object.keys(e as object)[0]), ['page', 'zero', 'page', 'zero', 'page']);
  assert.deepEqual(whole[1], { zero: 'ram1', index: 1, offsetBytes: 0x6000, fill: 0 });
  assert.deepEqual(whole[3], { zero: 'pc.ram', index: 0, offsetBytes: 0x3f000, fill: 0 });
  assert.deepEqual(whole[5], { kind: 'ram-eos', depth: 0 });
  for (let k = 0; k <= bytes.length; k++) {
    assert.deepEqual(decodeAll([bytes.subarray(0, k), bytes.subarray(k)]).log, whole, `split at ${k}`);
  }
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 12 }), (cuts) => {
      const sorted = [...cuts].sort((a, b) => a - b);
      const chunks: Uint8Array[] = [];
      let at = 0;
      for (const cut of [...sorted, bytes.length]) {
        chunks.push(bytes.subarray(at, cut));
        at = cut;
      }
      assert.deepEqual(decodeAll(chunks).log, whole);
    }),
    { numRuns: 200 },
  );
});

test('bare RAM records: version payloads, and the errors of a bad channel', () => {
  const versions: Array<[string, number, number]> = [];
  const sink: VersionPageSink = {
    record: () => undefined,
    ramPage: () => assert.fail('no exact page here'),
    ramZero: () => undefined,
    ramPageVersion: (block, offsetBytes, version) => versions.push([block.name, offsetBytes, version]),
  };
  const v = new BareRamDecoder(sink, { pagePayloadMode: 'version' });
  v.adoptBlocks(BLOCKS);
  v.push(new Fx().word(0x2000, 0x08).cstr('pc.ram').hex('0700000000000000').word(0x3000, 0x28).hex('0800000000000000').eos().build());
  assert.deepEqual(versions, [['pc.ram', 0x2000, 7], ['pc.ram', 0x3000, 8]]);
  assert.throws(() => new BareRamDecoder(new RecordingSink(), { pagePayloadMode: 'version' }), TypeError);

  const fails = (bytes: Uint8Array, code: string, end = false): void => {
    const d = new BareRamDecoder(new RecordingSink());
    d.adoptBlocks(BLOCKS);
    const run = (): void => {
      d.push(bytes);
      if (end) d.end();
    };
    assert.throws(run, (e: unknown) => e instanceof FormatError && e.code === code, code);
    assert.throws(() => d.push(new Uint8Array(1)), (e: unknown) => e instanceof FormatError && e.code === code, 'sticky');
  };
  fails(new Fx().zero(0, null).build(), MIG_ERR_RAM_NO_BLOCK);
  fails(new Fx().zero(0, 'rom').build(), MIG_ERR_RAM_UNKNOWN_BLOCK);
  fails(new Fx().memSize([['pc.ram', 64 * 4096]]).build(), MIG_ERR_RAM_FLAGS);
  fails(new Fx().eos().u8(0).build(), MIG_ERR_TRAILING);
  fails(new Fx().zero(0, 'ram1').build(), MIG_ERR_TRUNCATED, true);
  fails(new Fx().zero(0, 'ram1').build().subarray(0, 5), MIG_ERR_TRUNCATED, true);
});

test('the main decoder resumes on a recovery connection: no header, top level, blocks and sections kept, CONTINUE reset', () => {
  const page = pageOf(9);
  const original = new Fx()
    .header()
    .config('none')
    .start(2, 'ram', 0, 4)
    .memSize([['pc.ram', 64 * 4096]])
    .eos()
    .footer(2)
    .part(2)
    .page(0x1000, 'pc.ram', page)
    .page(0x2000, null, page)
    .build();
  const sink = new RecordingSink();
  const decoder = new StreamDecoder(sink);
  // The connection dies inside the second page record.
  decoder.push(original.subarray(0, original.length - 100));
  assert.throws(() => decoder.end(), (e: unknown) => e instanceof FormatError && e.code === MIG_ERR_TRUNCATED);
  const pagesBefore = sink.log.filter((e) => (e as { page?: string }).page !== undefined).length;
  assert.equal(pagesBefore, 1);
  assert.deepEqual(decoder.ramBlocks.map((b) => b.name), ['pc.ram']);

  decoder.resumeOnNewChannel();
  const recovery = new Fx()
    .cmd(10, new Fx().cstr('pc.ram'))
    .cmd(9)
    .part(2) // section 2 is still known
    .page(0x2000, 'pc.ram', page)
    .page(0x3000, null, page)
    .eos()
    .footer(2)
    .eof()
    .build();
  for (let at = 0; at < recovery.length; at += 7) decoder.push(recovery.subarray(at, at + 7));
  decoder.end();
  assert.equal(decoder.sawEof, true);
  assert.deepEqual(sink.kinds(), [
    'header', 'configuration', 'section-begin', 'ram-blocks', 'ram-eos', 'section-end', 'section-begin',
    // the recovery connection:
    'command:recv-bitmap', 'command:postcopy-resume', 'section-begin', 'ram-eos', 'section-end', 'eof',
  ]);
  const offsets = sink.log.filter((e) => (e as { page?: string }).page !== undefined).map((e) => (e as { offsetBytes: number }).offsetBytes);
  assert.deepEqual(offsets, [0x1000, 0x2000, 0x3000]);

  // A record on the new connection must name its block again.
  const strict = new StreamDecoder(new RecordingSink());
  strict.push(original.subarray(0, original.length - 100));
  strict.resumeOnNewChannel();
  assert.throws(() => strict.push(new Fx().part(2).page(0x4000, null, page).build()), (e: unknown) => e instanceof FormatError && e.code === MIG_ERR_RAM_NO_BLOCK);
});

test('recvBitmapFromRange equals the bitmap of the block cut out of a guest-wide map, at any offset', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.integer(), (size, a, b, seed) => {
      const bitmap = new Bitmap(size);
      let x = seed | 1;
      for (let i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        if ((x & 3) === 0) bitmap.set(i);
      }
      const start = Math.min(a % size, size);
      const count = Math.min(b, size - start);
      const wire = recvBitmapFromRange(bitmap, start, count);
      const block = new Bitmap(count);
      for (let i = 0; i < count; i++) if (bitmap.test(start + i)) block.set(i);
      assert.deepEqual(wire, recvBitmapFromBitmap(block, count));
      const back = bitmapFromRecvBitmap(wire, count);
      for (let i = 0; i < count; i++) assert.equal(back.test(i), bitmap.test(start + i));
    }),
    { numRuns: 300 },
  );
  assert.throws(() => recvBitmapFromRange(new Bitmap(10), 5, 6), FormatError);
});
