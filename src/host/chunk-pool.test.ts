import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkPool } from './chunk-pool.ts';
import { StreamEncoder } from '../format/stream-encoder.ts';

test('ChunkPool hands a buffer out again only once the consumer is past its last chunk', () => {
  let handed = 0;
  const pool = new ChunkPool(() => handed);
  const a = pool.alloc(1024, 0);
  const b = pool.alloc(1024, 1000); // a's chunks end at 1000; nothing handed yet
  assert.notEqual(b, a);
  handed = 999;
  const c = pool.alloc(1024, 2000);
  assert.notEqual(c, a);
  handed = 1000;
  assert.equal(pool.alloc(1024, 3000), a);
  assert.equal(pool.allocations, 3);
});

test('an encoder over a ChunkPool writes the same stream while the consumer holds chunks', () => {
  const pageBytes = 4096;
  const ram = new Uint8Array(300 * pageBytes);
  for (let i = 0; i < ram.length; i += 7) ram[i] = (i >>> 3) & 0xff;
  ram.fill(0, 100 * pageBytes, 140 * pageBytes);
  const encode = (alloc?: (n: number, end: number) => Uint8Array, held?: Uint8Array[]): Uint8Array => {
    const out: number[] = [];
    const queue: Uint8Array[] = held ?? [];
    let handed = 0;
    const e = new StreamEncoder({
      chunkSizeBytes: 64 * 1024,
      allocChunk: alloc,
      onChunk: (chunk) => {
        // The consumer keeps the last two chunks (a socket queue) and copies older ones out.
        queue.push(chunk);
        while (queue.length > 2) {
          const c = queue.shift()!;
          for (const byte of c) out.push(byte);
          handed += c.length;
        }
        handedBytes = handed;
      },
    });
    e.ramPages('pc.ram', ram);
    e.flush();
    for (const c of queue) for (const byte of c) out.push(byte);
    return Uint8Array.from(out);
  };
  let handedBytes = 0;
  const pool = new ChunkPool(() => handedBytes);
  const plain = encode();
  const pooled = encode(pool.alloc);
  assert.deepEqual(pooled, plain);
  assert.ok(pool.allocations < 10, `pool allocated ${pool.allocations} buffers`);
});
