// Tests of the return-path codec: the real QEMU 7.2 capture, hand-written hex fixtures split at
// every byte offset, every error code, encode → decode round trips, and a mutation fuzz.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzRuns } from '../testing/fuzz-runs.ts';
import { readVector } from '../testing/testdata.ts';
import fc from 'fast-check';
import { Bitmap } from '../lib/bitmap.ts';
import { ByteWriter, fromHex } from '../lib/bytes.ts';
import { FormatError } from './errors.ts';
import {
  bitmapFromRecvBitmap,
  decodeReturnPath,
  encodeRecvBitmapData,
  encodeRpMessages,
  recvBitmapFromBitmap,
  recvBitmapSizeBytes,
  RETURN_PATH_ERROR_CODES,
  ReturnPathDecoder,
  ReturnPathEncoder,
  type ReturnPathDecoderOptions,
  type RpMessage,
} from './return-path.ts';


const seenCodes = new Set<string>();

/** Decodes `bytes` in the chunks given by `cuts` and returns messages with their offsets. */
function decodeSplit(bytes: Uint8Array, cuts: readonly number[], options: ReturnPathDecoderOptions = {}): Array<[RpMessage, number]> {
  const out: Array<[RpMessage, number]> = [];
  const d = new ReturnPathDecoder((m, at) => out.push([m, at]), options);
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    d.push(bytes.subarray(prev, c));
    prev = c;
  }
  d.finish();
  return out;
}

