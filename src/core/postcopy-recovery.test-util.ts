/**
 * Test-only: a SourceEngine and a DestEngine wired back to back through a tiny seeded link
 * (per-channel FIFO queues with a latency of a few steps), with two destination vCPUs that
 * touch random pages once the guest runs there. The link can be cut: a random prefix of the
 * bytes in flight on each channel arrives, the rest is lost, both sides see the channel fail
 * (or one side is told migrate-pause), and later a recovery runs on new "connections".
 *
 *   step:  deliver due bytes (main, preempt → destination; return path → source)
 *          vCPUs touch pages (faults → requests) · pump the source · maybe cut or recover
 *
 * No simulator and no clock beyond a step counter (1 ms per step).
 */
import { concatBytes } from '../lib/bytes.ts';
import { Prng } from '../lib/prng.ts';
import { BytesBacking } from '../memory/bytes-backing.ts';
import { ReceivedMap } from '../memory/received-map.ts';
import { RamBlockList } from '../memory/ram-block.ts';
import { DestEngine } from './dest/dest-engine.ts';
import type { ChannelName, Effect, StepResult } from './engine-types.ts';
import { caps, engineFor, Guest, PAGE } from './source/source-harness.test-util.ts';
import type { SourceEngine } from './source/source-engine.ts';
import type { MigrationStatus } from './status.ts';

const MS = 1_000_000;

/** How the link is cut. */
export type CutKind = 'channel-error' | 'source-pause' | 'destination-pause';

export interface PairOptions {
  readonly seed: number;
  /** Capability postcopy-preempt on both sides. */
  readonly preempt: boolean;
  /** What breaks the connection. */
  readonly cut: CutKind;
  /** Cut the recovery connection too, once, before its handshake ends. */
  readonly doubleCut: boolean;
}

type Wire = ChannelName | 'return-path';

interface InFlight {
  readonly atStep: number;
  readonly data: Uint8Array;
}

/** Everything a run observed, for the test's assertions. */
export interface PairRun {
  readonly source: SourceEngine;
  readonly dest: DestEngine;
  readonly sourceRam: BytesBacking;
  readonly destRam: BytesBacking;
  readonly sourceStatuses: MigrationStatus[];
  readonly destStatuses: MigrationStatus[];
  /** Cuts done (1, or 2 with doubleCut). */
  readonly cuts: number;
  /** Faults that had to wait, and how many of them waited across a cut. */
  readonly faultsWaited: number;
  readonly faultsAcrossCut: number;
  /**
   * Pages the source had written (their dirty bits cleared) that never arrived, summed over the
   * recoveries: the destination misses them, so the recovery must send them again.
   */
  readonly pagesLostAtCuts: number;
  readonly steps: number;
}

export const BLOCKS = [
  { name: 'pc.ram', offsetBytes: 0, sizeBytes: 96 * PAGE },
  { name: 'ram1', offsetBytes: 96 * PAGE, sizeBytes: 32 * PAGE },
] as const;
const PAGES = 128;
const STEPS_MAX = 20_000;

