/**
 * Test-only helpers for the destination engine tests: destination RAM, recording hooks,
 * streams built with the format layer's StreamEncoder (the destination is not the encoder's
 * test, so sharing it is fine here), a feeder that pushes chunks with a clock, and effect
 * filters. Pure (no node:*), so it obeys the core layer rules.
 */
import { concatBytes } from '../../lib/bytes.ts';
import { RangeTable } from '../../lib/range-table.ts';
import { decodeReturnPath, type RpMessage } from '../../format/return-path.ts';
import { encodeNestedStream, encodeToBytes, type StreamEncoder } from '../../format/stream-encoder.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { RamBlockList, type RamBlockSpec } from '../../memory/ram-block.ts';
import { ReceivedMap } from '../../memory/received-map.ts';
import type { DestHooks, DestRam, DeviceSectionBlob, Effect, PostcopyNotifyReason } from '../engine-types.ts';
import { DestEngine } from './dest-engine.ts';
import type { DestEngineOptions } from './dest-types.ts';

export const PAGE = 4096;
export const MS = 1_000_000;
export const RAM_SECTION_ID = 2;

/** Destination RAM over a bytes store covering every block. */
export function makeDestRam(specs: readonly RamBlockSpec[]): DestRam & { store: BytesBacking } {
  const blocks = new RamBlockList(specs);
  const store = new BytesBacking(blocks.endBytes);
  return { blocks, store, received: new ReceivedMap(store.pageCount) };
}

/** Hooks that record every call; vetoes, device refusals and local zero pages are settable. */
export class RecordingHooks implements DestHooks {
  /** Every device blob loaded, in order. */
  readonly devices: DeviceSectionBlob[] = [];
  /** Every notifier reason, in order. */
  readonly notified: PostcopyNotifyReason[] = [];
  /** Reason → veto text. */
  vetoes = new Map<PostcopyNotifyReason, string>();
  /** idstr → refusal text. */
  deviceRefusals = new Map<string, string>();
  /** Pages to zero-fill locally, or null. */
  localZero: RangeTable | null = null;

  loadDevice(blob: DeviceSectionBlob): string | null {
    this.devices.push(blob);
    return this.deviceRefusals.get(blob.idstr) ?? null;
  }

  postcopyNotify(reason: PostcopyNotifyReason): string | null {
    this.notified.push(reason);
    return this.vetoes.get(reason) ?? null;
  }

  localZeroPages(): RangeTable | null {
    return this.localZero;
  }
}

/** The QEMU test pattern: page i holds the little-endian u32 i repeated 1024 times (page 0 is zero). */
export function patternBytes(pageCount: number, firstPage = 0): Uint8Array {
  const words = new Uint32Array(pageCount * 1024);
  for (let p = 0; p < pageCount; p++) words.fill(firstPage + p, p * 1024, (p + 1) * 1024);
  return new Uint8Array(words.buffer);
}

/** A block's name and the source's bytes of it. */
export interface SourceBlock {
  readonly name: string;
  readonly data: Uint8Array;
}

export interface PrecopyStreamSpec {
  readonly blocks: readonly SourceBlock[];
  /** OPEN_RETURN_PATH + PING 1 (QEMU with return-path or postcopy-ram). */
  readonly returnPath?: boolean;
  /** globalstate runstate; null = no globalstate section. */
  readonly runstate?: string | null;
  /** Extra writes before EOF (device sections). */
  readonly beforeEof?: (e: StreamEncoder) => void;
  /** Pages to leave out of the stream, as [blockName, pageInBlock]. */
  readonly skip?: ReadonlyArray<readonly [string, number]>;
}

