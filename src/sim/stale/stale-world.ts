/**
 * Stale pages under free page hinting (issue [10]): a tiny seeded world that runs one precopy
 * migration of a small guest with the hinting races as switchable faults, and counts pages in
 * use at switchover whose destination copy is older than the source's ("stale").
 *
 * It is a model of the parts that matter, not the full simulator: page contents are version
 * numbers, the guest is a hot kernel area (per-cpu, slab, workqueue pages: never freed, never
 * hinted) plus 8-page "4 MiB" blocks that are in use, free, or held by the balloon driver; the
 * host has the dirty log, the migration bitmap, the free-page virtqueue and the device's
 * command-id state machine (facts §5.4, §5.6), and the Linux driver's rounds, DONE and shrinker
 * (facts §6.3-6.5). Actors interleave step by step in an order drawn from the seed.
 *
 * Faults (all off in `livemig` mode):
 *   a  shrinkerReuseInFlight  the shrinker hands back held blocks whose hint is still queued
 *                             (what Linux 6.1 really does: blocks sit on free_page_list from
 *                             the moment they are queued)
 *   b  lateHintAfterSync      the device applies a hint after the next sync merged the log
 *                             (command id / START status ignored: the BH popped it earlier)
 *   c  dirtyLogClear          'chunk-unmasked': a hint clears the dirty log of every clear_bmap
 *                             chunk covering it, every bit; 'chunk-masked': QEMU 7.2 with KVM
 *                             manual-protect — KVM_CLEAR_DIRTY_LOG only of the bits fetched at
 *                             the last sync (mem->dirty_bmap), and only if the chunk's
 *                             clear_bmap bit is still set (no page of the chunk sent since)
 *   d  doneDuringAlloc        DONE reaches the driver mid-round (at an intermediate sync), the
 *                             driver frees every held block, queued hints included
 *   e  tcgTlbStaleDirty       QEMU < 9.0 under TCG: the sync's fast path clears the migration
 *                             dirty bits without resetting the vCPU TLB's dirty state
 *                             (fixed by QEMU 03bfc2188f), so a write through a TLB entry that
 *                             was already dirty is not logged until the next TLB flush
 *
 * Pure: no node:*, timers or Math.random; everything comes from the seed.
 */
import { Bitmap } from '../../lib/bitmap.ts';
import { Prng } from '../../lib/prng.ts';

export interface StaleFaults {
  readonly shrinkerReuseInFlight: boolean;
  readonly lateHintAfterSync: boolean;
  readonly dirtyLogClear: 'none' | 'chunk-masked' | 'chunk-unmasked';
  readonly doneDuringAlloc: boolean;
  readonly tcgTlbStaleDirty: boolean;
  /** How the device gates hints: QEMU's START status, or livemig's (drain at BEFORE, drop stale ids). */
  readonly gate: 'qemu' | 'livemig';
  /** Dirty log: fetch-and-clear at sync (TCG, livemig) or KVM manual-protect (GET keeps bits, CLEAR per chunk). */
  readonly log: 'fetch-clear' | 'manual-protect';
}

/** Every fault off, livemig's gate and an exact log: livemig's hinting. */
export const LIVEMIG_FAULTS: StaleFaults = {
  shrinkerReuseInFlight: false,
  lateHintAfterSync: false,
  dirtyLogClear: 'none',
  doneDuringAlloc: false,
  tcgTlbStaleDirty: false,
  gate: 'livemig',
  log: 'fetch-clear',
};

/** Named modes. `qemu-7.2` is what 7.2 + a Linux 6.1 guest really do under KVM; `qemu-7.2-tcg` the lab's setup. */
export const STALE_MODES = {
  livemig: LIVEMIG_FAULTS,
  'qemu-7.2': { ...LIVEMIG_FAULTS, gate: 'qemu', log: 'manual-protect', dirtyLogClear: 'chunk-masked', shrinkerReuseInFlight: true },
  'qemu-7.2-tcg': { ...LIVEMIG_FAULTS, gate: 'qemu', log: 'fetch-clear', shrinkerReuseInFlight: true, tcgTlbStaleDirty: true },
  'race-a': { ...LIVEMIG_FAULTS, shrinkerReuseInFlight: true },
  'race-b': { ...LIVEMIG_FAULTS, lateHintAfterSync: true },
  'race-a+b': { ...LIVEMIG_FAULTS, shrinkerReuseInFlight: true, lateHintAfterSync: true },
  'race-c': { ...LIVEMIG_FAULTS, dirtyLogClear: 'chunk-unmasked' },
  'race-d': { ...LIVEMIG_FAULTS, doneDuringAlloc: true },
  'race-d+b': { ...LIVEMIG_FAULTS, doneDuringAlloc: true, lateHintAfterSync: true },
  'race-e': { ...LIVEMIG_FAULTS, tcgTlbStaleDirty: true },
} as const satisfies Record<string, StaleFaults>;
export type StaleMode = keyof typeof STALE_MODES;