function expectCode(code: string, fn: () => unknown, offset?: number): FormatError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FormatError, `expected FormatError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (offset !== undefined) assert.equal(err.offset, offset, err.message);
    seenCodes.add(err.code);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const CAPTURE_EXPECTED: Array<[RpMessage, number]> = [
  [{ kind: 'pong', value: 1 }, 0],
  [{ kind: 'pong', value: 2 }, 8],
  [{ kind: 'pong', value: 4 }, 16],
  [{ kind: 'pong', value: 3 }, 24],
  [{ kind: 'req-pages-id', startBytes: 0x3ff000, lengthBytes: 0x1000, blockName: 'mem' }, 32],
  [{ kind: 'shut', status: 0 }, 52],
];

test('the real 7.2 postcopy return path decodes exactly, split at every offset', () => {
  const bytes = readVector('qemu-7.2/postcopy-4M/conn0.dst2src.bin');
  assert.equal(bytes.length, 60);
  assert.deepEqual(decodeSplit(bytes, []), CAPTURE_EXPECTED);
  for (let cut = 0; cut <= bytes.length; cut++) assert.deepEqual(decodeSplit(bytes, [cut]), CAPTURE_EXPECTED);
  const everyByte = Array.from({ length: bytes.length }, (_, i) => i);
  assert.deepEqual(decodeSplit(bytes, everyByte), CAPTURE_EXPECTED);
});

// Hand-written fixtures, independent of the encoder.
const RECOVERY_HEX =
  '0005 0004 03 6d656d' + // RECV_BITMAP "mem"
  '0000000000000010' + // bitmap size 16
  'ff01000000000000 0000000000000080' + // bits 0..8 and bit 127
  '0123456789abcdef' + // end mark
  '0006 0004 00000001' + // RESUME_ACK 1
  '0003 0011 0000000000002000 00001000 04 72616d31' + // REQ_PAGES_ID "ram1" 0x2000
  '0004 000c 0000000000005000 00001000' + // REQ_PAGES 0x5000 (block ram1)
  '0002 0004 deadbeef' + // PONG
  '0001 0004 00000001'; // SHUT 1

const bitmapBytes = fromHex('ff01000000000000 0000000000000080');
const RECOVERY_EXPECTED: Array<[RpMessage, number]> = [
  [{ kind: 'recv-bitmap', blockName: 'mem', bitmap: bitmapBytes }, 0],
  [{ kind: 'resume-ack', value: 1 }, 40],
  [{ kind: 'req-pages-id', startBytes: 0x2000, lengthBytes: 0x1000, blockName: 'ram1' }, 48],
  [{ kind: 'req-pages', startBytes: 0x5000, lengthBytes: 0x1000, blockName: 'ram1' }, 69],
  [{ kind: 'pong', value: 0xdeadbeef }, 85],
  [{ kind: 'shut', status: 1 }, 93],
];

test('every message type decodes from a fixture split at every byte offset', () => {
  const bytes = fromHex(RECOVERY_HEX);
  assert.equal(bytes.length, 101);
  for (let cut = 0; cut <= bytes.length; cut++) assert.deepEqual(decodeSplit(bytes, [cut]), RECOVERY_EXPECTED);
  for (let a = 0; a <= bytes.length; a += 7) {
    for (let b = a; b <= bytes.length; b += 3) assert.deepEqual(decodeSplit(bytes, [a, b]), RECOVERY_EXPECTED);
  }
  assert.deepEqual(decodeSplit(bytes, [], { bitmapBitsForBlock: () => 128 }), RECOVERY_EXPECTED);
});

test('the encoder writes the fixture bytes', () => {
  const messages = RECOVERY_EXPECTED.map(([m]) => m);
  assert.deepEqual(encodeRpMessages(messages), fromHex(RECOVERY_HEX));
  assert.deepEqual(encodeRpMessages(CAPTURE_EXPECTED.map(([m]) => m)), readVector('qemu-7.2/postcopy-4M/conn0.dst2src.bin'));
});

test('ReturnPathEncoder chooses REQ_PAGES_ID only when the block changes', () => {
  const w = new ByteWriter();
  const enc = new ReturnPathEncoder(w);
  assert.equal(enc.requestPages('a', 0, 4096).kind, 'req-pages-id');
  assert.equal(enc.requestPages('a', 4096, 4096).kind, 'req-pages');
  assert.equal(enc.requestPages('b', 0, 4096).kind, 'req-pages-id');
  enc.resetBlock();
  assert.equal(enc.requestPages('b', 0, 4096).kind, 'req-pages-id');
  enc.write({ kind: 'req-pages-id', startBytes: 0, lengthBytes: 1, blockName: 'c' });
  assert.equal(enc.requestPages('c', 0, 4096).kind, 'req-pages');
  const decoded = decodeReturnPath(w.finish()).map((m) => m.kind === 'req-pages' ? m.blockName : '');
  assert.deepEqual(decoded, ['', 'a', '', '', '', 'c']);
});

test('decoder errors carry codes and offsets, and are sticky', () => {
  const dec = (hex: string, options?: ReturnPathDecoderOptions) => () => decodeReturnPath(fromHex(hex), options);
  expectCode('MIG_ERR_RP_UNKNOWN_TYPE', dec('0002 0004 00000001 0000 0004 00000000'), 8);
  expectCode('MIG_ERR_RP_UNKNOWN_TYPE', dec('0007 0000'), 0);
  expectCode('MIG_ERR_RP_TOO_LONG', dec('0003 0201'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0002 0003 000000'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0004 000d 0000000000000000 00001000 00'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0003 0010 0000000000000000 00001000 04 6d656d'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0003 000c 0000000000000000 00001000'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0003 0000'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0005 0000'), 2);
  expectCode('MIG_ERR_RP_BAD_LENGTH', dec('0005 0003 03 6d656d'), 2);
  expectCode('MIG_ERR_RP_BAD_OFFSET', dec('0003 0010 0020000000000000 00001000 03 6d656d'), 4);
  expectCode('MIG_ERR_RP_NO_PREVIOUS_BLOCK', dec('0004 000c 0000000000000000 00001000'), 0);
  expectCode('MIG_ERR_RP_BITMAP_SIZE', dec('0005 0002 01 61 0000000000000004'), 6);
  expectCode('MIG_ERR_RP_BITMAP_SIZE', dec('0005 0002 01 61 0000000000000010', { maxBitmapBytes: 8 }), 6);
  expectCode('MIG_ERR_RP_BITMAP_SIZE', dec('0005 0002 01 61 ffffffffffffffff'), 6);
  expectCode('MIG_ERR_RP_BITMAP_SIZE', dec('0005 0002 01 61 0000000000000010', { bitmapBitsForBlock: () => 64 }), 6);
  expectCode('MIG_ERR_RP_BITMAP_END_MARK', dec('0005 0002 01 61 0000000000000000 0123456789abcdee'), 14);
  expectCode('MIG_ERR_RP_AFTER_SHUT', dec('0001 0004 00000000 00'), 8);
  expectCode('MIG_ERR_RP_TRUNCATED', dec('0002 0004 0000'), 6);
  expectCode('MIG_ERR_RP_TRUNCATED', dec('0005 0002 01 61 0000000000000008 00'), 15);

  const d = new ReturnPathDecoder(() => {});
  const first = expectCode('MIG_ERR_RP_UNKNOWN_TYPE', () => d.push(fromHex('0000 0000')));
  assert.throws(() => d.push(fromHex('0002 0004 00000001')), (e) => e === first);
  assert.throws(() => d.finish(), (e) => e === first);
});

test('encoder and bitmap helpers reject bad input with typed codes', () => {
  expectCode('MIG_ERR_RP_ENCODE', () => encodeRpMessages([{ kind: 'pong', value: -1 }]));
  expectCode('MIG_ERR_RP_ENCODE', () => encodeRpMessages([{ kind: 'req-pages-id', startBytes: 0, lengthBytes: 1, blockName: 'x'.repeat(256) }]));
  expectCode('MIG_ERR_RP_ENCODE', () => encodeRpMessages([{ kind: 'req-pages', startBytes: -1, lengthBytes: 1, blockName: 'x' }]));
  expectCode('MIG_ERR_RP_ENCODE', () => encodeRpMessages([{ kind: 'recv-bitmap', blockName: '\u0100', bitmap: new Uint8Array(8) }]));
  expectCode('MIG_ERR_RP_ENCODE', () => encodeRpMessages([{ kind: 'recv-bitmap', blockName: 'a', bitmap: new Uint8Array(3) }]));
  expectCode('MIG_ERR_RP_BITMAP_SIZE', () => encodeRecvBitmapData(new Uint8Array(5)));
  expectCode('MIG_ERR_RP_BITMAP_SIZE', () => bitmapFromRecvBitmap(new Uint8Array(8), 65));
  expectCode('MIG_ERR_RP_BITMAP_SIZE', () => recvBitmapFromBitmap(new Bitmap(10), 11));
});

test('every return-path error code is produced by some test', () => {
  // Runs last in this file (node:test runs tests in order).
  for (const code of RETURN_PATH_ERROR_CODES) assert.ok(seenCodes.has(code), `code ${code} never produced`);
});

test('the received bitmap is built and parsed against a bit count', () => {
  assert.equal(recvBitmapSizeBytes(0), 0);
  assert.equal(recvBitmapSizeBytes(1), 8);
  assert.equal(recvBitmapSizeBytes(64), 8);
  assert.equal(recvBitmapSizeBytes(65), 16);
  const b = new Bitmap(70);
  for (const i of [0, 1, 2, 3, 4, 5, 6, 7, 8, 69]) b.set(i);
  const wire = recvBitmapFromBitmap(b);
  assert.deepEqual(wire, fromHex('ff01000000000000 2000000000000000'));
  assert.deepEqual(encodeRecvBitmapData(wire), fromHex('0000000000000010 ff01000000000000 2000000000000000 0123456789abcdef'));
  // Padding bits beyond the count are ignored on parse, as the QEMU source does.
  const parsed = bitmapFromRecvBitmap(fromHex('ff01000000000000 e0ffffffffffffff'), 70);
  for (let i = 0; i < 70; i++) assert.equal(parsed.test(i), i <= 8 || i === 69, `bit ${i}`);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 300 }), fc.array(fc.nat(299)), (bits, setList) => {
      const bm = new Bitmap(bits);
      for (const i of setList) if (i < bits) bm.set(i);
      const back = bitmapFromRecvBitmap(recvBitmapFromBitmap(bm), bits);
      for (let i = 0; i < bits; i++) assert.equal(back.test(i), bm.test(i));
    }),
    { numRuns: 300 },
  );
});

const nameArb = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 255 });
const u32 = fc.nat({ max: 0xffffffff });
const startArb = fc.oneof(fc.nat({ max: 2 ** 53 - 1 }), fc.nat(1 << 24).map((p) => p * 4096));
const bitmapArb = fc.nat(40).chain((words) => fc.uint8Array({ minLength: words * 8, maxLength: words * 8 }));

type Intent =
  | { readonly t: 'msg'; readonly msg: RpMessage }
  | { readonly t: 'req'; readonly blockName: string; readonly startBytes: number; readonly lengthBytes: number };

const intentArb: fc.Arbitrary<Intent> = fc.oneof(
  u32.map((value) => ({ t: 'msg', msg: { kind: 'pong', value } }) as const),
  u32.map((value) => ({ t: 'msg', msg: { kind: 'resume-ack', value } }) as const),
  fc.record({ blockName: nameArb, bitmap: bitmapArb }).map((r) => ({ t: 'msg', msg: { kind: 'recv-bitmap', ...r } }) as const),
  fc.record({ blockName: fc.constantFrom('a', 'b', 'pc.ram'), startBytes: startArb, lengthBytes: u32 }).map((r) => ({ t: 'req', ...r }) as const),
  fc.record({ blockName: nameArb, startBytes: startArb, lengthBytes: u32 }).map((r) => ({ t: 'req', ...r }) as const),
);

test('encode → decode round trips (fast-check), in random chunks', () => {
  fc.assert(
    fc.property(fc.array(intentArb, { maxLength: 12 }), u32, fc.array(fc.nat(2000), { maxLength: 6 }), (intents, status, cutList) => {
      const w = new ByteWriter();
      const enc = new ReturnPathEncoder(w);
      const expected: RpMessage[] = [];
      for (const it of intents) {
        if (it.t === 'req') expected.push(enc.requestPages(it.blockName, it.startBytes, it.lengthBytes));
        else {
          enc.write(it.msg);
          expected.push(it.msg);
        }
      }
      enc.write({ kind: 'shut', status });
      expected.push({ kind: 'shut', status });
      const bytes = w.finish();
      const cuts = cutList.map((c) => Math.min(c, bytes.length)).sort((a, b) => a - b);
      assert.deepEqual(decodeSplit(bytes, cuts).map(([m]) => m), expected);
    }),
    { numRuns: 400 },
  );
});

const FUZZ_RUNS = fuzzRuns();

test(`fuzz: ${FUZZ_RUNS} mutations of the captures yield messages or FormatError only`, () => {
  const bases = [readVector('qemu-7.2/postcopy-4M/conn0.dst2src.bin'), fromHex(RECOVERY_HEX)];
  const mutation = fc.record({
    base: fc.nat(bases.length - 1),
    edits: fc.array(fc.record({ at: fc.nat(200), value: fc.nat(255), op: fc.nat(3) }), { minLength: 1, maxLength: 4 }),
    cut: fc.nat(120),
  });
  let failures = 0;
  fc.assert(
    fc.property(mutation, ({ base, edits, cut }) => {
      const bytes = Array.from(bases[base]);
      for (const e of edits) {
        const at = e.at % (bytes.length + 1);
        if (e.op === 0) bytes.splice(at, 1); // delete
        else if (e.op === 1) bytes.splice(at, 0, e.value); // insert
        else bytes[Math.min(at, bytes.length - 1)] = e.value; // overwrite
      }
      const input = Uint8Array.from(bytes);
      const c = Math.min(cut, input.length);
      try {
        decodeSplit(input, [c], { maxBitmapBytes: 1 << 16 });
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
        failures++;
      }
    }),
    { numRuns: FUZZ_RUNS },
  );
  assert.ok(failures > 0);
});
