/**
 * Workloads from plain specs (the shape the simulator config, the CLI and scenario files use),
 * and a mix that runs several side by side like programs on separate vCPUs.
 *
 * Memory ownership. A workload should write only memory the guest considers in use, or free
 * page hinting may legitimately hand its pages to the host and a correct migration would look
 * wrong. So, when the guest has a buddy allocator, the fixed-memory workloads (incrementer,
 * hot-set, random, idle background) take `sizeBytes` of memory from it, in the largest block
 * order that fits, or use `firstPage` (a range the caller vouches for: reserved, or no
 * hinting). Without an allocator they use [firstPage ?? 0, + sizeBytes), all of RAM by
 * default. Churn and alloc-then-free need the allocator.
 */
import type { Prng } from '../../lib/prng.ts';
import { MiB, TARGET_PAGE_SIZE } from '../../lib/units.ts';
import type { BuddyAllocator } from '../allocator/buddy.ts';
import { AllocThenFreeWorkload } from './alloc-then-free.ts';
import { ChurnWorkload } from './churn.ts';
import { IncrementerWorkload } from './incrementer.ts';
import { PageSet } from './page-set.ts';
import { RandomWriterWorkload } from './random-writer.ts';
import { NOT_STALLED, WorkloadConfigError } from './types.ts';
import type { PageWriteTarget, Workload, WorkloadStats } from './types.ts';

/** Where a fixed-memory workload writes. */
export interface RegionSpec {
  /** Bytes of memory (rounded up to pages); default all of RAM without an allocator. */
  readonly sizeBytes?: number;
  /** Use pages from here on instead of allocating. */
  readonly firstPage?: number;
  /** Bound on writes per step (see RateClock). */
  readonly stepWritesMax?: number;
}

export type WorkloadSpec =
  | (RegionSpec & { readonly kind: 'idle'; readonly backgroundBytesPerS?: number })
  | (RegionSpec & { readonly kind: 'incrementer'; readonly rateBytesPerS: number })
  | (RegionSpec & { readonly kind: 'hot-set'; readonly sizeBytes: number; readonly rateBytesPerS: number })
  | (RegionSpec & { readonly kind: 'random'; readonly rateBytesPerS: number })
  | {
      readonly kind: 'churn';
      readonly usedTargetBytes: number;
      readonly rateBytesPerS: number;
      readonly orderWeights?: readonly number[];
      readonly lifetimeMeanNs?: number;
      readonly liveBlocksMax?: number;
      readonly stepWritesMax?: number;
    }
  | {
      readonly kind: 'alloc-then-free';
      readonly rateBytesPerS: number;
      readonly fillFraction?: number;
      readonly order?: number;
      readonly holdNs?: number;
      readonly stepWritesMax?: number;
    }
  | { readonly kind: 'mix'; readonly parts: readonly WorkloadSpec[] };

export interface WorkloadContext {
  /** Guest RAM in pages. */
  readonly pageCount: number;
  /** The workload's random source (a mix forks one per part, in order). */
  readonly prng: Prng;
  /** The guest's page allocator, when the guest model has one. */
  readonly allocator?: BuddyAllocator;
}

/** An idle guest's background writes go to this much memory unless sizeBytes says otherwise. */
export const IDLE_BACKGROUND_SET_BYTES_DEFAULT = 1 * MiB;

export function createWorkload(spec: WorkloadSpec, ctx: WorkloadContext): Workload {
  switch (spec.kind) {
    case 'idle': {
      const rate = spec.backgroundBytesPerS ?? 0;
      const pages = rate > 0 ? resolvePages({ ...spec, sizeBytes: spec.sizeBytes ?? IDLE_BACKGROUND_SET_BYTES_DEFAULT }, ctx, 'idle') : PageSet.range(0, 0);
      return new RandomWriterWorkload({ kind: 'idle', pages, rateBytesPerS: rate, stepWritesMax: spec.stepWritesMax }, ctx.prng);
    }
    case 'incrementer':
      return new IncrementerWorkload({
        pages: resolvePages(spec, ctx, 'incrementer'),
        rateBytesPerS: spec.rateBytesPerS,
        stepWritesMax: spec.stepWritesMax,
      });
    case 'hot-set':
    case 'random':
      return new RandomWriterWorkload(
        { kind: spec.kind, pages: resolvePages(spec, ctx, spec.kind), rateBytesPerS: spec.rateBytesPerS, stepWritesMax: spec.stepWritesMax },
        ctx.prng,
      );
    case 'churn':
      return new ChurnWorkload({ ...spec, allocator: requireAllocator(ctx, 'churn') }, ctx.prng);
    case 'alloc-then-free':
      return new AllocThenFreeWorkload({ ...spec, allocator: requireAllocator(ctx, 'alloc-then-free') });
    case 'mix':
      return new MixWorkload(spec.parts.map((part) => createWorkload(part, { ...ctx, prng: ctx.prng.fork() })));
  }
}