export interface StaleWorldOptions {
  readonly hinting: boolean;
  /** Linux init_on_alloc=1: the driver's allocation zeroes each block (a long kernel stretch). */
  readonly initOnAlloc: boolean;
  /** When given, one line per event touching pages or blocks is appended (`<step> <event>`), for replays. */
  readonly trace?: string[];
}

export interface StaleResult {
  readonly stale: number;
  /** Stale pages in the kernel area (never freed, so never inside a hinted block). */
  readonly staleKernel: number;
  /** Stale pages inside a block that was hinted at some point. */
  readonly staleInHinted: number;
  /** Stale pages in blocks never hinted (user pages). */
  readonly staleOther: number;
  readonly syncs: number;
  readonly hintsApplied: number;
  /** Pages in use at switchover: every one of them is compared. */
  readonly compared: number;
}

const BLOCK = 8;
const KERNEL_PAGES = 32;
const HOT = 6;
const FREE = 0;
const USED = 1;
const HELD = 2;

type Entry = { kind: 'id'; id: number } | { kind: 'stop' } | { kind: 'hint'; id: number; block: number };

/** Runs one seed's world under `faults`. */
export function runStaleWorld(seed: number, faults: StaleFaults, opts: StaleWorldOptions): StaleResult {
  const rng = new Prng(seed ^ 0x57a1e);
  const pages = rng.pick([256, 384, 512]);
  const chunk = rng.pick([64, 128, 256]);
  const blocks = (pages - KERNEL_PAGES) / BLOCK;
  const src = new Uint32Array(pages);
  const dst = new Uint32Array(pages);
  const owner = new Uint8Array(pages);
  const log = new Bitmap(pages);
  const snapshot = new Bitmap(pages);
  const bitmap = new Bitmap(pages);
  const hinted = new Bitmap(pages);
  const clearBmap = new Uint8Array(Math.ceil(pages / chunk));
  const tlb = new Bitmap(pages);
  // Allocated but not written since (init_on_alloc=0): uninitialised, its content does not matter.
  const fresh = new Bitmap(pages);
  const inFlight = new Uint8Array(blocks);
  let version = 1;
  // Boot: kernel in use; blocks in use or free-but-written (alloc-then-free), some never touched.
  for (let p = 0; p < KERNEL_PAGES; p++) {
    owner[p] = USED;
    src[p] = version++;
  }
  const fill = 0.2 + 0.5 * rng.float();
  for (let b = 0; b < blocks; b++) {
    const used = rng.chance(fill);
    const written = used || rng.chance(0.7);
    for (let p = base(b); p < base(b) + BLOCK; p++) {
      owner[p] = used ? USED : FREE;
      if (written) src[p] = version++;
    }
  }
  const maxSyncs = rng.int(3, 6);
  const sendBurst = rng.int(1, 6);
  const hintDelay = rng.float();
  const zeroSteps = opts.initOnAlloc ? rng.int(3, 8) : 1;

  // Device state (facts §5.4).
  let cmdId = 0x80000000;
  let status: 'stop' | 'requested' | 'start' | 'done' = 'stop';
  const vq: Entry[] = [];
  // Driver state (facts §6.3).
  let received = 0; // 0 STOP, 1 DONE, else an id
  let active = 0;
  let roundOn = false;
  let zeroLeft = 0;
  let zeroBlock = -1;
  const held: number[] = [];
  let syncs = 0;
  let hintsApplied = 0;
  let cursor = 0;
  let sinceSync = 0;
  let step = 0;
  const trace = opts.trace;
  const note = (text: () => string): void => void trace?.push(`${step} ${text()}`);

  function base(b: number): number {
    return KERNEL_PAGES + b * BLOCK;
  }
  function logWrite(p: number): void {
    if (faults.tcgTlbStaleDirty) {
      if (tlb.test(p)) return; // dirty TLB entry: the store bypasses notdirty_write
      tlb.set(p);
    }
    log.set(p);
  }
  function write(p: number): void {
    note(() => `write p${p} v${version}${log.test(p) ? ' (log bit already set)' : ''}${tlb.test(p) && faults.tcgTlbStaleDirty ? ' (dirty TLB: not logged)' : ''}`);
    src[p] = version++;
    fresh.clear(p);
    logWrite(p);
  }
  function hotWrite(): void {
    write(rng.int(0, HOT - 1) * 5);
  }
  function chunkClear(c: number): void {
    // KVM_CLEAR_DIRTY_LOG of the bits fetched at the last GET, once per sync per chunk.
    if (clearBmap[c] === 0) return;
    note(() => `CLEAR_DIRTY_LOG chunk ${c} (pages ${c * chunk}-${Math.min(pages, (c + 1) * chunk) - 1})`);
    clearBmap[c] = 0;
    const end = Math.min(pages, (c + 1) * chunk);
    for (let p = c * chunk; p < end; p++) {
      if (snapshot.test(p)) {
        log.clear(p);
        snapshot.clear(p);
      }
    }
  }
  function applyHint(b: number): void {
    const start = base(b);
    const end = start + BLOCK;
    hintsApplied++;
    note(() => `hint applied block ${b} (pages ${start}-${end - 1}), status ${status}`);
    for (let p = start; p < end; p++) hinted.set(p);
    if (faults.dirtyLogClear === 'chunk-masked' && faults.log === 'manual-protect') {
      for (let c = Math.floor(start / chunk); c * chunk < end; c++) chunkClear(c);
    } else if (faults.dirtyLogClear === 'chunk-unmasked') {
      const c0 = Math.floor(start / chunk) * chunk;
      const c1 = Math.min(pages, Math.ceil(end / chunk) * chunk);
      log.clearRange(c0, c1);
    }
    bitmap.clearRange(start, end);
  }
  function devicePop(ignoreGate: boolean): void {
    const e = vq.shift();
    if (e === undefined) return;
    if (e.kind === 'id') {
      if (status === 'requested' && e.id === cmdId) status = 'start';
    } else if (e.kind === 'stop') {
      if (status === 'start') status = 'stop';
    } else {
      inFlight[e.block] = 0;
      note(() => `device pops hint block ${e.block} id ${e.id}, status ${status}`);
      const ok = faults.gate === 'livemig' ? status === 'start' && e.id === cmdId : status === 'start';
      if (ok || ignoreGate || faults.lateHintAfterSync) applyHint(e.block);
    }
  }
  function releaseBlock(b: number): void {
    note(() => `block ${b} freed${inFlight[b] === 1 ? ' (its hint still queued)' : ''}`);
    for (let p = base(b); p < base(b) + BLOCK; p++) owner[p] = FREE;
  }
  function releaseAll(includeInFlight: boolean): void {
    for (let i = held.length - 1; i >= 0; i--) {
      const b = held[i];
      if (!includeInFlight && inFlight[b] === 1) continue;
      releaseBlock(b);
      held.splice(i, 1);
    }
  }
  function sync(vmRunning: boolean): void {
    // BEFORE_BITMAP_SYNC: stop. livemig applies the current id's queued hints first.
    if (faults.gate === 'livemig') while (vq.length > 0 && status === 'start') devicePop(false);
    if (status !== 'stop') status = 'stop';
    // Merge the log.
    bitmap.orFrom(log);
    if (faults.log === 'manual-protect') {
      snapshot.clearAll();
      snapshot.orFrom(log);
      clearBmap.fill(1);
    } else {
      log.clearAll();
      // A correct TCG resets the TLB dirty state of the cleared pages; the 7.2 fast path does not.
      if (!faults.tcgTlbStaleDirty) tlb.clearAll();
    }
    syncs++;
    note(() => `sync ${syncs}${vmRunning ? '' : ' (VM stopped)'}`);
    sinceSync = 0;
    // AFTER_BITMAP_SYNC.
    if (!opts.hinting) return;
    if (vmRunning && !(faults.doneDuringAlloc && syncs > 1 && rng.chance(0.3))) {
      cmdId++;
      status = 'requested';
      received = cmdId;
    } else {
      status = 'done';
      received = 1;
    }
  }
  function sendPage(p: number): void {
    if (faults.log === 'manual-protect') chunkClear(Math.floor(p / chunk));
    if (bitmap.test(p)) {
      bitmap.clear(p);
      note(() => `send p${p} v${src[p]}`);
      dst[p] = src[p];
    }
  }

  bitmap.setAll();
  sync(true);
  for (; step < 20_000 && syncs < maxSyncs; step++) {
    const r = rng.float();
    if (r < 0.35) {
      // Guest (non-hinting work).
      const g = rng.float();
      if (!roundOn && rng.chance(0.3)) tlb.clearAll(); // context switch / idle: the vCPU's TLB is flushed
      if (g < 0.5) hotWrite();
      else if (g < 0.8) {
        const b = rng.int(0, blocks - 1);
        if (owner[base(b)] === USED) write(base(b) + rng.int(0, BLOCK - 1));
      } else if (g < 0.9) {
        const b = rng.int(0, blocks - 1);
        if (owner[base(b)] === FREE) {
          for (let p = base(b); p < base(b) + BLOCK; p++) {
            owner[p] = USED;
            if (opts.initOnAlloc) write(p);
            else fresh.set(p);
          }
          write(base(b) + rng.int(0, BLOCK - 1));
        }
      } else if (g < 0.95) {
        const b = rng.int(0, blocks - 1);
        if (owner[base(b)] === USED) releaseBlock(b);
      }
    } else if (r < 0.55) {
      // Balloon driver work item (a kernel stretch while a round runs).
      if (received === 1) {
        releaseAll(true);
        received = 0;
        roundOn = false;
      } else if (received > 1 && received !== active && !roundOn) {
        active = received;
        roundOn = true;
        vq.push({ kind: 'id', id: active });
      } else if (roundOn) {
        hotWrite(); // pcp lists, vmstat, the work item itself
        if (received !== active) {
          roundOn = false;
          vq.push({ kind: 'stop' });
        } else if (zeroBlock >= 0) {
          const b = zeroBlock;
          if (opts.initOnAlloc) for (let p = base(b) + (zeroLeft - 1) % BLOCK; p < base(b) + BLOCK; p += zeroSteps) write(p);
          if (--zeroLeft <= 0) {
            zeroBlock = -1;
            held.push(b);
            inFlight[b] = 1;
            vq.push({ kind: 'hint', id: active, block: b });
            note(() => `driver queues hint block ${b} id ${active}`);
          }
        } else {
          let b = -1;
          for (let i = 0; i < blocks; i++) if (owner[base(i)] === FREE) { b = i; break; }
          if (b < 0 || rng.chance(0.05)) {
            roundOn = false;
            vq.push({ kind: 'stop' });
          } else {
            for (let p = base(b); p < base(b) + BLOCK; p++) owner[p] = HELD;
            note(() => `driver takes block ${b}`);
            zeroBlock = b;
            zeroLeft = zeroSteps;
          }
        }
      }
    } else if (r < 0.55 + 0.2 * hintDelay) {
      devicePop(false);
    } else if (r < 0.97) {
      // Migration thread.
      sinceSync++;
      let sent = 0;
      for (let n = 0; n < pages && sent < sendBurst; n++) {
        const p = (cursor + n) % pages;
        if (bitmap.test(p)) {
          sendPage(p);
          sent++;
          cursor = (p + 1) % pages;
        }
      }
      if (sent === 0 || sinceSync > 200) sync(true);
    } else if (held.length > 0) {
      // Shrinker: one block back to the allocator.
      const i = rng.int(0, held.length - 1);
      const b = held[i];
      if (inFlight[b] === 0 || faults.shrinkerReuseInFlight) {
        held.splice(i, 1);
        releaseBlock(b);
      }
    }
  }
  // Completion: the VM stops, the final sync, the BH may still apply what it popped, send all.
  sync(false);
  if (faults.lateHintAfterSync) while (vq.length > 0) devicePop(true);
  for (let p = bitmap.nextSet(0); p >= 0 && p < pages; p = bitmap.nextSet(p + 1)) sendPage(p);
  let stale = 0;
  let staleKernel = 0;
  let staleInHinted = 0;
  let compared = 0;
  for (let p = 0; p < pages; p++) {
    if (owner[p] !== USED || fresh.test(p)) continue; // free, held or uninitialised: content does not matter
    compared++;
    if (dst[p] === src[p]) continue;
    note(() => `STALE p${p}: source v${src[p]}, destination v${dst[p]}`);
    stale++;
    if (p < KERNEL_PAGES) staleKernel++;
    else if (hinted.test(p)) staleInHinted++;
  }
  return { stale, staleKernel, staleInHinted, staleOther: stale - staleKernel - staleInHinted, syncs, hintsApplied, compared };
}
