/**
 * The `codec` benchmark group: how fast the stream codec moves RAM compared with what this
 * machine can copy at all. Rows:
 *   - memcpy limit: Buffer.copy and Uint8Array.set of the whole RAM (the baseline);
 *   - decode of an in-memory stream of PAGE records (every page non-zero) fed in 1 MiB chunks,
 *     with a sink that copies each page into a RAM buffer (the realistic path; the result is
 *     compared with the source once) and with a no-op sink (the parser alone);
 *   - encode of the RAM into PAGE records, the chunks consumed as they come.
 * 1 GiB of RAM and medians of 5 runs (--quick: 256 MiB, 3 runs). Goal: ≥ 2 GB/s (1 GB = 1e9
 * bytes) for each codec row; each shows its ratio to the faster memcpy.
 */
import { StreamDecoder } from '../format/stream-decoder.ts';
import { StreamEncoder } from '../format/stream-encoder.ts';
import { encodePrecopyStream } from '../format/precopy-stream.ts';
import type { RamBlockRef, StreamRecord, StreamSink } from '../format/stream-types.ts';
import { formatBytes, GiB, MiB } from '../lib/units.ts';
import type { BenchContext, BenchGroup } from './registry.ts';
import { gbPerSecond, timeRuns } from './registry.ts';
import { median } from './table.ts';
import type { BenchRow } from './table.ts';

export const CODEC_GOAL_GB_PER_S = 2;
const DECODE_CHUNK_BYTES = MiB;
const PAGE_BYTES = 4096;

export interface CodecSizes {
  readonly ramBytes: number;
  readonly runs: number;
}

/** RAM whose every 32-bit word is non-zero, so that every page is a PAGE record. */
function nonZeroRam(bytes: number): Uint8Array {
  const ram = new Uint8Array(bytes);
  const words = new Uint32Array(ram.buffer);
  for (let i = 0; i < words.length; i++) words[i] = (Math.imul(i, 0x9e3779b1) | 1) >>> 0;
  return ram;
}

class CopySink implements StreamSink {
  constructor(private readonly target: Uint8Array) {}
  record(_r: StreamRecord): void {}
  ramPage(_b: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    this.target.set(data, offsetBytes);
  }
  ramZero(_b: RamBlockRef, offsetBytes: number, fill: number): void {
    this.target.fill(fill, offsetBytes, offsetBytes + PAGE_BYTES);
  }
}

class NoopSink implements StreamSink {
  pages = 0;
  record(_r: StreamRecord): void {}
  ramPage(): void {
    this.pages++;
  }
  ramZero(): void {
    this.pages++;
  }
}

function decodeOnce(stream: Uint8Array, sink: StreamSink): void {
  const d = new StreamDecoder(sink);
  for (let at = 0; at < stream.length; at += DECODE_CHUNK_BYTES) d.push(stream.subarray(at, Math.min(stream.length, at + DECODE_CHUNK_BYTES)));
  d.end();
}

function row(name: string, samples: number[], extra: Partial<BenchRow> = {}): BenchRow {
  return { group: 'codec', name, value: median(samples), unit: 'GB/s', samples, ...extra };
}

export function makeCodecGroup(full: CodecSizes = { ramBytes: GiB, runs: 5 }, quick: CodecSizes = { ramBytes: 256 * MiB, runs: 3 }): BenchGroup {
  return {
    name: 'codec',
    description: 'memcpy limit, stream decode (copying and no-op sinks) and encode of RAM as PAGE records',
    async run(ctx: BenchContext): Promise<BenchRow[]> {
      const { ramBytes, runs } = ctx.quick ? quick : full;
      const size = formatBytes(ramBytes).replace('.00 ', ' ');
      ctx.progress(`codec: preparing ${size} of non-zero RAM`);
      const ram = nonZeroRam(ramBytes);
      const target = new Uint8Array(ramBytes);
      target.fill(1); // fault the pages in before any timing

      ctx.progress('codec: memcpy');
      const src = Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
      const dst = Buffer.from(target.buffer, target.byteOffset, target.byteLength);
      const bufferCopy = gbPerSecond(ramBytes, await timeRuns(ctx, runs, () => void src.copy(dst)));
      const typedSet = gbPerSecond(ramBytes, await timeRuns(ctx, runs, () => target.set(ram)));
      const memcpy = Math.max(median(bufferCopy), median(typedSet));
      const versus = { name: 'memcpy', value: memcpy };
      const goal = { value: CODEC_GOAL_GB_PER_S, better: 'higher' as const, text: `>= ${CODEC_GOAL_GB_PER_S} GB/s` };

      ctx.progress('codec: building the PAGE-record stream');
      const stream = encodePrecopyStream({ machine: 'none', blocks: [{ name: 'mem', bytes: ram }] });
      const pages = ramBytes / PAGE_BYTES;

      ctx.progress('codec: decode into RAM');
      target.fill(0);
      decodeOnce(stream, new CopySink(target));
      if (Buffer.compare(Buffer.from(target.buffer, 0, ramBytes), src) !== 0) throw new Error('bench: decoded RAM differs from the source');
      const copySink = new CopySink(target);
      const decodeCopy = gbPerSecond(stream.length, await timeRuns(ctx, runs, () => decodeOnce(stream, copySink)));

      ctx.progress('codec: decode with a no-op sink');
      const noop = new NoopSink();
      const decodeNoop = gbPerSecond(stream.length, await timeRuns(ctx, runs, () => decodeOnce(stream, noop), { before: () => (noop.pages = 0) }));
      if (noop.pages !== pages) throw new Error(`bench: no-op sink saw ${noop.pages} pages, expected ${pages}`);

      ctx.progress('codec: encode');
      let produced = 0;
      const encodeOnce = (): void => {
        const e = new StreamEncoder({ onChunk: (c) => void (produced += c.length) });
        const r = e.ramPages('mem', ram);
        e.flush();
        if (r.normalPages !== pages) throw new Error(`bench: encoder wrote ${r.normalPages} PAGE records, expected ${pages}`);
      };
      const encode = gbPerSecond(ramBytes, await timeRuns(ctx, runs, encodeOnce, { before: () => (produced = 0) }));

      const streamNote = `${(stream.length / 1e9).toFixed(3)} GB stream, ${pages} PAGE records, 1 MiB chunks`;
      return [
        row(`memcpy Buffer.copy ${size}`, bufferCopy, { note: `median of ${runs}` }),
        row(`memcpy Uint8Array.set ${size}`, typedSet, { note: `median of ${runs}` }),
        row(`decode ${size} PAGE stream -> RAM buffer`, decodeCopy, { goal, versus, note: `${streamNote}; GB/s of stream bytes` }),
        row(`decode ${size} PAGE stream, no-op sink`, decodeNoop, { goal, versus, note: `${streamNote}; the parser alone (page bytes are not read); GB/s of stream bytes` }),
        row(`encode ${size} RAM -> PAGE records`, encode, { goal, versus, note: `${produced} stream bytes per run in 1 MiB chunks, consumed; GB/s of RAM bytes` }),
      ];
    },
  };
}
