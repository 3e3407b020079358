// Tests of the byte reader/writer and helpers that every codec builds on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter, ShortReadError, Unsafe64Error, concatBytes, fromHex, hex, isZeroPage, latin1, utf8Decode } from './bytes.ts';

test('ByteReader reads big- and little-endian fields and counted strings', () => {
  const r = new ByteReader(fromHex('01 0203 04050607 0000000100000002 fffffffffffffffe 0302 0403020100000000 03 616263 ff'));
  assert.equal(r.u8(), 1);
  assert.equal(r.be16(), 0x0203);
  assert.equal(r.be32(), 0x04050607);
  assert.equal(r.be64(), 0x100000002);
  assert.equal(r.be64Signed(), -2n);
  assert.equal(r.le16(), 0x0203);
  assert.equal(r.le64(), 0x01020304);
  assert.equal(r.peekU8(), 3);
  assert.equal(r.cstr8(), 'abc');
  assert.equal(r.remaining, 1);
  assert.equal(r.u8(), 0xff);
  assert.equal(r.remaining, 0);
});

test('ByteReader short reads report the position and the shortfall and do not move', () => {
  const r = new ByteReader(fromHex('00 01 02'), 1);
  assert.equal(r.u8(), 1);
  assert.throws(
    () => r.be32(),
    (e: unknown) => e instanceof ShortReadError && e.offset === 2 && e.needBytes === 3,
  );
  assert.equal(r.pos, 2);
  const bounded = new ByteReader(fromHex('aabbccdd'), 0, 2);
  assert.throws(() => bounded.be32(), ShortReadError);
  assert.equal(bounded.be16(), 0xaabb);
  assert.throws(() => bounded.peekU8(), ShortReadError);
  assert.throws(() => new ByteReader(fromHex('02 61')).cstr8(), ShortReadError);
});

test('64-bit reads refuse values above 2^53 - 1 and be64Big takes any value', () => {
  assert.equal(new ByteReader(fromHex('001fffffffffffff')).be64(), Number.MAX_SAFE_INTEGER);
  assert.throws(
    () => new ByteReader(fromHex('0020000000000000')).be64(),
    (e: unknown) => e instanceof Unsafe64Error && e.offset === 0 && e.high === 0x200000 && e.low === 0,
  );
  assert.throws(() => new ByteReader(fromHex('0000000000002000')).le64(), Unsafe64Error);
  assert.equal(new ByteReader(fromHex('ffffffffffffffff')).be64Big(), 2n ** 64n - 1n);
});

test('bytesView is a view into the same buffer', () => {
  const bytes = fromHex('00112233');
  const v = new ByteReader(bytes, 1).bytesView(2);
  assert.equal(v.buffer, bytes.buffer);
  assert.equal(v.byteOffset, 1);
  assert.equal(hex(v), '1122');
});

const fromHexText = (text: string): string => text.replace(/\s+/g, '');

test('ByteWriter grows, patches and refuses long counted strings', () => {
  const w = new ByteWriter(2);
  w.u8(1).be16(0x0203).be32(0).le16(0x0504).le32(0x09080706).be64(2 ** 40 + 5).le64(7).cstr8('hi').fill(0xee, 3).bytes(fromHex('beef'));
  w.patchBe32(3, 0xdeadbeef);
  assert.equal(hex(w.finish()), fromHexText('01 0203 deadbeef 0405 06070809 0000010000000005 0700000000000000 02 6869 eeeeee beef'));
  const copy = w.toBytes();
  w.reset();
  assert.equal(w.length, 0);
  assert.equal(copy.length, 37);
  assert.throws(() => w.cstr8('x'.repeat(256)), RangeError);
  w.be64Big(-1n);
  assert.equal(hex(w.finish()), 'ffffffffffffffff');
});

test('writer and reader round-trip random field sequences', () => {
  const field = fc.oneof(
    fc.record({ k: fc.constant('u8' as const), v: fc.nat({ max: 0xff }) }),
    fc.record({ k: fc.constant('be16' as const), v: fc.nat({ max: 0xffff }) }),
    fc.record({ k: fc.constant('be32' as const), v: fc.nat({ max: 0xffffffff }) }),
    fc.record({ k: fc.constant('be64' as const), v: fc.maxSafeNat() }),
    fc.record({ k: fc.constant('le32' as const), v: fc.nat({ max: 0xffffffff }) }),
    fc.record({ k: fc.constant('le64' as const), v: fc.maxSafeNat() }),
    fc.record({ k: fc.constant('cstr8' as const), v: fc.string({ unit: 'binary-ascii', maxLength: 20 }) }),
  );
  fc.assert(
    fc.property(fc.array(field, { maxLength: 30 }), (fields) => {
      const w = new ByteWriter(1);
      for (const f of fields) (w[f.k] as (v: number | string) => ByteWriter)(f.v);
      const r = new ByteReader(w.finish());
      for (const f of fields) assert.equal((r[f.k] as () => number | string)(), f.v);
      assert.equal(r.remaining, 0);
    }),
  );
});

test('hex, fromHex, concatBytes, latin1 and utf8Decode', () => {
  assert.equal(hex(fromHex('DE ad-BE:ef')), 'deadbeef');
  assert.throws(() => fromHex('abc'), RangeError);
  assert.equal(hex(concatBytes([fromHex('01'), new Uint8Array(0), fromHex('0203')])), '010203');
  assert.equal(latin1(Uint8Array.of(0x72, 0x61, 0x6d, 0xe9)), 'ram\u00e9');
  assert.equal(utf8Decode(Uint8Array.of(0xc3, 0xa9, 0x7b)), '\u00e9{');
});

test('isZeroPage on aligned and unaligned pages, including a last-byte difference', () => {
  const buf = new Uint8Array(4096 * 2 + 1);
  const aligned = buf.subarray(0, 4096);
  const unaligned = buf.subarray(1, 4097);
  assert.equal(isZeroPage(aligned), true);
  assert.equal(isZeroPage(unaligned), true);
  buf[4095] = 1;
  assert.equal(isZeroPage(aligned), false);
  assert.equal(isZeroPage(unaligned), false);
  buf[4095] = 0;
  buf[4096] = 9;
  assert.equal(isZeroPage(aligned), true);
  assert.equal(isZeroPage(unaligned), false);
  assert.equal(isZeroPage(new Uint8Array(0)), true);
});
