// Encoder option pageViews (zero-copy pages): the pieces handed to onChunk, concatenated, are
// byte for byte what the copying encoder writes; every PAGE payload is a view of the caller's
// RAM (same buffer, right offset); pooled chunk buffers are never written again while a piece
// cut from them is unconsumed; and the QEMU 7.2 pattern vector's RAM round-trips through it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { readVector } from '../testing/testdata.ts';
import { ChunkPool } from './chunk-pool.ts';
import { StreamDecoder } from './stream-decoder.ts';
import { encodeToBytes, StreamEncoder } from './stream-encoder.ts';
import { writePrecopyStream } from './precopy-stream.ts';
import { pageOf } from './stream-fixtures.test-util.ts';

const PAGE = 4096;

interface Block {
  readonly name: string;
  readonly ram: Uint8Array;
}

/** Writes a PART with every page of `blocks` through ramPages, then EOS and EOF. */
function writeBlocks(e: StreamEncoder, blocks: readonly Block[]): void {
  e.header();
  e.configuration({ machine: 'none' });
  e.sectionStart(2, 'ram', 0, 4);
  e.ramMemSize(blocks.map((b) => ({ name: b.name, usedLengthBytes: b.ram.length })));
  e.ramEos();
  e.footer(2);
  e.sectionPart(2);
  for (const b of blocks) e.ramPages(b.name, b.ram);
  e.ramEos();
  e.footer(2);
  e.eof();
  e.flush();
}

/** RAM of `pageCount` pages, offset by one byte in its buffer; pages in `zero` stay zero. */
function ramOf(pageCount: number, isZero: (page: number) => boolean, seed: number): Uint8Array {
  const ram = new Uint8Array(pageCount * PAGE + 1).subarray(1);
  for (let p = 0; p < pageCount; p++) if (!isZero(p)) ram.set(pageOf(seed * 1000 + p), p * PAGE);
  return ram;
}

/** The pieces a views encoder hands out, with a copy of each taken at hand-off. */
function encodeViews(blocks: readonly Block[], chunkSizeBytes: number, pool: boolean): { pieces: Uint8Array[]; atHandOff: Uint8Array[] } {
  const pieces: Uint8Array[] = [];
  const atHandOff: Uint8Array[] = [];
  let consumed = 0;
  // Pieces are "consumed" one hand-off late, so a buffer reused too early would show.
  const chunkPool = new ChunkPool(() => consumed);
  const e = new StreamEncoder({
    onChunk: (c) => {
      consumed += pieces.length > 0 ? pieces[pieces.length - 1].length : 0;
      pieces.push(c);
      atHandOff.push(c.slice());
    },
    chunkSizeBytes,
    pageViews: true,
    allocChunk: pool ? chunkPool.alloc : undefined,
  });
  writeBlocks(e, blocks);
  // The encoder's byte count is the stream's length, views included (the pool and the source's
  // wire accounting rely on it).
  assert.equal(e.offsetBytes, pieces.reduce((n, c) => n + c.length, 0));
  return { pieces, atHandOff };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

test('pageViews: the same bytes as the copying encoder; page payloads are views of RAM', () => {
  const blocks: Block[] = [
    { name: 'pc.ram', ram: ramOf(40, (p) => p % 7 === 3 || (p >= 20 && p < 26), 1) },
    { name: 'vga.vram', ram: ramOf(9, (p) => p === 0, 2) },
  ];
  for (const chunkSizeBytes of [3 * PAGE + 700, 1 << 20]) {
    const copied = encodeToBytes((e) => writeBlocks(e, blocks), { chunkSizeBytes });
    for (const pool of [false, true]) {
      const { pieces, atHandOff } = encodeViews(blocks, chunkSizeBytes, pool);
      assert.deepEqual(concat(pieces), copied);
      // Nothing handed out changed afterwards (pooled buffers were reused only once consumed).
      assert.deepEqual(concat(pieces), concat(atHandOff));
      const views = pieces.filter((c) => blocks.some((b) => c.buffer === b.ram.buffer));
      // pc.ram: 40 pages less 3, 10, 17, 20..25, 31, 38 (11 zero); vga.vram: 9 less page 0.
      assert.equal(views.length, 29 + 8);
      for (const v of views) {
        assert.equal(v.length, PAGE);
        const block = blocks.find((b) => b.ram.buffer === v.buffer) as Block;
        assert.equal((v.byteOffset - block.ram.byteOffset) % PAGE, 0);
      }
      for (const c of pieces) if (!views.includes(c)) assert.ok(c.length <= chunkSizeBytes);
    }
  }
});

test('pageViews: random RAM and chunk sizes give the copying encoder\'s bytes', () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }), fc.integer({ min: 2 * PAGE + 512, max: 6 * PAGE }), (zeroPages, chunkSizeBytes) => {
      const blocks = [{ name: 'ram', ram: ramOf(zeroPages.length, (p) => zeroPages[p], 3) }];
      const copied = encodeToBytes((e) => writeBlocks(e, blocks), { chunkSizeBytes });
      assert.deepEqual(concat(encodeViews(blocks, chunkSizeBytes, true).pieces), copied);
    }),
    { numRuns: 60 },
  );
});

test('pageViews: the QEMU 7.2 pattern-16M RAM encodes to a stream that decodes to the manifest checksum', () => {
  const manifest = JSON.parse(new TextDecoder().decode(readVector('qemu-7.2/manifest.json'))) as Record<string, { size: number; decoded_ram_sha256: string }>;
  // The RAM QEMU sent, decoded from its capture by the independent decoder.
  const ram = new Uint8Array(16 << 20);
  const fromQemu = new StreamDecoder({
    record() {},
    ramPage: (_b, o, data) => ram.set(data, o),
    ramZero: (_b, o, fill) => ram.fill(fill, o, o + PAGE),
  });
  fromQemu.push(readVector('qemu-7.2/pattern-16M.stream'));
  fromQemu.end();
  const pieces: Uint8Array[] = [];
  const e = new StreamEncoder({ onChunk: (c) => pieces.push(c), pageViews: true });
  writePrecopyStream(e, { machine: 'none', blocks: [{ name: 'mem', bytes: ram }] });
  e.flush();
  const stream = concat(pieces);
  assert.equal(stream.length, manifest['pattern-16M'].size);
  const back = new Uint8Array(16 << 20).fill(0xee);
  const d = new StreamDecoder({
    record() {},
    ramPage: (_b, o, data) => back.set(data, o),
    ramZero: (_b, o, fill) => back.fill(fill, o, o + PAGE),
  });
  // Fed piece by piece, as a socket would deliver them.
  for (const p of pieces) d.push(p);
  d.end();
  assert.equal(createHash('sha256').update(back).digest('hex'), manifest['pattern-16M'].decoded_ram_sha256);
});