/** A QEMU-shaped precopy stream: setup, one PART with every page, END, timer, globalstate, EOF, vmdesc. */
export function precopyStream(spec: PrecopyStreamSpec): Uint8Array {
  const skip = new Set((spec.skip ?? []).map(([b, p]) => `${b}/${p}`));
  return encodeToBytes((e) => {
    e.header();
    e.configuration({ machine: 'none' });
    if (spec.returnPath === true) {
      e.command({ kind: 'open-return-path' });
      e.command({ kind: 'ping', value: 1 });
    }
    ramSetup(e, spec.blocks);
    e.sectionPart(RAM_SECTION_ID);
    for (const b of spec.blocks) {
      for (let p = 0; p < b.data.length / PAGE; p++) {
        if (!skip.has(`${b.name}/${p}`)) e.ramPages(b.name, b.data, 0, p * PAGE, PAGE);
      }
    }
    e.ramEos();
    e.footer(RAM_SECTION_ID);
    e.sectionEnd(RAM_SECTION_ID);
    e.ramEos();
    e.footer(RAM_SECTION_ID);
    devices(e, spec.runstate === undefined ? 'running' : spec.runstate);
    spec.beforeEof?.(e);
    e.eof();
    e.vmdescription('{"page_size": 4096, "devices": []}');
  });
}

/** START of `ram` with its MEM_SIZE list, EOS and footer. */
export function ramSetup(e: StreamEncoder, blocks: readonly SourceBlock[]): void {
  e.sectionStart(RAM_SECTION_ID, 'ram', 0, 4);
  e.ramMemSize(blocks.map((b) => ({ name: b.name, usedLengthBytes: b.data.length })));
  e.ramEos();
  e.footer(RAM_SECTION_ID);
}

function devices(e: StreamEncoder, runstate: string | null): void {
  e.timerSection(0, { cpu_ticks_offset: 0n, cpu_clock_offset: 123n });
  if (runstate !== null) e.globalstateSection(4, runstate);
}

/** One RAM PART: the given pages of the given blocks, EOS, footer. */
export function ramPart(pages: ReadonlyArray<readonly [SourceBlock, number]>): Uint8Array {
  return encodeToBytes((e) => {
    e.sectionPart(RAM_SECTION_ID);
    for (const [b, p] of pages) e.ramPages(b.name, b.data, 0, p * PAGE, PAGE);
    e.ramEos();
    e.footer(RAM_SECTION_ID);
  });
}

/** The RAM END section (nothing left) and EOF: the tail of a postcopy stream. */
export function postcopyTail(): Uint8Array {
  return encodeToBytes((e) => {
    e.sectionEnd(RAM_SECTION_ID);
    e.ramEos();
    e.footer(RAM_SECTION_ID);
    e.eof();
  });
}

export interface PostcopyPrefixSpec {
  readonly blocks: readonly SourceBlock[];
  /** Pages sent in precopy, before the switch, as [block index, page in block]. */
  readonly precopyPages: ReadonlyArray<readonly [number, number]>;
  /** Discarded at the switch: [block index, first page, page count]. */
  readonly discards: ReadonlyArray<readonly [number, number, number]>;
  readonly runstate?: string;
  /** The ADVISE payload; default 0x1000 / 0x1000. */
  readonly advise?: { readonly pageSizeSummary: number; readonly targetPageSize: number } | 'empty';
}

/**
 * A postcopy stream up to and including PING 4 (facts §3.4): setup with ADVISE, a precopy PART,
 * the discards, PING 2, PACKAGED { LISTEN, devices, PING 3, RUN }, PING 4.
 */
export function postcopyPrefix(spec: PostcopyPrefixSpec): Uint8Array {
  return encodeToBytes((e) => {
    e.header();
    e.configuration({ machine: 'none' });
    e.command({ kind: 'open-return-path' });
    e.command({ kind: 'ping', value: 1 });
    const advise = spec.advise ?? { pageSizeSummary: PAGE, targetPageSize: PAGE };
    e.command(advise === 'empty' ? { kind: 'postcopy-advise-empty' } : { kind: 'postcopy-advise', ...advise });
    ramSetup(e, spec.blocks);
    e.sectionPart(RAM_SECTION_ID);
    for (const [b, p] of spec.precopyPages) e.ramPages(spec.blocks[b].name, spec.blocks[b].data, 0, p * PAGE, PAGE);
    e.ramEos();
    e.footer(RAM_SECTION_ID);
    for (const [b, first, count] of spec.discards) {
      e.command({ kind: 'postcopy-ram-discard', blockName: spec.blocks[b].name, ranges: [{ startBytes: first * PAGE, lengthBytes: count * PAGE }] });
    }
    e.command({ kind: 'ping', value: 2 });
    e.packaged(
      encodeNestedStream((n) => {
        n.command({ kind: 'postcopy-listen' });
        devices(n, spec.runstate ?? 'running');
        n.command({ kind: 'ping', value: 3 });
        n.command({ kind: 'postcopy-run' });
      }),
    );
    e.command({ kind: 'ping', value: 4 });
    e.resetLastBlock();
  });
}

