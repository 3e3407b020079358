/**
 * Test-only helpers for the stream decoder tests: a tiny byte builder that writes the wire
 * format from literal numbers (deliberately independent of StreamEncoder and of
 * constants.ts, so decoder tests do not share assumptions with the code under test), and a
 * recording sink that turns everything a decoder delivers into comparable plain values.
 */
import type { RamBlockRef, StreamRecord, StreamSink } from './stream-types.ts';

export class Fx {
  private readonly out: number[] = [];

  /** Hex digits, whitespace ignored. */
  hex(text: string): this {
    const clean = text.replace(/\s+/g, '');
    for (let i = 0; i < clean.length; i += 2) this.out.push(parseInt(clean.slice(i, i + 2), 16));
    return this;
  }

  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }

  be16(v: number): this {
    return this.u8(v >>> 8).u8(v);
  }

  be32(v: number): this {
    return this.u8(v >>> 24).u8(v >>> 16).u8(v >>> 8).u8(v);
  }

  be64(v: number | bigint): this {
    const b = BigInt.asUintN(64, BigInt(v));
    return this.be32(Number(b >> 32n)).be32(Number(b & 0xffffffffn));
  }

  text(s: string): this {
    for (let i = 0; i < s.length; i++) this.out.push(s.charCodeAt(i));
    return this;
  }

  cstr(s: string): this {
    return this.u8(s.length).text(s);
  }

  bytes(b: Uint8Array | readonly number[]): this {
    for (const x of b) this.out.push(x);
    return this;
  }

  /** Magic "QEVM", version 3. */
  header(): this {
    return this.hex('5145564d 00000003');
  }

  config(machine: string): this {
    return this.u8(0x07).be32(machine.length).text(machine);
  }

  start(id: number, idstr: string, instance: number, version: number): this {
    return this.u8(0x01).be32(id).cstr(idstr).be32(instance).be32(version);
  }

  full(id: number, idstr: string, instance: number, version: number): this {
    return this.u8(0x04).be32(id).cstr(idstr).be32(instance).be32(version);
  }

  part(id: number): this {
    return this.u8(0x02).be32(id);
  }

  end(id: number): this {
    return this.u8(0x03).be32(id);
  }

  footer(id: number): this {
    return this.u8(0x7e).be32(id);
  }

  /** A RAM record word: offset | flags. */
  word(offset: number, flags: number): this {
    return this.be64(BigInt(offset) | BigInt(flags));
  }

  /** MEM_SIZE (0x04) list followed by nothing else. */
  memSize(blocks: ReadonlyArray<readonly [string, number]>): this {
    this.word(blocks.reduce((s, b) => s + b[1], 0), 0x04);
    for (const [name, len] of blocks) this.cstr(name).be64(len);
    return this;
  }

  /** PAGE (0x08), named or CONTINUE (0x28), with `data` (4096 bytes unless stated). */
  page(offset: number, name: string | null, data: Uint8Array): this {
    this.word(offset, name === null ? 0x28 : 0x08);
    if (name !== null) this.cstr(name);
    return this.bytes(data);
  }

  /** ZERO (0x02), named or CONTINUE (0x22), with the fill byte. */
  zero(offset: number, name: string | null, fill = 0): this {
    this.word(offset, name === null ? 0x22 : 0x02);
    if (name !== null) this.cstr(name);
    return this.u8(fill);
  }

  eos(): this {
    return this.word(0, 0x10);
  }

  cmd(num: number, payload: Fx | string = ''): this {
    const p = typeof payload === 'string' ? new Fx().hex(payload).build() : payload.build();
    return this.u8(0x08).be16(num).be16(p.length).bytes(p);
  }

  timer(id: number, ticks: bigint, clock: bigint): this {
    return this.full(id, 'timer', 0, 2).be64(ticks).be64(0).be64(clock).footer(id);
  }

  globalstate(id: number, runstate: string): this {
    this.full(id, 'globalstate', 0, 1).be32(runstate.length + 1).text(runstate);
    for (let i = runstate.length; i < 100; i++) this.u8(0);
    return this.footer(id);
  }

  eof(): this {
    return this.u8(0x00);
  }

  vmdesc(json: string): this {
    return this.u8(0x06).be32(json.length).text(json);
  }

  get length(): number {
    return this.out.length;
  }

  build(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** A page whose bytes are `seed`, `seed + 1`, ... (mod 256). */
export function pageOf(seed: number, sizeBytes = 4096): Uint8Array {
  const p = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) p[i] = (seed + i) & 0xff;
  return p;
}

/** FNV-1a over bytes, to log page contents compactly. */
export function fnv(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** Turns a record into a plain value (bigint as string, bytes as hex). */
export function plain(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'bigint') return `${v}n`;
      if (v instanceof Uint8Array) return Array.from(v, (b) => b.toString(16).padStart(2, '0')).join('');
      return v;
    }),
  );
}

/** A sink that logs every delivery as a plain value; page data is copied and hashed. */
export class RecordingSink implements StreamSink {
  readonly log: unknown[] = [];
  readonly records: StreamRecord[] = [];

  record(record: StreamRecord): void {
    this.records.push(record);
    this.log.push(plain(record));
  }

  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    this.log.push({ page: block.name, index: block.index, offsetBytes, data: fnv(data), lengthBytes: data.length });
  }

  ramZero(block: RamBlockRef, offsetBytes: number, fill: number): void {
    this.log.push({ zero: block.name, index: block.index, offsetBytes, fill });
  }

  kinds(): string[] {
    return this.records.map((r) => (r.kind === 'command' ? `command:${r.command.kind}` : r.kind));
  }
}
