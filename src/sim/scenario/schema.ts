/**
 * The zod schema of a scenario file: the YAML document `livemig sim` runs (docs/scenarios.md
 * documents every field). The schema checks shapes and units and turns human quantities into
 * numbers with units in their names; `scenario.ts` then resolves the QMP parts (capabilities,
 * parameters) with the core's own checks and builds the typed `Scenario`.
 *
 * Keys are kebab-case like QMP's. Every object is strict: an unknown key is an error, so a
 * typo in `--set` is reported instead of silently ignored.
 *
 * What it deliberately doesn't do: read files or apply `--set` (scenario.ts), or validate the
 * migration parameters' ranges (the core's migrate-set-parameters check does, with QEMU's texts).
 */
import { z } from 'zod';
import { FREE_PAGE_HINT_POSTCOPY_POLICIES } from '../../devices/balloon/postcopy-policy.ts';
import { parseDurationValue, parseRateValue, parseSizeValue } from './quantities.ts';

function quantity(kind: string, parse: (value: unknown) => number | null) {
  return z.union([z.number(), z.string()]).transform((value, ctx): number => {
    const parsed = parse(value);
    if (parsed === null) {
      ctx.addIssue({ code: 'custom', message: `'${String(value)}' is not a ${kind}` });
      return z.NEVER;
    }
    return parsed;
  });
}

/** Bytes: 4096, "99M", "8GiB". */
export const sizeSchema = quantity('size (bytes, or a number with K/M/G/T)', parseSizeValue);
/** Bytes per second: 1e9, "400M/s", "400MiB/s", "10Gbit/s". */
export const rateSchema = quantity('rate (bytes/s, "400MiB/s" or "10Gbit/s")', parseRateValue);
/** Integer nanoseconds: "1.5s", "300ms", "50us", "100ns"; a bare number is milliseconds. */
export const durationSchema = quantity('duration ("300ms", "1.5s", "50us"; a number is ms)', parseDurationValue);

const fraction = z.number().gt(0).lte(1);

/** The workloads of guest/workloads, with scenario spellings. */
export const workloadSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('idle'), 'background-rate': rateSchema.optional(), size: sizeSchema.optional() }),
  z.strictObject({ kind: z.literal('incrementer'), rate: rateSchema, size: sizeSchema }),
  z.strictObject({ kind: z.literal('hot-set'), size: sizeSchema, rate: rateSchema }),
  z.strictObject({ kind: z.literal('random'), rate: rateSchema, size: sizeSchema }),
  z.strictObject({
    kind: z.enum(['churn', 'kernel-build']),
    rate: rateSchema,
    used: sizeSchema.optional(),
    lifetime: durationSchema.optional(),
  }),
  z.strictObject({
    kind: z.literal('alloc-then-free'),
    rate: rateSchema,
    fill: fraction.optional(),
    hold: durationSchema.optional(),
    order: z.number().int().min(0).max(10).optional(),
  }),
]);

const balloonSchema = z.strictObject({
  'free-page-hint': z.boolean().default(false),
  'free-page-hint-postcopy': z.enum(FREE_PAGE_HINT_POSTCOPY_POLICIES).default('refuse'),
  'hint-batch': z.number().int().min(1).max(4096).default(32),
  'kick-delay': durationSchema.default(0),
  // Fidelity (src/sim/hint-gate.ts): when the source applies a hint: at once, or, as QEMU 7.2
  // under its bitmap_mutex, only between migration iterations (those of host.iteration).
  'hint-apply': z.enum(['immediate', 'between-iterations']).default('immediate'),
  // Fidelity (src/sim/calibration.ts): the guest driver's time per hint block; absent: hint-batch.
  'hint-pace': z
    .strictObject({ block: durationSchema, 'zero-touched-page': durationSchema.default(0), 'zero-fresh-page': durationSchema.default(0) })
    .optional(),
});

const virtioMemSchema = z.strictObject({
  size: sizeSchema,
  plugged: sizeSchema.default(0),
  'block-size': sizeSchema.default(2 * 1024 * 1024),
});

const directionSchema = z.strictObject({
  bandwidth: rateSchema.optional(),
  latency: durationSchema.optional(),
});

const linkSchema = z.strictObject({
  bandwidth: rateSchema.default(1_250_000_000),
  latency: durationSchema.default(50_000),
  'scan-cost': durationSchema.default(0),
  overhead: sizeSchema.default(0),
  'return-path': directionSchema.optional(),
});

const pressureSchema = z.strictObject({
  size: sizeSchema,
  rate: rateSchema.default(1024 * 1024 * 1024),
  hold: durationSchema.nullable().default(null),
  start: z.union([z.strictObject({ 'after-resume': durationSchema }), z.strictObject({ at: durationSchema })]),
});

const postcopySwitchSchema = z.union([
  z.strictObject({ 'after-syncs': z.number().int().min(1) }),
  z.strictObject({ at: durationSchema }),
]);

