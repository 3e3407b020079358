/**
 * From scenario text to a typed, checked `Scenario`: parse YAML, apply `--set` overrides
 * (dotted paths into the document, values parsed as YAML scalars), validate with the zod
 * schema, then resolve the QMP parts with the core's own rules: capabilities through
 * `applyCapabilities` (QEMU's compatibility texts) and parameters through
 * `migrateSetParameters` (QEMU's visitor and range texts). Every problem becomes one line of a
 * ScenarioError, prefixed with the path of the field it concerns.
 *
 * Pure: the caller reads the file. What it deliberately doesn't do: run anything, or choose
 * defaults that depend on the seed.
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { applyCapabilities, defaultCapabilities, isMigrationCapability, type MigrationCapabilities } from '../../core/capabilities.ts';
import { DEFAULT_PARAMETERS, PARAMETER_FIELDS, type MigrationParameters } from '../../core/params.ts';
import { migrateSetParameters } from '../../core/params-schema.ts';
import type { FreePageHintPostcopyPolicy } from '../../devices/balloon/postcopy-policy.ts';
import type { HintPacing } from '../../guest/drivers/free-page-hint-worker.ts';
import { GUEST_VRING_WINDOW_BYTES_DEFAULT } from '../../guest/guest.ts';
import type { WorkloadSpec } from '../../guest/workloads/index.ts';
import { GiB, MiB, TARGET_PAGE_SIZE } from '../../lib/units.ts';
import type { LinkDirectionConfig } from '../link.ts';
import { parseDurationValue, parseRateValue, parseSizeValue } from './quantities.ts';
import { scenarioDocumentSchema, type FAULT_BEHAVIOURS, type ScenarioDocument, type STALE_RACE_FAULTS, type WorkloadDocument } from './schema.ts';

/** A stale-page race a scenario can switch on (issue [10]). */
export type StaleRaceFault = (typeof STALE_RACE_FAULTS)[number];
/** Whose rules the host side follows when faults are injected. */
export type FaultBehaviour = (typeof FAULT_BEHAVIOURS)[number];

/** Guests up to this size use real bytes under `backing: auto`; larger ones are compact. */
export const AUTO_BYTES_BACKING_MAX_BYTES = 1 * GiB;

/** When the source is told `migrate-start-postcopy`. */
export type PostcopySwitchRule =
  | { readonly kind: 'none' }
  /** Once the source has done this many dirty bitmap syncs. */
  | { readonly kind: 'after-syncs'; readonly syncCount: number }
  /** At this time after `migrate`. */
  | { readonly kind: 'at'; readonly afterStartNs: number };

/**
 * A memory-hungry phase: the guest allocates `sizeBytes` in single pages and touches them at
 * `rateBytesPerS`, reclaiming (the hint shrinker) when it runs short, and keeps them (for
 * `holdNs`, then frees them all at once, when given).
 */
export interface PressureRule {
  readonly sizeBytes: number;
  readonly rateBytesPerS: number;
  /** Time the memory is kept once touched, then freed at once; null: kept to the end. */
  readonly holdNs: number | null;
  readonly start:
    /** This long after the guest starts on the destination. */
    | { readonly kind: 'after-resume'; readonly delayNs: number }
    /** At this time after `migrate`. */
    | { readonly kind: 'at'; readonly afterStartNs: number };
}

