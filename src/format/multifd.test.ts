// Tests of the multifd channel codec: the real two-channel QEMU 7.2 capture reproduces the 4 MiB
// pattern, hand-built fixtures split at every offset, every error code, round trips and a fuzz.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readVector } from '../testing/testdata.ts';
import fc from 'fast-check';
import { ByteWriter } from '../lib/bytes.ts';
import { FormatError } from './errors.ts';
import {
  MULTIFD_ERROR_CODES,
  MultifdChannelDecoder,
  writeMultifdInit,
  writeMultifdPacket,
  type MultifdDecoderOptions,
  type MultifdPacketInput,
  type MultifdRecord,
} from './multifd.ts';


const seenCodes = new Set<string>();

interface Collected {
  readonly records: MultifdRecord[];
  readonly pages: Array<{ block: string; offset: number; data: Uint8Array }>;
}

/** Decodes `bytes` pushed in the chunks given by `cuts`, copying each page. */
function decodeSplit(bytes: Uint8Array, cuts: readonly number[], options: MultifdDecoderOptions = {}): Collected {
  const out: Collected = { records: [], pages: [] };
  const d = new MultifdChannelDecoder(
    { record: (r) => out.records.push(r), page: (block, offset, data) => out.pages.push({ block, offset, data: data.slice() }) },
    options,
  );
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    d.push(bytes.subarray(prev, c));
    prev = c;
  }
  d.finish();
  return out;
}

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

/** True when `data` is pattern page `index`: little-endian u32 `index` repeated. */
function isPatternPage(data: Uint8Array, index: number): boolean {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < data.length; i += 4) if (v.getUint32(i, true) !== index) return false;
  return true;
}

test('the two 7.2 multifd channels plus the main stream zero page reproduce the 4 MiB pattern', () => {
  // The main stream (conn0) carries one ZERO record, hand-parsed here: PART section at 67.
  const main = readVector('qemu-7.2/multifd-4M/conn0.src2dst.bin');
  assert.deepEqual(Array.from(main.subarray(67, 98)), [
    0x02, 0, 0, 0, 2, // PART id 2
    0, 0, 0, 0, 0, 0, 0, 0x02, // offset 0 | ZERO
    3, 0x6d, 0x65, 0x6d, 0, // block "mem", fill 0
    0, 0, 0, 0, 0, 0, 0, 0x10, // EOS
    0x7e, 0, 0, 0, 2, // footer
  ]);
  const seen = new Uint8Array(1024);
  seen[0] = 1;
  assert.ok(isPatternPage(new Uint8Array(4096), 0), 'a zero page with fill 0 is pattern page 0');
  const packetNums: number[] = [];
  for (const [file, channelId, expectedPages] of [['conn1', 0, 511], ['conn2', 1, 512]] as const) {
    const bytes = readVector(`qemu-7.2/multifd-4M/${file}.src2dst.bin`);
    let pages = 0;
    let syncs = 0;
    let badPages = 0;
    const records: MultifdRecord[] = [];
    const d = new MultifdChannelDecoder(
      {
        record: (r) => {
          records.push(r);
          if (r.kind === 'packet') packetNums.push(r.header.packetNum);
          if (r.kind === 'packet-end' && r.header.sync) syncs++;
        },
        page: (block, offset, data) => {
          assert.equal(block, 'mem');
          const index = offset / 4096;
          if (!isPatternPage(data, index)) badPages++;
          seen[index]++;
          pages++;
        },
      },
      { channelCount: 2, expectedUuid: new Uint8Array(16), blockLengthBytes: (n) => (n === 'mem' ? 4 << 20 : undefined) },
    );
    // Odd chunk sizes make pages straddle chunks; whole pages inside a chunk come as views.
    for (let at = 0; at < bytes.length; at += 6000) d.push(bytes.subarray(at, at + 6000));
    d.finish();
    assert.equal(badPages, 0);
    assert.equal(pages, expectedPages);
    assert.deepEqual(records[0], { kind: 'init', init: { uuid: new Uint8Array(16), channelId }, offset: 0 });
    assert.equal(syncs, 3);
  }
  assert.deepEqual(Array.from(seen).filter((n) => n !== 1), [], 'every page exactly once');
  const dataPackets = packetNums.slice().sort((a, b) => a - b);
  assert.deepEqual(dataPackets, [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 10, 11, 12, 13]);
});

