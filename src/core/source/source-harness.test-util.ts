/**
 * Test-only harness for the source engine: a guest (bytes or compact RAM, a dirty log, blocks),
 * recording hooks, a destination model that decodes the produced stream with format's
 * StreamDecoder into its own RAM and logs what arrived, and a small driving loop. No simulator:
 * time advances by a fixed step per pump and the "link" takes `budgetBytes` per pump.
 */
import { RangeTable } from '../../lib/range-table.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { DirtyLog } from '../../memory/dirty-log.ts';
import type { MigrationBitmap } from '../../memory/migration-bitmap.ts';
import type { PageStore } from '../../memory/page-store.ts';
import { RamBlockList, type RamBlockSpec } from '../../memory/ram-block.ts';
import { StreamDecoder } from '../../format/stream-decoder.ts';
import { encodeRpMessages, type RpMessage } from '../../format/return-path.ts';
import type { VersionPageSink } from '../../format/ram-records.ts';
import type { Command, RamBlockRef, StreamRecord } from '../../format/stream-types.ts';
import { defaultCapabilities, type MigrationCapabilities, type MigrationCapability } from '../capabilities.ts';
import { DEFAULT_PARAMETERS, type MigrationParameters } from '../params.ts';
import type { DeviceSectionBlob, Effect, PagePayloadMode, PrecopyNotifyReason, SourceHooks, SourceRam, StepResult } from '../engine-types.ts';
import { SourceEngine } from './source-engine.ts';
import type { SourceOptions } from './source-types.ts';

export const MS = 1_000_000;
export const PAGE = 4096;

/** A guest: RAM, its dirty log, its blocks, and page writers that dirty the log. */
export class Guest {
  readonly store: PageStore;
  readonly log: DirtyLog;
  readonly blocks: RamBlockList;
  readonly ram: SourceRam;

  constructor(kind: 'bytes' | 'compact', pageCount: number, blocks?: readonly RamBlockSpec[]) {
    this.store = kind === 'bytes' ? new BytesBacking(pageCount * PAGE) : new CompactBacking(pageCount);
    this.log = new DirtyLog(pageCount);
    this.blocks = blocks === undefined ? RamBlockList.single('ram', pageCount * PAGE) : new RamBlockList(blocks);
    const log = this.log;
    this.ram = { blocks: this.blocks, store: this.store, syncDirtyLog: (into: MigrationBitmap) => into.syncFrom(log) };
  }

  /** Fills page `page` with a pattern derived from `seed` (bytes) or bumps it (compact), and logs it. */
  write(page: number, seed: number): void {
    if (this.store instanceof BytesBacking) {
      const base = page * PAGE;
      for (let i = 0; i < PAGE; i += 4) this.store.words[(base + i) >>> 2] = Math.imul(seed + 1, 0x9e3779b1) ^ (page * 4099 + i);
    } else {
      this.store.bumpPage(page);
    }
    this.log.markDirty(page);
  }

}

/** The part of node:crypto's Hash the digest needs (tests pass createHash('sha256')). */
export interface PageHash {
  update(data: Uint8Array): unknown;
  digest(encoding: 'hex'): string;
}

/** The digest of all RAM, materialized page by page into `hash`. */
export function digestStore(store: PageStore, hash: PageHash): string {
  const page = new Uint8Array(PAGE);
  for (let i = 0; i < store.pageCount; i++) {
    store.copyPageOut(i, page, 0);
    hash.update(page);
  }
  return hash.digest('hex');
}

/** Hooks that record the notifier sequence and return fixed devices. */
export class RecordingHooks implements SourceHooks {
  readonly notifications: string[] = [];
  skip: RangeTable | null = null;
  devices: DeviceSectionBlob[] = [timerBlob(), globalstateBlob('running')];

  precopyNotify(reason: PrecopyNotifyReason, _nowNs: number, vmRunning: boolean): void {
    this.notifications.push(vmRunning ? reason : `${reason}(stopped)`);
  }
  skipPages(): RangeTable | null {
    return this.skip;
  }
  saveDevices(): readonly DeviceSectionBlob[] {
    return this.devices;
  }
}

export function timerBlob(): DeviceSectionBlob {
  const payload = new Uint8Array(24);
  payload[7] = 5; // cpu_ticks_offset = 5
  return { idstr: 'timer', instanceId: 0, versionId: 2, payload };
}