/** A scenario ready to run: every quantity in the unit its name ends with. */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Seed of the run (the CLI's --seed overrides the file's). */
  readonly seed: number;
  /** Virtual time after which a running migration is cancelled. */
  readonly timeLimitNs: number;
  /** Virtual time the destination guest keeps running after the migration ends. */
  readonly settleNs: number;
  readonly guest: {
    /** Boot RAM, bytes (virtio-mem memory comes on top). */
    readonly memoryBytes: number;
    /** Page store of both sides. */
    readonly backing: 'bytes' | 'compact';
    /** The guest's vCPU runs its workload every tickNs of virtual time. */
    readonly tickNs: number;
    /** Boot RAM the guest kernel keeps for itself (never free, never hinted). */
    readonly reservedBytes: number;
    /** Bytes of reserved memory holding data at boot (non-zero pages from page 0). */
    readonly kernelDataBytes: number;
    /**
     * Where the boot data lies: 'low' (within reserved, from page 0) or 'spread' (besides
     * reserved, its whole 4 MiB blocks spread evenly over the free blocks in the lower
     * kernelDataSpan of boot RAM; the rest within reserved, from page 0).
     */
    readonly kernelDataLayout: 'low' | 'spread';
    /** With 'spread': the share of boot RAM, from the bottom, the blocks are spread over. */
    readonly kernelDataSpan: number;
    /** With 'spread': bytes of the boot data that lie low (within reserved, from page 0) all the same. */
    readonly kernelDataLowBytes: number;
    /** Memory the kernel keeps at the top of boot RAM, all holding data (e.g. struct pages). */
    readonly reservedTopBytes: number;
    /** Free memory in blocks below 4 MiB, lowest first above reserved (not hintable). */
    readonly fragmentedBytes: number;
    /** Of the fragmented memory, bytes no allocation reaches (they stay zero), spread over its blocks. */
    readonly fragmentedZeroBytes: number;
    /** Linux's init_on_alloc: blocks the hint driver allocates are zeroed (guest writes). */
    readonly initOnAlloc: boolean;
  };
  /** What the guest runs (guest/workloads spec). */
  readonly workload: WorkloadSpec;
  /** The workload as written, for reports. */
  readonly workloadKind: string;
  readonly balloon: {
    readonly freePageHint: boolean;
    readonly postcopyPolicy: FreePageHintPostcopyPolicy;
    /** Hint blocks the guest driver reports per guest step (its round's increment). */
    readonly hintBatch: number;
    /** Delay from a driver kick to the host processing the queue; 0: inside the kick. */
    readonly kickDelayNs: number;
    /** The driver's time per hint block (replaces hintBatch), or null. */
    readonly hintPacing: HintPacing | null;
    /** When the source applies a hint: at once, or between iterations (hint-gate.ts). */
    readonly hintApply: 'immediate' | 'between-iterations';
  } | null;
  readonly virtioMem: {
    readonly regionBytes: number;
    readonly pluggedBytes: number;
    readonly blockBytes: number;
  } | null;
  readonly link: {
    readonly stream: LinkDirectionConfig;
    readonly returnPath: LinkDirectionConfig;
  };
  readonly capabilities: MigrationCapabilities;
  readonly parameters: MigrationParameters;
  /** Time of `migrate` after the guest boots. */
  readonly migrationStartNs: number;
  /**
   * From the source deciding to stop the guest (completion, postcopy switch) to the guest
   * stopping; the guest, and the balloon's iothread, keep running meanwhile.
   */
  readonly stopLatencyNs: number;
  readonly postcopySwitch: PostcopySwitchRule;
  /** A memory-hungry phase of the guest, or null. */
  readonly pressure: PressureRule | null;
  /**
   * The host (host-cpu.ts): cores shared by the migration and a hinting vCPU, rescan and
   * switchover costs; the most pages one precopy iteration examines (null: the engine's default);
   * the stall of the destination's first write into each 2 MiB region of its RAM (dest-faults.ts).
   */
  readonly host: {
    readonly cores: number; readonly rescanCostNsPerPage: number | null; readonly switchoverNs: number; readonly iterationPagesMax: number | null;
    readonly iterationNsMin: number | null; readonly destinationFaultNs: number; readonly advisedDeviceLoadNs: number;
  } | null;
  /** Stale-page races switched on (src/sim/stale-faults.ts), or null. */
  readonly faults: { readonly behaveAs: FaultBehaviour; readonly staleRaces: readonly StaleRaceFault[] } | null;
  /** The final source status the scenario expects. */
  readonly expectedStatus: 'completed' | 'cancelled' | 'failed';
}

/** A scenario that cannot be run; `problems` has one "path: text" line per problem. */
export class ScenarioError extends Error {
  override name = 'ScenarioError';
  constructor(readonly problems: readonly string[]) {
    super(`Invalid scenario:\n  ${problems.join('\n  ')}`);
  }
}

/** One `--set key=value` override. */
export interface ScenarioOverride {
  /** Dotted path into the document, e.g. `devices.balloon.free-page-hint`. */
  readonly path: string;
  /** The value's text, parsed as a YAML scalar (false, 2, 400M, "x"). */
  readonly valueText: string;
}