/** The stale-page races of issue [10] (src/sim/stale-faults.ts switches them on). */
export const STALE_RACE_FAULTS = ['shrinker-reuse', 'late-hint', 'wide-clear', 'done-during-alloc', 'tcg-dirty'] as const;
/** Whose rules the host side follows under injected faults: QEMU 7.2's, or livemig's guards. */
export const FAULT_BEHAVIOURS = ['qemu-7.2', 'livemig'] as const;

const faultsSchema = z.strictObject({
  'behave-as': z.enum(FAULT_BEHAVIOURS),
  'stale-races': z.array(z.enum(STALE_RACE_FAULTS)).default([]),
});

/** The whole document. Defaults are filled in here so `Scenario` never has holes. */
export const scenarioDocumentSchema = z.strictObject({
  name: z.string().min(1).default('unnamed'),
  description: z.string().default(''),
  seed: z.number().int().min(0).max(0xffffffff).default(1),
  'time-limit': durationSchema.default(60_000_000_000),
  settle: durationSchema.default(500_000_000),
  guest: z.strictObject({
    memory: sizeSchema,
    backing: z.enum(['auto', 'bytes', 'compact']).default('auto'),
    tick: durationSchema.default(1_000_000),
    reserved: sizeSchema.default(16 * 1024 * 1024),
    // Fidelity (src/sim/calibration.ts): reserved memory the kernel wrote at boot (non-zero
    // pages from page 0, around the rings), and Linux's init_on_alloc (hint blocks are zeroed).
    'kernel-data': sizeSchema.default(0),
    // Where that data lies: `low` (from page 0 of reserved) or `spread` (whole 4 MiB blocks
    // spread evenly through free memory, besides reserved: Linux after physical KASLR).
    'kernel-data-layout': z.enum(['low', 'spread']).default('low'),
    // With `spread`: the share of boot RAM, from the bottom, that the blocks are spread over.
    'kernel-data-span': z.number().gt(0).max(1).default(1),
    // With `spread`: bytes of the boot data that stay low (in reserved, from page 0) all the
    // same: what the buddy allocator handed out bottom-up at boot.
    'kernel-data-low': sizeSchema.default(0),
    // Memory the kernel keeps at the top of boot RAM (memblock's top-down allocations, such as
    // the struct page array), all holding data.
    'reserved-top': sizeSchema.default(0),
    // Free memory in blocks smaller than 4 MiB (one kernel page pinned per 4 MiB block), lowest
    // first above reserved: the allocator can use it, the hint driver cannot take it.
    fragmented: sizeSchema.default(0),
    // Of that memory, bytes the guest's movable allocations never reach either (ZONE_DMA, the
    // free rest of unmovable pageblocks): taken out of the allocator, so they stay zero.
    'fragmented-zero': sizeSchema.default(0),
    'init-on-alloc': z.boolean().default(false),
  }),
  workload: workloadSchema.prefault({ kind: 'idle' }),
  devices: z
    .strictObject({
      balloon: balloonSchema.optional(),
      'virtio-mem': virtioMemSchema.optional(),
    })
    .prefault({}),
  link: linkSchema.prefault({}),
  capabilities: z.record(z.string(), z.boolean()).default({}),
  parameters: z.record(z.string(), z.unknown()).default({}),
  migration: z.strictObject({ start: durationSchema.default(0), 'stop-latency': durationSchema.default(0) }).prefault({}),
  switch: z.strictObject({ postcopy: postcopySwitchSchema.nullable().default(null) }).prefault({}),
  pressure: pressureSchema.nullable().default(null),
  // Fidelity (src/sim/host-cpu.ts): the host's cores, shared by the migration threads and a
  // hinting vCPU; the scan cost of pages the guest wrote again; the switchover's fixed cost;
  // the most pages one precopy iteration examines (the engine's maxChunkPages), or with
  // `iteration` the shortest iteration (QEMU's 51 ms; iteration-pages then sets the pumps'
  // chunks, the precision of its end: the engine's iterationNsMin); what the
  // destination's first write into a 2 MiB region of its RAM costs (src/sim/dest-faults.ts).
  host: z
    .strictObject({
      cores: z.number().positive().default(Number.POSITIVE_INFINITY),
      'rescan-cost': durationSchema.optional(),
      switchover: durationSchema.default(0),
      'iteration-pages': z.number().int().positive().optional(),
      iteration: durationSchema.optional(),
      'destination-fault': durationSchema.default(0),
      // The destination's extra time to load the device state at a precopy completion when
      // postcopy-ram was advised (QEMU 7.2's lab trace: the virtio-balloon section), before it
      // runs the guest and sends SHUT; 0 without postcopy-ram.
      'advised-device-load': durationSchema.default(0),
    })
    .nullable()
    .default(null),
  // Issue [10]: stale-page races switched on as faults of the guest, device and dirty log.
  faults: faultsSchema.nullable().default(null),
  expect: z.strictObject({ status: z.enum(['completed', 'cancelled', 'failed']).default('completed') }).prefault({}),
});

/** A scenario document after the schema: quantities are numbers (bytes, bytes/s, ns). */
export type ScenarioDocument = z.output<typeof scenarioDocumentSchema>;
export type WorkloadDocument = z.output<typeof workloadSchema>;