/** Runs one migration with a cut and a recovery; throws on anything unexpected. */
export function runPair(options: PairOptions): PairRun {
  const rng = new Prng(options.seed);
  const guest = new Guest('bytes', PAGES, BLOCKS);
  for (let p = 0; p < PAGES; p++) if (rng.chance(0.8)) guest.write(p, p);
  const capabilities = options.preempt ? caps('postcopy-ram', 'postcopy-preempt') : caps('postcopy-ram');
  const { engine: source } = engineFor(guest, { capabilities, debugChecks: true, maxChunkPages: 4 });
  const blocks = new RamBlockList(BLOCKS);
  const destRam = new BytesBacking(PAGES * PAGE);
  const received = new ReceivedMap(PAGES);
  const dest = new DestEngine({
    ram: { blocks, store: destRam, received },
    hooks: { loadDevice: () => null, postcopyNotify: () => null, localZeroPages: () => null },
    vcpuCount: 2,
    capabilities: { 'postcopy-ram': true, 'postcopy-preempt': options.preempt },
  });

  const queues: Record<Wire, InFlight[]> = { main: [], preempt: [], 'return-path': [] };
  const sourceStatuses: MigrationStatus[] = ['none'];
  const destStatuses: MigrationStatus[] = ['none'];
  const waiting: number[] = [-1, -1];
  const waitedAcrossCut = new Set<number>();
  let destRunning = false;
  let step = 0;
  let cuts = 0;
  let faultsWaited = 0;
  let pagesLostAtCuts = 0;
  const nowNs = (): number => step * MS;
  const latency = (): number => rng.int(1, 3);

  const queue = (wire: Wire, data: Uint8Array): void => {
    const q = queues[wire];
    const last = q.length > 0 ? q[q.length - 1].atStep : 0;
    q.push({ atStep: Math.max(last, step + latency()), data });
  };
  const applySource = (result: StepResult): void => {
    for (const e of result.effects) {
      if (e.kind === 'send') queue(e.channel as Wire, e.data); // no multifd here
      else if (e.kind === 'status') sourceStatuses.push(e.to);
    }
  };
  const applyDest = (effects: readonly Effect[]): void => {
    for (const e of effects) {
      if (e.kind === 'send') queue('return-path', e.data);
      else if (e.kind === 'status') destStatuses.push(e.to);
      else if (e.kind === 'run-guest') destRunning = true;
      else if (e.kind === 'page-ready') for (let v = 0; v < 2; v++) if (waiting[v] === e.pageIndex) waiting[v] = -1;
    }
  };
  const deliver = (wire: Wire, data: Uint8Array): void => {
    if (wire === 'return-path') applySource(source.onReturnPath(nowNs(), data));
    else applyDest(dest.onBytes(wire, data, nowNs()).effects);
  };
  const deliverDue = (): void => {
    for (const wire of ['main', 'preempt', 'return-path'] as const) {
      const q = queues[wire];
      while (q.length > 0 && q[0].atStep <= step) deliver(wire, (q.shift() as InFlight).data);
    }
  };
  /** A random prefix of each channel's bytes in flight arrives; the rest is lost. */
  const cut = (): void => {
    cuts++;
    for (const wire of ['return-path', 'preempt', 'main'] as const) {
      const inFlight = concatBytes(queues[wire].map((f) => f.data));
      queues[wire] = [];
      // Never the last byte: the main stream's EOF, when in flight, is its last byte.
      const keep = inFlight.length === 0 ? 0 : rng.int(0, inFlight.length - 1);
      if (keep > 0) deliver(wire, inFlight.subarray(0, keep));
    }
    for (const wire of ['main', 'preempt', 'return-path'] as const) queues[wire] = [];
    const kind = cuts === 1 ? options.cut : 'channel-error';
    if (kind === 'source-pause') {
      const r = source.migratePause(nowNs());
      if (r.error !== null) throw r.error;
      applySource(r);
    } else if (kind === 'destination-pause') {
      const r = dest.migratePause(nowNs());
      if (r.error !== null) throw r.error;
      applyDest(r.effects);
    }
    // The connections go away: both sides see it (a no-op on the side already paused).
    applySource(source.channelError(nowNs(), 'connection lost'));
    applyDest(dest.onChannelClosed('main', nowNs()).effects);
    if (options.preempt) applyDest(dest.onChannelClosed('preempt', nowNs()).effects);
    for (const v of waiting) if (v >= 0) waitedAcrossCut.add(v);
  };
  const recover = (): void => {
    pagesLostAtCuts += dest.missingPages() - source.migrationBitmap.dirtyCount;
    const r = dest.migrateRecover(nowNs());
    if (r.error !== null) throw r.error;
    applyDest(r.effects);
    const replaced = dest.onChannelReplaced('main', nowNs());
    if (!replaced.accepted) throw new Error('the destination refused the recovery connection');
    applyDest(replaced.effects);
    if (options.preempt) applyDest(dest.onChannelReplaced('preempt', nowNs()).effects);
    const resumed = source.resume(nowNs());
    if (resumed.error !== null) throw resumed.error;
    applySource(resumed);
  };

  applySource(source.start(nowNs()));
  const postcopyAt = rng.int(0, 4);
  let cutAt = -1;
  let recoverAt = -1;
  let secondCutAt = -1;
  for (; step < STEPS_MAX; step++) {
    deliverDue();
    if (source.status === 'completed' && dest.status === 'completed') break;
    if (step === postcopyAt && source.startPostcopy(nowNs()).error !== null) throw new Error('migrate-start-postcopy refused');
    if (source.status === 'active') for (let k = rng.int(0, 3); k > 0; k--) guest.write(rng.int(0, PAGES - 1), step);
    if (destRunning) {
      for (let v = 0; v < 2; v++) {
        if (waiting[v] >= 0 || !rng.chance(0.4)) continue;
        const page = rng.int(0, PAGES - 1);
        if (received.isReceived(page)) continue;
        const f = dest.onGuestFault(v, page, nowNs());
        applyDest(f.effects);
        if (!f.present) {
          waiting[v] = page;
          faultsWaited++;
        }
      }
    }
    if (source.readiness(nowNs()).kind === 'pump') applySource(source.pump(nowNs(), rng.int(1, 6) * PAGE));
    const phase = dest.phase;
    const cuttable = phase.kind === 'postcopy' && phase.running && source.status === 'postcopy-active';
    if (cutAt < 0 && cuttable) cutAt = step + rng.int(0, 12);
    // At the chosen step, or at the last chance: the destination is about to complete.
    const lastChance = cuttable && (source.phase === 'awaiting-shut' || source.phase === 'completing');
    if (cuts === 0 && cutAt >= 0 && cuttable && (step >= cutAt || (lastChance && rng.chance(0.3)))) {
      cut();
      expectPaused(source.status, dest.status);
      recoverAt = step + rng.int(1, 8);
    } else if (step === recoverAt) {
      recover();
      if (options.doubleCut && cuts === 1) secondCutAt = step + rng.int(1, 2);
    } else if (step === secondCutAt && source.status === 'postcopy-recover') {
      cut();
      expectPaused(source.status, dest.status);
      recoverAt = step + rng.int(1, 4);
    }
  }
  return {
    source,
    dest,
    sourceRam: guest.store as BytesBacking,
    destRam,
    sourceStatuses,
    destStatuses,
    cuts,
    faultsWaited,
    faultsAcrossCut: waitedAcrossCut.size,
    pagesLostAtCuts,
    steps: step,
  };
}

function expectPaused(source: MigrationStatus, dest: MigrationStatus): void {
  if (source !== 'postcopy-paused' || dest !== 'postcopy-paused') throw new Error(`after the cut: source ${source}, destination ${dest}`);
}