/** Splits `key=value` (the first '=' separates); null when there is none or the key is empty. */
export function parseOverride(text: string): ScenarioOverride | null {
  const at = text.indexOf('=');
  if (at <= 0) return null;
  return { path: text.slice(0, at).trim(), valueText: text.slice(at + 1) };
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Sets `override.path` in `doc` (creating missing objects on the way). Throws ScenarioError
 * when the path goes through something that is not an object.
 */
export function applyOverride(doc: Json, override: ScenarioOverride): void {
  const keys = override.path.split('.');
  if (keys.some((k) => k.length === 0)) throw new ScenarioError([`--set ${override.path}: empty path segment`]);
  let value: unknown;
  try {
    value = parseYaml(override.valueText);
  } catch (error) {
    throw new ScenarioError([`--set ${override.path}: cannot parse value '${override.valueText}' (${(error as Error).message})`]);
  }
  let node: Json = doc;
  for (let i = 0; i < keys.length - 1; i++) {
    const next = node[keys[i]];
    if (next === undefined || next === null) node[keys[i]] = {};
    else if (!isObject(next)) throw new ScenarioError([`--set ${override.path}: '${keys.slice(0, i + 1).join('.')}' is not an object`]);
    node = node[keys[i]] as Json;
  }
  node[keys[keys.length - 1]] = value;
}

/** Parses scenario YAML, applies overrides and resolves it; throws ScenarioError. */
export function loadScenario(text: string, overrides: readonly ScenarioOverride[] = []): Scenario {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    if (error instanceof YAMLParseError) throw new ScenarioError([`YAML: ${error.message}`]);
    throw error;
  }
  if (raw === null || raw === undefined) raw = {};
  if (!isObject(raw)) throw new ScenarioError(['the document must be a mapping']);
  for (const override of overrides) applyOverride(raw, override);
  const parsed = scenarioDocumentSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ScenarioError(parsed.error.issues.map((issue) => `${issue.path.join('.') || '(document)'}: ${issue.message}`));
  }
  return resolveScenario(parsed.data);
}