test('pages inside one chunk are delivered as views, straddling pages from scratch', () => {
  const bytes = readVector('qemu-7.2/multifd-4M/conn2.src2dst.bin');
  let views = 0;
  let copies = 0;
  const d = new MultifdChannelDecoder({
    record: () => {},
    page: (_b, _o, data) => (data.buffer === bytes.buffer ? views++ : copies++),
  });
  d.push(bytes.subarray(0, 0x580 + 0x540 + 4096 + 100));
  d.push(bytes.subarray(0x580 + 0x540 + 4096 + 100));
  d.finish();
  assert.equal(copies, 1);
  assert.equal(views, 511);
});

/** A test-only packet builder, written independently of the encoder. */
function fixturePacket(f: { flags: number; pagesAlloc: number; offsets: number[]; num: number; name: string; pageFill: number[]; pageSize: number; nextSize?: number }): number[] {
  const be32 = (v: number) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  const be64 = (v: number) => [...be32(Math.floor(v / 2 ** 32)), ...be32(v >>> 0)];
  const name = Array.from(f.name, (c) => c.charCodeAt(0));
  return [
    ...be32(0x11223344), ...be32(1), ...be32(f.flags), ...be32(f.pagesAlloc), ...be32(f.offsets.length),
    ...be32(f.nextSize ?? f.offsets.length * f.pageSize), ...be64(f.num), ...new Array<number>(32).fill(0),
    ...name, ...new Array<number>(256 - name.length).fill(0),
    ...f.offsets.flatMap(be64), ...new Array<number>(8 * (f.pagesAlloc - f.offsets.length)).fill(0),
    ...f.pageFill.flatMap((b) => new Array<number>(f.pageSize).fill(b)),
  ];
}

const INIT_FIXTURE = [0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1, ...Array.from({ length: 16 }, (_, i) => i + 1), 3, ...new Array<number>(39).fill(0)];
const SMALL = { pageSizeBytes: 64, maxPagesAlloc: 4 };
const FIXTURE = Uint8Array.from([
  ...INIT_FIXTURE,
  ...fixturePacket({ flags: 0, pagesAlloc: 4, offsets: [0x40, 0x1c0], num: 7, name: 'pc.ram', pageFill: [0xaa, 0xbb], pageSize: 64 }),
  ...fixturePacket({ flags: 1, pagesAlloc: 4, offsets: [], num: 8, name: 'pc.ram', pageFill: [], pageSize: 64, nextSize: 128 }),
  ...fixturePacket({ flags: 1, pagesAlloc: 0, offsets: [], num: 9, name: '', pageFill: [], pageSize: 64 }),
]);

test('a hand-built channel decodes identically when split at every byte offset', () => {
  const expectedPages = [
    { block: 'pc.ram', offset: 0x40, data: new Uint8Array(64).fill(0xaa) },
    { block: 'pc.ram', offset: 0x1c0, data: new Uint8Array(64).fill(0xbb) },
  ];
  const whole = decodeSplit(FIXTURE, [], SMALL);
  assert.deepEqual(whole.pages, expectedPages);
  assert.deepEqual(
    whole.records.map((r) => (r.kind === 'init' ? `init ${r.init.channelId}@${r.offset}` : `${r.kind} ${r.header.packetNum} ${r.header.sync} ${r.header.nextPacketSizeBytes}@${r.offset}`)),
    ['init 3@0', 'packet 7 false 128@64', 'packet-end 7 false 128@64', 'packet 8 true 128@544', 'packet-end 8 true 128@544', 'packet 9 true 0@896', 'packet-end 9 true 0@896'],
  );
  for (let cut = 0; cut <= FIXTURE.length; cut++) assert.deepEqual(decodeSplit(FIXTURE, [cut], SMALL), whole);
  for (let a = 0; a <= FIXTURE.length; a += 37) {
    for (let b = a; b <= FIXTURE.length; b += 41) assert.deepEqual(decodeSplit(FIXTURE, [a, b], SMALL), whole);
  }
});

test('the encoder writes the fixture bytes', () => {
  const w = new ByteWriter();
  writeMultifdInit(w, { channelId: 3, uuid: Uint8Array.from({ length: 16 }, (_, i) => i + 1) });
  const base = { pageSizeBytes: 64, pagesAlloc: 4, blockName: 'pc.ram' };
  writeMultifdPacket(w, { ...base, packetNum: 7, offsets: [0x40, 0x1c0], pages: [new Uint8Array(64).fill(0xaa), new Uint8Array(64).fill(0xbb)] });
  writeMultifdPacket(w, { ...base, packetNum: 8, offsets: [], pages: [], sync: true, nextPacketSizeBytes: 128 });
  writeMultifdPacket(w, { ...base, packetNum: 9, offsets: [], pages: [], sync: true, pagesAlloc: 0, blockName: '' });
  assert.deepEqual(w.finish(), FIXTURE);
});