export function globalstateBlob(runstate: string): DeviceSectionBlob {
  const payload = new Uint8Array(104);
  new DataView(payload.buffer).setUint32(0, runstate.length + 1);
  for (let i = 0; i < runstate.length; i++) payload[4 + i] = runstate.charCodeAt(i);
  return { idstr: 'globalstate', instanceId: 0, versionId: 1, payload };
}

export function caps(...on: MigrationCapability[]): MigrationCapabilities {
  const c = { ...defaultCapabilities() } as Record<MigrationCapability, boolean>;
  for (const name of on) c[name] = true;
  return c;
}

export function params(changes: Partial<MigrationParameters> = {}): MigrationParameters {
  return { ...DEFAULT_PARAMETERS, ...changes };
}

/** One page as the destination received it. */
export interface Arrival {
  readonly page: number;
  readonly kind: 'page' | 'zero' | 'version';
  /** Arrived after POSTCOPY_LISTEN (in the postcopy phase). */
  readonly postcopy: boolean;
  readonly channel: 'main' | 'preempt';
}

/**
 * The destination side of the tests: decodes main (and preempt) bytes into its own RAM and
 * keeps a log of records, commands and page arrivals.
 */
export class Destination implements VersionPageSink {
  readonly store: PageStore;
  readonly records: StreamRecord[] = [];
  readonly commands: Command[] = [];
  readonly arrivals: Arrival[] = [];
  /** Record kinds in order, commands spelled `command:kind`, sections `begin:type:idstr`. */
  readonly trail: string[] = [];
  private readonly decoder: StreamDecoder;
  private readonly blocks: RamBlockList;
  private listening = false;
  private channel: 'main' | 'preempt' = 'main';
  sawEof = false;

  constructor(guest: Guest, mode: PagePayloadMode = 'bytes') {
    this.store = guest.store instanceof BytesBacking ? new BytesBacking(guest.store.sizeBytes) : new CompactBacking(guest.store.pageCount);
    this.blocks = guest.blocks;
    this.decoder = new StreamDecoder(this, { pagePayloadMode: mode, postcopyRam: true });
  }

  /** Feeds the sends of a step; returns them for inspection. */
  take(result: StepResult): Effect[] {
    for (const e of result.effects) {
      if (e.kind !== 'send') continue;
      if (e.channel === 'main') this.decoder.push(e.data);
      else if (e.channel === 'preempt') this.decodeBare(e.data);
    }
    return result.effects;
  }

  record(record: StreamRecord): void {
    this.records.push(record);
    if (record.kind === 'command') {
      this.commands.push(record.command);
      this.trail.push(`command:${record.command.kind}`);
      if (record.command.kind === 'postcopy-listen') this.listening = true;
    } else if (record.kind === 'section-begin') {
      this.trail.push(`begin:${record.header.type}:${record.header.idstr}`);
    } else if (record.kind === 'eof') {
      this.trail.push(record.depth === 0 ? 'eof' : 'eof(nested)');
      if (record.depth === 0) this.sawEof = true;
    } else {
      this.trail.push(record.kind);
    }
  }

  private pageOf(block: RamBlockRef, offsetBytes: number): number {
    return this.blocks.toPageIndex(block.name, offsetBytes / PAGE);
  }

  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void {
    const page = this.pageOf(block, offsetBytes);
    this.store.writePageFrom(page, data, 0);
    this.arrivals.push({ page, kind: 'page', postcopy: this.listening, channel: this.channel });
  }

  ramZero(block: RamBlockRef, offsetBytes: number): void {
    const page = this.pageOf(block, offsetBytes);
    this.store.zeroPage(page);
    this.arrivals.push({ page, kind: 'zero', postcopy: this.listening, channel: this.channel });
  }

  ramPageVersion(block: RamBlockRef, offsetBytes: number, version: number): void {
    const page = this.pageOf(block, offsetBytes);
    (this.store as CompactBacking).setVersion(page, version);
    this.arrivals.push({ page, kind: 'version', postcopy: this.listening, channel: this.channel });
  }