/** Builds the typed scenario from a validated document; throws ScenarioError. */
export function resolveScenario(doc: ScenarioDocument): Scenario {
  const problems: string[] = [];
  const capabilities = resolveCapabilities(doc.capabilities, problems);
  const parameters = resolveParameters(doc.parameters, problems);
  const memoryBytes = doc.guest.memory;
  if (memoryBytes <= 0 || memoryBytes % TARGET_PAGE_SIZE !== 0) problems.push(`guest.memory: ${memoryBytes} is not a positive multiple of 4096`);
  if (doc.guest.reserved >= memoryBytes) problems.push('guest.reserved: must be smaller than guest.memory');
  if (doc.guest.tick <= 0) problems.push('guest.tick: must be > 0');
  const spreadBytes = doc.guest['kernel-data-layout'] === 'spread' ? spreadKernelDataBytes(doc.guest['kernel-data'], doc.guest['kernel-data-low']) : 0;
  const lowKernelDataBytes = doc.guest['kernel-data'] - spreadBytes;
  if (lowKernelDataBytes > doc.guest.reserved - GUEST_VRING_WINDOW_BYTES_DEFAULT) problems.push('guest.kernel-data: must leave the last MiB of guest.reserved (the rings) free');
  if (doc.guest['reserved-top'] % TARGET_PAGE_SIZE !== 0 || doc.guest['reserved-top'] + doc.guest.reserved >= memoryBytes) {
    problems.push('guest.reserved-top: must be a multiple of 4096 and leave memory for the allocator');
  }
  const vmem = doc.devices['virtio-mem'];
  if (vmem !== undefined) {
    if (vmem.plugged > vmem.size) problems.push('devices.virtio-mem.plugged: larger than size');
    if (vmem.size % vmem['block-size'] !== 0 || vmem.plugged % vmem['block-size'] !== 0) {
      problems.push('devices.virtio-mem: size and plugged must be multiples of block-size');
    }
    if (memoryBytes % vmem['block-size'] !== 0) problems.push('devices.virtio-mem: guest.memory must be a multiple of block-size (the region follows it)');
  }
  const postcopySwitch: PostcopySwitchRule = doc.switch.postcopy === null
    ? { kind: 'none' }
    : 'after-syncs' in doc.switch.postcopy
      ? { kind: 'after-syncs', syncCount: doc.switch.postcopy['after-syncs'] }
      : { kind: 'at', afterStartNs: doc.switch.postcopy.at };
  if (postcopySwitch.kind !== 'none' && !capabilities['postcopy-ram']) {
    problems.push('switch.postcopy: needs capabilities.postcopy-ram: true');
  }
  if (doc.link.bandwidth <= 0) problems.push('link.bandwidth: must be > 0');
  // The gate holds hints for the engine's iterations; without them it would hold nothing.
  if (doc.devices.balloon?.['hint-apply'] === 'between-iterations' && doc.host?.iteration === undefined) {
    problems.push('devices.balloon.hint-apply: between-iterations needs host.iteration (the iterations that hold the hints)');
  }
  if (doc.pressure !== null && !(doc.pressure.size > 0 && doc.pressure.size <= memoryBytes - doc.guest.reserved)) {
    problems.push('pressure.size: must be > 0 and fit in the guest memory outside guest.reserved');
  }
  if (doc.pressure !== null && doc.pressure.rate <= 0) problems.push('pressure.rate: must be > 0');
  if (problems.length > 0) throw new ScenarioError(problems);
  const backing = doc.guest.backing === 'auto' ? (memoryBytes <= AUTO_BYTES_BACKING_MAX_BYTES ? 'bytes' : 'compact') : doc.guest.backing;
  const stream: LinkDirectionConfig = {
    bandwidthBytesPerSec: doc.link.bandwidth,
    latencyNs: doc.link.latency,
    perMessageOverheadBytes: doc.link.overhead,
    scanCostNsPerPage: doc.link['scan-cost'],
  };
  const back = doc.link['return-path'];
  return {
    name: doc.name,
    description: doc.description,
    seed: doc.seed,
    timeLimitNs: doc['time-limit'],
    settleNs: doc.settle,
    guest: {
      memoryBytes,
      backing,
      tickNs: doc.guest.tick,
      reservedBytes: doc.guest.reserved,
      kernelDataBytes: doc.guest['kernel-data'],
      kernelDataLayout: doc.guest['kernel-data-layout'],
      kernelDataSpan: doc.guest['kernel-data-span'],
      kernelDataLowBytes: doc.guest['kernel-data-low'],
      reservedTopBytes: doc.guest['reserved-top'],
      fragmentedBytes: doc.guest.fragmented,
      fragmentedZeroBytes: doc.guest['fragmented-zero'],
      initOnAlloc: doc.guest['init-on-alloc'],
    },
    workload: toWorkloadSpec(doc.workload, memoryBytes),
    workloadKind: doc.workload.kind,
    balloon: doc.devices.balloon === undefined
      ? null
      : {
          freePageHint: doc.devices.balloon['free-page-hint'],
          postcopyPolicy: doc.devices.balloon['free-page-hint-postcopy'],
          hintBatch: doc.devices.balloon['hint-batch'],
          kickDelayNs: doc.devices.balloon['kick-delay'],
          hintPacing: hintPacingOf(doc.devices.balloon['hint-pace']),
          hintApply: doc.devices.balloon['hint-apply'],
        },
    virtioMem: vmem === undefined ? null : { regionBytes: vmem.size, pluggedBytes: vmem.plugged, blockBytes: vmem['block-size'] },
    link: {
      stream,
      returnPath: {
        bandwidthBytesPerSec: back?.bandwidth ?? stream.bandwidthBytesPerSec,
        latencyNs: back?.latency ?? stream.latencyNs,
        perMessageOverheadBytes: stream.perMessageOverheadBytes,
      },
    },
    capabilities,
    parameters,
    migrationStartNs: doc.migration.start,
    stopLatencyNs: doc.migration['stop-latency'],
    postcopySwitch,
    pressure: pressureOf(doc.pressure),
    host: doc.host === null ? null : {
      cores: doc.host.cores,
      rescanCostNsPerPage: doc.host['rescan-cost'] ?? null,
      switchoverNs: doc.host.switchover,
      iterationPagesMax: doc.host['iteration-pages'] ?? null,
      iterationNsMin: doc.host.iteration ?? null,
      destinationFaultNs: doc.host['destination-fault'],
      advisedDeviceLoadNs: doc.host['advised-device-load'],
    },
    faults: doc.faults === null ? null : { behaveAs: doc.faults['behave-as'], staleRaces: [...new Set(doc.faults['stale-races'])] },
    expectedStatus: doc.expect.status,
  };
}