test('decoder errors carry codes and offsets, and are sticky', () => {
  const packet = (over: Partial<Parameters<typeof fixturePacket>[0]> = {}) =>
    fixturePacket({ flags: 0, pagesAlloc: 4, offsets: [0x40], num: 1, name: 'pc.ram', pageFill: [1], pageSize: 64, ...over });
  const run = (bytes: number[], options: MultifdDecoderOptions = {}) => () => decodeSplit(Uint8Array.from(bytes), [], { ...SMALL, ...options });
  const withByte = (bytes: number[], at: number, value: number) => bytes.map((b, i) => (i === at ? value : b));
  expectCode('MIG_ERR_MULTIFD_BAD_MAGIC', run(withByte(INIT_FIXTURE, 0, 0x12)), 0);
  expectCode('MIG_ERR_MULTIFD_BAD_VERSION', run(withByte(INIT_FIXTURE, 7, 2)), 4);
  expectCode('MIG_ERR_MULTIFD_BAD_CHANNEL', run(INIT_FIXTURE, { channelCount: 3 }), 24);
  expectCode('MIG_ERR_MULTIFD_UUID_MISMATCH', run(INIT_FIXTURE, { expectedUuid: new Uint8Array(16) }), 8);
  expectCode('MIG_ERR_MULTIFD_BAD_MAGIC', run([...INIT_FIXTURE, ...withByte(packet(), 3, 0)]), 64);
  expectCode('MIG_ERR_MULTIFD_BAD_VERSION', run([...INIT_FIXTURE, ...withByte(packet(), 7, 0)]), 68);
  expectCode('MIG_ERR_MULTIFD_COMPRESSION_UNSUPPORTED', run([...INIT_FIXTURE, ...packet({ flags: 2 })]), 72);
  expectCode('MIG_ERR_MULTIFD_COMPRESSION_UNSUPPORTED', run([...INIT_FIXTURE, ...packet({ flags: 5 })]), 72);
  expectCode('MIG_ERR_MULTIFD_PAGE_COUNT', run([...INIT_FIXTURE, ...packet({ pagesAlloc: 5 })]), 76);
  expectCode('MIG_ERR_MULTIFD_PAGE_COUNT', run([...INIT_FIXTURE, ...withByte(packet(), 19, 5)]), 80);
  expectCode('MIG_ERR_MULTIFD_BAD_PACKET_NUM', run([...INIT_FIXTURE, ...packet({ num: 2 ** 53 })]), 88);
  expectCode('MIG_ERR_MULTIFD_UNKNOWN_BLOCK', run([...INIT_FIXTURE, ...packet()], { blockLengthBytes: () => undefined }), 128);
  expectCode('MIG_ERR_MULTIFD_BAD_OFFSET', run([...INIT_FIXTURE, ...packet({ offsets: [0x41] })]), 384);
  expectCode('MIG_ERR_MULTIFD_BAD_OFFSET', run([...INIT_FIXTURE, ...packet({ offsets: [2 ** 53] })]), 384);
  expectCode('MIG_ERR_MULTIFD_BAD_OFFSET', run([...INIT_FIXTURE, ...packet({ offsets: [0x40] })], { blockLengthBytes: () => 0x40 }), 384);
  expectCode('MIG_ERR_MULTIFD_TRUNCATED', run(INIT_FIXTURE.slice(0, 10)), 10);
  expectCode('MIG_ERR_MULTIFD_TRUNCATED', run([...INIT_FIXTURE, ...packet().slice(0, -1)]), 64 + 320 + 32 + 63);

  const d = new MultifdChannelDecoder({ record: () => {}, page: () => {} });
  let first: unknown = null;
  try {
    d.push(new Uint8Array(64));
  } catch (err) {
    first = err;
  }
  assert.ok(first instanceof FormatError);
  assert.throws(() => d.push(Uint8Array.from(INIT_FIXTURE)), (e) => e === first);
  assert.throws(() => d.finish(), (e) => e === first);
});