/** Pushes chunks into an engine with a clock; keeps every effect. */
export class Feeder {
  readonly effects: Effect[] = [];
  nowNs: number;

  constructor(readonly engine: DestEngine, startNs = 0) {
    this.nowNs = startNs;
  }

  /** Pushes `bytes` in one chunk at the current time. */
  push(bytes: Uint8Array): Effect[] {
    const out = this.engine.onBytes('main', bytes, this.nowNs).effects;
    this.effects.push(...out);
    return out;
  }

  /** Pushes `bytes` cut at the given offsets, advancing the clock 1 ms per chunk. */
  pushSplit(bytes: Uint8Array, cuts: readonly number[]): void {
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      this.push(bytes.subarray(at, cut));
      at = cut;
      this.nowNs += MS;
    }
  }

  /**
   * As pushSplit, but as the real shell reads: each chunk is copied into one buffer reused for
   * every push, and that buffer is overwritten with garbage right after the push, so anything
   * the engine kept a view of (instead of consuming it) would be corrupted.
   */
  pushSplitReused(bytes: Uint8Array, cuts: readonly number[]): void {
    let at = 0;
    let longest = 0;
    for (const cut of [...cuts, bytes.length]) {
      longest = Math.max(longest, cut - at);
      at = cut;
    }
    const buffer = new Uint8Array(longest);
    at = 0;
    for (const cut of [...cuts, bytes.length]) {
      buffer.set(bytes.subarray(at, cut));
      this.push(buffer.subarray(0, cut - at));
      buffer.fill(0xa5);
      at = cut;
      this.nowNs += MS;
    }
  }

  fault(vcpu: number, page: number): { present: boolean; effects: Effect[] } {
    const r = this.engine.onGuestFault(vcpu, page, this.nowNs);
    this.effects.push(...r.effects);
    return { present: r.present, effects: r.effects };
  }

  close(): Effect[] {
    const out = this.engine.onChannelClosed('main', this.nowNs).effects;
    this.effects.push(...out);
    return out;
  }
}

/** A fresh engine over fresh RAM for `blocks`, with recording hooks. */
export function makeEngine(
  blocks: readonly SourceBlock[],
  options: Partial<Omit<DestEngineOptions, 'ram' | 'hooks'>> = {},
): { engine: DestEngine; ram: ReturnType<typeof makeDestRam>; hooks: RecordingHooks; feeder: Feeder } {
  let offset = 0;
  const specs = blocks.map((b) => {
    const spec = { name: b.name, offsetBytes: offset, sizeBytes: b.data.length };
    offset += b.data.length;
    return spec;
  });
  const ram = makeDestRam(specs);
  const hooks = new RecordingHooks();
  const engine = new DestEngine({ vcpuCount: 1, ...options, ram, hooks });
  return { engine, ram, hooks, feeder: new Feeder(engine) };
}

/** The return-path messages among `effects`, decoded. */
export function returnPathMessages(effects: readonly Effect[]): RpMessage[] {
  const parts: Uint8Array[] = [];
  for (const e of effects) if (e.kind === 'send' && e.channel === 'return-path') parts.push(e.data);
  return parts.length === 0 ? [] : decodeReturnPath(concatBytes(parts));
}

/** The effects of one kind. */
export function effectsOf<K extends Effect['kind']>(effects: readonly Effect[], kind: K): Array<Effect & { kind: K }> {
  return effects.filter((e): e is Effect & { kind: K } => e.kind === kind);
}

/** The names of the marks among `effects`. */
export function markNames(effects: readonly Effect[]): string[] {
  return effectsOf(effects, 'mark').map((m) => m.name);
}

/** The status moves among `effects`, as "from→to". */
export function statusMoves(effects: readonly Effect[]): string[] {
  return effectsOf(effects, 'status').map((s) => `${s.from}→${s.to}`);
}