function pressureOf(p: ScenarioDocument['pressure']): PressureRule | null {
  if (p === null) return null;
  const start = 'after-resume' in p.start
    ? { kind: 'after-resume' as const, delayNs: p.start['after-resume'] }
    : { kind: 'at' as const, afterStartNs: p.start.at };
  return { sizeBytes: p.size, rateBytesPerS: p.rate, holdNs: p.hold, start };
}

function hintPacingOf(pace: { block: number; 'zero-touched-page': number; 'zero-fresh-page': number } | undefined): HintPacing | null {
  if (pace === undefined) return null;
  return { blockNs: pace.block, zeroTouchedPageNs: pace['zero-touched-page'], zeroFreshPageNs: pace['zero-fresh-page'] };
}

/** The guest workload spec of a document workload (kernel-build: churn over 60% of RAM). */
export function toWorkloadSpec(w: WorkloadDocument, memoryBytes: number): WorkloadSpec {
  switch (w.kind) {
    case 'idle':
      return { kind: 'idle', backgroundBytesPerS: w['background-rate'], sizeBytes: w.size };
    case 'incrementer':
      return { kind: 'incrementer', rateBytesPerS: w.rate, sizeBytes: w.size };
    case 'hot-set':
      return { kind: 'hot-set', sizeBytes: w.size, rateBytesPerS: w.rate };
    case 'random':
      return { kind: 'random', rateBytesPerS: w.rate, sizeBytes: w.size };
    case 'churn':
    case 'kernel-build':
      return {
        kind: 'churn',
        rateBytesPerS: w.rate,
        usedTargetBytes: w.used ?? Math.floor(memoryBytes * 0.6),
        lifetimeMeanNs: w.lifetime,
      };
    case 'alloc-then-free':
      return { kind: 'alloc-then-free', rateBytesPerS: w.rate, fillFraction: w.fill, holdNs: w.hold, order: w.order };
  }
}

function resolveCapabilities(requested: Readonly<Record<string, boolean>>, problems: string[]): MigrationCapabilities {
  const list = [];
  for (const [capability, state] of Object.entries(requested)) {
    if (!isMigrationCapability(capability)) {
      problems.push(`capabilities.${capability}: Parameter 'capability' does not accept value '${capability}'`);
      continue;
    }
    list.push({ capability, state });
  }
  const applied = applyCapabilities(defaultCapabilities(), list);
  if (!applied.ok) {
    problems.push(`capabilities: ${applied.error.desc}`);
    return defaultCapabilities();
  }
  return applied.value;
}

/**
 * Of `kernel-data-layout: spread`'s boot data, the bytes spread through RAM: the whole 4 MiB
 * blocks of what is not kept low (`lowBytes`; the rest lies low in reserved, as with `low`).
 */
export function spreadKernelDataBytes(kernelDataBytes: number, lowBytes = 0): number {
  const blockBytes = 4 * MiB;
  return Math.floor(Math.max(0, kernelDataBytes - lowBytes) / blockBytes) * blockBytes;
}

/** Rate-like parameters accept "400MiB/s"; downtime-limit accepts "300ms". */
function resolveParameters(requested: Readonly<Record<string, unknown>>, problems: string[]): MigrationParameters {
  const args: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(requested)) {
    const field = PARAMETER_FIELDS.find((f) => f.qmp === name);
    let converted: unknown = value;
    if (field !== undefined && typeof value === 'string') {
      if (name === 'max-bandwidth' || name === 'max-postcopy-bandwidth') converted = parseRateValue(value) ?? value;
      else if (name === 'downtime-limit') converted = value.match(/[a-z]\s*$/i) ? millis(parseDurationValue(value)) ?? value : value;
      else if (field.kind === 'size') converted = parseSizeValue(value) ?? value;
    }
    args[name] = converted;
  }
  const result = migrateSetParameters(DEFAULT_PARAMETERS, args);
  if (!result.ok) {
    problems.push(`parameters: ${result.error.desc}`);
    return DEFAULT_PARAMETERS;
  }
  return result.value;
}

function millis(ns: number | null): number | null {
  return ns === null ? null : Math.round(ns / 1e6);
}