test('encoder rejects bad input with a typed code', () => {
  const w = new ByteWriter();
  const ok: MultifdPacketInput = { packetNum: 1, blockName: 'b', offsets: [0], pages: [new Uint8Array(4096)] };
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdInit(w, { channelId: 256 }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdInit(w, { channelId: 0, uuid: new Uint8Array(15) }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, pages: [] }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, pagesAlloc: 0 }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, blockName: 'x'.repeat(256) }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, blockName: 'a\u0000b' }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, packetNum: -1 }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, offsets: [100] }));
  expectCode('MIG_ERR_MULTIFD_ENCODE', () => writeMultifdPacket(w, { ...ok, pages: [new Uint8Array(10)] }));
});

test('every multifd error code is produced by some test', () => {
  for (const code of MULTIFD_ERROR_CODES) assert.ok(seenCodes.has(code), `code ${code} never produced`);
});

const packetArb = fc.record({
  packetNum: fc.nat({ max: 2 ** 53 - 1 }),
  blockName: fc.string({ unit: fc.integer({ min: 1, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 255 }),
  sync: fc.boolean(),
  pagesAlloc: fc.constantFrom(4, 3),
  pages: fc.array(fc.record({ page: fc.nat(1 << 20), fill: fc.nat(255) }), { maxLength: 3 }),
});

test('encode → decode round trips (fast-check), in random chunks', () => {
  fc.assert(
    fc.property(fc.nat(255), fc.array(packetArb, { maxLength: 5 }), fc.array(fc.nat(3000), { maxLength: 6 }), (channelId, packets, cutList) => {
      const w = new ByteWriter();
      writeMultifdInit(w, { channelId });
      const expectedPages: Collected['pages'] = [];
      for (const p of packets) {
        const offsets = p.pages.map((x) => x.page * 64);
        const pages = p.pages.map((x) => new Uint8Array(64).fill(x.fill));
        writeMultifdPacket(w, { packetNum: p.packetNum, blockName: p.blockName, sync: p.sync, pagesAlloc: p.pagesAlloc, offsets, pages, pageSizeBytes: 64 });
        offsets.forEach((offset, k) => expectedPages.push({ block: p.blockName, offset, data: pages[k] }));
      }
      const bytes = w.finish();
      const cuts = cutList.map((c) => Math.min(c, bytes.length)).sort((a, b) => a - b);
      const got = decodeSplit(bytes, cuts, SMALL);
      assert.deepEqual(got.pages, expectedPages);
      const headers = got.records.filter((r) => r.kind === 'packet').map((r) => (r.kind === 'packet' ? r.header : null));
      assert.deepEqual(
        headers.map((h) => [h?.packetNum, h?.blockName, h?.sync, h?.pagesAlloc]),
        packets.map((p) => [p.packetNum, p.blockName, p.sync, p.pagesAlloc]),
      );
    }),
    { numRuns: 300 },
  );
});

test('fuzz: 10,000 mutations of the capture heads yield records or FormatError only', () => {
  const heads = ['conn1', 'conn2'].map((f) => readVector(`qemu-7.2/multifd-4M/${f}.src2dst.bin`).slice(0, 0x580 + 0x540 + 3 * 4096));
  const headerArea = 0x580 + 0x140 + 0x40;
  const mutation = fc.record({
    head: fc.nat(1),
    edits: fc.array(
      fc.record({ at: fc.oneof(fc.nat(headerArea), fc.nat(heads[0].length - 1)), value: fc.nat(255), op: fc.nat(4) }),
      { minLength: 1, maxLength: 4 },
    ),
    cut: fc.nat(heads[0].length),
    blockCheck: fc.boolean(),
  });
  let failures = 0;
  fc.assert(
    fc.property(mutation, ({ head, edits, cut, blockCheck }) => {
      let bytes = heads[head].slice();
      for (const e of edits) {
        const at = Math.min(e.at, bytes.length - 1);
        if (e.op === 0) {
          const next = new Uint8Array(bytes.length - 1);
          next.set(bytes.subarray(0, at));
          next.set(bytes.subarray(at + 1), at);
          bytes = next;
        } else if (e.op === 1) {
          const next = new Uint8Array(bytes.length + 1);
          next.set(bytes.subarray(0, at));
          next[at] = e.value;
          next.set(bytes.subarray(at), at + 1);
          bytes = next;
        } else bytes[at] = e.value;
      }
      const options: MultifdDecoderOptions = blockCheck ? { blockLengthBytes: (n) => (n === 'mem' ? 4 << 20 : undefined), channelCount: 2 } : {};
      try {
        decodeSplit(bytes, [Math.min(cut, bytes.length)], options);
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
        failures++;
      }
    }),
    { numRuns: 10_000 },
  );
  assert.ok(failures > 0);
});