  /** The preempt channel carries bare RAM records (bytes mode only here): decoded by hand. */
  private decodeBare(data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let pos = 0;
    let name = '';
    while (pos < data.length) {
      const low = view.getUint32(pos + 4);
      const offsetBytes = view.getUint32(pos) * 2 ** 32 + (low & ~0xfff);
      const flags = low & 0xfff;
      pos += 8;
      if (flags === 0x10) continue; // EOS
      if ((flags & 0x20) === 0) {
        const n = data[pos];
        name = String.fromCharCode(...data.subarray(pos + 1, pos + 1 + n));
        pos += 1 + n;
      }
      const block: RamBlockRef = { index: 0, name, usedLengthBytes: this.blocks.requireByName(name).sizeBytes };
      this.channel = 'preempt';
      if ((flags & 0xf) === 0x2) {
        this.ramZero(block, offsetBytes);
        pos += 1;
      } else {
        this.ramPage(block, offsetBytes, data.subarray(pos, pos + PAGE));
        pos += PAGE;
      }
      this.channel = 'main';
    }
  }

  /** Pages that arrived more than once after POSTCOPY_LISTEN. */
  duplicatesAfterSwitch(): number[] {
    const seen = new Set<number>();
    const dups: number[] = [];
    for (const a of this.arrivals) {
      if (!a.postcopy) continue;
      if (seen.has(a.page)) dups.push(a.page);
      seen.add(a.page);
    }
    return dups;
  }
}

/** Return-path bytes for messages. */
export function rp(...messages: RpMessage[]): Uint8Array {
  return encodeRpMessages(messages);
}

export const SHUT_OK: RpMessage = { kind: 'shut', status: 0 };

/** An engine over `guest` with recording hooks. */
export function engineFor(
  guest: Guest,
  options: SourceOptions & { capabilities?: MigrationCapabilities; parameters?: MigrationParameters; hooks?: RecordingHooks } = {},
): { engine: SourceEngine; hooks: RecordingHooks } {
  const hooks = options.hooks ?? new RecordingHooks();
  const engine = new SourceEngine({
    ...options,
    ram: guest.ram,
    hooks,
    capabilities: options.capabilities ?? caps('events'),
    parameters: options.parameters ?? params(),
  });
  return { engine, hooks };
}

/** Every effect of a kind from a list of step results. */
export function effectsOf(results: readonly StepResult[], kind: Effect['kind']): Effect[] {
  return results.flatMap((r) => r.effects.filter((e) => e.kind === kind));
}

/** Status moves as "from>to" strings. */
export function statusMoves(results: readonly StepResult[]): string[] {
  return effectsOf(results, 'status').map((e) => (e.kind === 'status' ? `${e.from}>${e.to}` : ''));
}

/** Mark names. */
export function marks(results: readonly StepResult[]): string[] {
  return effectsOf(results, 'mark').map((e) => (e.kind === 'mark' ? e.name : ''));
}

export interface DriveOptions {
  /** Wire bytes the link takes per pump. */
  readonly budgetBytes?: number;
  /** Virtual time per pump. */
  readonly stepNs?: number;
  /** Called before each pump (guest activity). */
  readonly beforePump?: (nowNs: number, iteration: number) => void;
  /** Bound on pumps. */
  readonly maxPumps?: number;
  /** Answer EOF with SHUT(0) on the return path. */
  readonly shut?: boolean;
}

/**
 * Pumps until the engine is idle or `maxPumps`; feeds the destination; answers EOF with SHUT.
 * Returns every step result and the final time.
 */
export function drive(engine: SourceEngine, dest: Destination, startNs: number, options: DriveOptions = {}): { results: StepResult[]; nowNs: number; pumps: number } {
  const budget = options.budgetBytes ?? 1 << 20;
  const step = options.stepNs ?? 10 * MS;
  const maxPumps = options.maxPumps ?? 100_000;
  const results: StepResult[] = [];
  let now = startNs;
  let pumps = 0;
  let shutSent = false;
  while (pumps < maxPumps) {
    const ready = engine.readiness(now);
    if (ready.kind === 'idle') {
      if (dest.sawEof && options.shut !== false && !shutSent && engine.phase === 'awaiting-shut') {
        shutSent = true;
        results.push(engine.onReturnPath(now, rp(SHUT_OK)));
        continue;
      }
      break;
    }
    now += step;
    options.beforePump?.(now, pumps);
    const r = engine.pump(now, budget);
    dest.take(r);
    results.push(r);
    pumps++;
  }
  return { results, nowNs: now, pumps };
}