/** The pages a fixed-memory workload writes (see the header). */
export function resolvePages(region: RegionSpec, ctx: WorkloadContext, kind: string): PageSet {
  const sizePages = region.sizeBytes === undefined ? undefined : Math.ceil(region.sizeBytes / TARGET_PAGE_SIZE);
  if (sizePages !== undefined && !(sizePages >= 0 && Number.isSafeInteger(sizePages))) throw new WorkloadConfigError(`${kind}: bad size ${region.sizeBytes}`);
  if (region.firstPage !== undefined || ctx.allocator === undefined) {
    const first = region.firstPage ?? 0;
    const count = sizePages ?? ctx.pageCount - first;
    if (!(first >= 0 && count >= 0 && first + count <= ctx.pageCount)) {
      throw new WorkloadConfigError(`${kind}: pages [${first}, ${first + count}) do not fit in ${ctx.pageCount} pages`);
    }
    return PageSet.range(first, count);
  }
  if (sizePages === undefined) throw new WorkloadConfigError(`${kind}: with a guest allocator, give sizeBytes (allocated) or firstPage`);
  return PageSet.allocate(ctx.allocator, sizePages, PageSet.orderFor(sizePages));
}

function requireAllocator(ctx: WorkloadContext, kind: string): BuddyAllocator {
  if (ctx.allocator === undefined) throw new WorkloadConfigError(`${kind} needs a guest allocator`);
  return ctx.allocator;
}

/** Several workloads stepped together; each keeps its own pace. */
export class MixWorkload implements Workload {
  readonly kind = 'mix' as const;
  /** The workloads, stepped in this order. */
  readonly parts: readonly Workload[];

  constructor(parts: readonly Workload[]) {
    this.parts = parts;
  }

  /** Steps every part; returns the first part's stall, if any. */
  step(nowNs: number, target: PageWriteTarget): number {
    let stalled = NOT_STALLED;
    for (const part of this.parts) {
      const page = part.step(nowNs, target);
      if (stalled === NOT_STALLED) stalled = page;
    }
    return stalled;
  }

  skipTo(nowNs: number): void {
    for (const part of this.parts) part.skipTo(nowNs);
  }

  /** Sums of the parts' counters; times span all parts. */
  stats(): WorkloadStats {
    let pageWrites = 0;
    let writesDropped = 0;
    let stalls = 0;
    let rateBytesPerS = 0;
    let writtenBytesPerS = 0;
    let firstStepNs = -1;
    let lastStepNs = -1;
    for (const part of this.parts) {
      const s = part.stats();
      pageWrites += s.pageWrites;
      writesDropped += s.writesDropped;
      stalls += s.stalls;
      rateBytesPerS += s.rateBytesPerS;
      writtenBytesPerS += s.writtenBytesPerS;
      if (s.firstStepNs >= 0 && (firstStepNs < 0 || s.firstStepNs < firstStepNs)) firstStepNs = s.firstStepNs;
      lastStepNs = Math.max(lastStepNs, s.lastStepNs);
    }
    return { kind: this.kind, pageWrites, writesDropped, stalls, rateBytesPerS, writtenBytesPerS, firstStepNs, lastStepNs };
  }
}

export { NOT_STALLED, WorkloadConfigError, WorkloadOutOfMemoryError } from './types.ts';
export type { PageWriteTarget, Workload, WorkloadKind, WorkloadStats } from './types.ts';
export { PageSet } from './page-set.ts';
export { IncrementerWorkload } from './incrementer.ts';
export { RandomWriterWorkload } from './random-writer.ts';
export { ChurnWorkload } from './churn.ts';
export { AllocThenFreeWorkload } from './alloc-then-free.ts';
export type { AllocThenFreePhase } from './alloc-then-free.ts';
export { ArrayPageTarget } from './array-target.ts';
export { GuestMemoryTarget } from './memory-target.ts';
