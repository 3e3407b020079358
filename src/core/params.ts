/**
 * Migration parameters of QEMU 7.2 in two forms:
 * - `MigrationParameters`, the typed plain object used inside the core (camelCase, unit last:
 *   maxBandwidthBytesPerSec, downtimeLimitMs, ...);
 * - `MigrationParametersQmp`, the `query-migrate-parameters` reply (QMP names, every member
 *   present except an unset `block-bitmap-mapping`).
 * Conversions both ways, the defaults of a fresh 7.2, and `applySetParameters`, which is QEMU's
 * "apply to a copy, check the copy, then commit" with migrate_params_check's texts and order.
 * Parsing the JSON arguments of `migrate-set-parameters` is in params-schema.ts.
 *
 * Integers of the set form are bigints: QEMU accepts negative numbers for uint64/size members
 * and wraps them (max-bandwidth=-1 reads back as 18446744073709551615), and the checks must see
 * the exact wrapped value. The stored form uses numbers; values above 2^53 (reachable only by
 * such wrapping) are kept approximately, which is harmless for limits that large.
 *
 * What it deliberately doesn't do: validate block-bitmap-mapping aliases (dirty-bitmap migration
 * is out of scope; the list is stored as given), resize an xbzrle cache, or retune a live rate
 * limiter (the caller reacts to changed values).
 */
import type { ParamResult } from './param-errors.ts';
import { ParamError } from './param-errors.ts';

/** Values of `multifd-compression`. */
export const MULTIFD_COMPRESSIONS = ['none', 'zlib', 'zstd'] as const;
export type MultifdCompression = (typeof MULTIFD_COMPRESSIONS)[number];

/** One bitmap alias of `block-bitmap-mapping` (QAPI BitmapMigrationBitmapAlias). */
export interface BitmapMigrationBitmapAlias {
  readonly name: string;
  readonly alias: string;
  readonly transform?: { readonly persistent?: boolean };
}

/** One node alias of `block-bitmap-mapping` (QAPI BitmapMigrationNodeAlias). */
export interface BitmapMigrationNodeAlias {
  readonly 'node-name': string;
  readonly alias: string;
  readonly bitmaps: readonly BitmapMigrationBitmapAlias[];
}

/** The parameters as the core uses them. Every field is always present. */
export interface MigrationParameters {
  /** Initial delay before the first self-announce after migration, ms (≤ 100000). */
  readonly announceInitialMs: number;
  /** Maximum delay between self-announce packets, ms (≤ 100000). */
  readonly announceMaxMs: number;
  /** Number of self-announce packets (≤ 1000). */
  readonly announceRounds: number;
  /** Increase of the delay between announce packets, ms (1..10000). */
  readonly announceStepMs: number;
  /** Compression level of the `compress` capability (0..9). */
  readonly compressLevel: number;
  /** Compression threads (≥ 1). */
  readonly compressThreads: number;
  /** Wait for a free compression thread instead of sending uncompressed. */
  readonly compressWaitThread: boolean;
  /** Decompression threads on the destination (≥ 1). */
  readonly decompressThreads: number;
  /** Auto-converge trigger: dirtied bytes above this % of sent bytes count as "too fast" (1..100). */
  readonly throttleTriggerThresholdPct: number;
  /** First auto-converge throttle, % of vCPU time taken away (1..99). */
  readonly cpuThrottleInitialPct: number;
  /** Auto-converge throttle step, % (1..99). */
  readonly cpuThrottleIncrementPct: number;
  /** Auto-converge tailslow: smaller steps near the needed throttle. */
  readonly cpuThrottleTailslow: boolean;
  /** TLS credentials object id ("" = no TLS). */
  readonly tlsCreds: string;
  /** TLS hostname override. */
  readonly tlsHostname: string;
  /** TLS authorization object id. */
  readonly tlsAuthz: string;
  /** Precopy rate limit, bytes/s (QEMU: max-bandwidth / 10 per 100 ms window; 0 = unlimited). */
  readonly maxBandwidthBytesPerSec: number;
  /** Allowed downtime, ms (0..2000000); the convergence threshold is bandwidth × this. */
  readonly downtimeLimitMs: number;
  /** COLO checkpoint interval, ms. */
  readonly xCheckpointDelayMs: number;
  /** Incremental block migration (old-style block migration). */
  readonly blockIncremental: boolean;
  /** Number of multifd channels (≥ 1). */
  readonly multifdChannels: number;
  /** xbzrle cache size, bytes (a power of two ≥ the target page size). */
  readonly xbzrleCacheSizeBytes: number;
  /** Postcopy rate limit, bytes/s (0 = unlimited). */
  readonly maxPostcopyBandwidthBytesPerSec: number;
  /** Auto-converge throttle cap, % (cpu-throttle-initial..99). */
  readonly maxCpuThrottlePct: number;
  /** multifd compression method. */
  readonly multifdCompression: MultifdCompression;
  /** multifd zlib level (0..9). */
  readonly multifdZlibLevel: number;
  /** multifd zstd level (0..20). */
  readonly multifdZstdLevel: number;
  /** Dirty-bitmap alias mapping, or null when never set (then absent from the query). */
  readonly blockBitmapMapping: readonly BitmapMigrationNodeAlias[] | null;
}

/** The `query-migrate-parameters` reply of QEMU 7.2. */
export interface MigrationParametersQmp {
  readonly 'announce-initial': number;
  readonly 'announce-max': number;
  readonly 'announce-rounds': number;
  readonly 'announce-step': number;
  readonly 'compress-level': number;
  readonly 'compress-threads': number;
  readonly 'compress-wait-thread': boolean;
  readonly 'decompress-threads': number;
  readonly 'throttle-trigger-threshold': number;
  readonly 'cpu-throttle-initial': number;
  readonly 'cpu-throttle-increment': number;
  readonly 'cpu-throttle-tailslow': boolean;
  readonly 'tls-creds': string;
  readonly 'tls-hostname': string;
  readonly 'tls-authz': string;
  readonly 'max-bandwidth': number;
  readonly 'downtime-limit': number;
  readonly 'x-checkpoint-delay': number;
  readonly 'block-incremental': boolean;
  readonly 'multifd-channels': number;
  readonly 'xbzrle-cache-size': number;
  readonly 'max-postcopy-bandwidth': number;
  readonly 'max-cpu-throttle': number;
  readonly 'multifd-compression': MultifdCompression;
  readonly 'multifd-zlib-level': number;
  readonly 'multifd-zstd-level': number;
  readonly 'block-bitmap-mapping'?: readonly BitmapMigrationNodeAlias[];
}

export type ParameterName = keyof MigrationParametersQmp;

/** How QAPI types a member; decides the visitor's checks and texts. */
export type ParameterKind = 'size' | 'uint64' | 'uint32' | 'uint8' | 'bool' | 'str' | 'multifd-compression' | 'bitmap-mapping';

/** One row of the parameter table. */
export interface ParameterField {
  /** QMP name (dashes). */
  readonly qmp: ParameterName;
  /** Field of MigrationParameters. */
  readonly core: keyof MigrationParameters;
  /** QAPI type. */
  readonly kind: ParameterKind;
}

/** Every parameter in QAPI member order (the order QEMU visits and reports them). */
export const PARAMETER_FIELDS: readonly ParameterField[] = Object.freeze([
  { qmp: 'announce-initial', core: 'announceInitialMs', kind: 'size' },
  { qmp: 'announce-max', core: 'announceMaxMs', kind: 'size' },
  { qmp: 'announce-rounds', core: 'announceRounds', kind: 'size' },
  { qmp: 'announce-step', core: 'announceStepMs', kind: 'size' },
  { qmp: 'compress-level', core: 'compressLevel', kind: 'uint8' },
  { qmp: 'compress-threads', core: 'compressThreads', kind: 'uint8' },
  { qmp: 'compress-wait-thread', core: 'compressWaitThread', kind: 'bool' },
  { qmp: 'decompress-threads', core: 'decompressThreads', kind: 'uint8' },
  { qmp: 'throttle-trigger-threshold', core: 'throttleTriggerThresholdPct', kind: 'uint8' },
  { qmp: 'cpu-throttle-initial', core: 'cpuThrottleInitialPct', kind: 'uint8' },
  { qmp: 'cpu-throttle-increment', core: 'cpuThrottleIncrementPct', kind: 'uint8' },
  { qmp: 'cpu-throttle-tailslow', core: 'cpuThrottleTailslow', kind: 'bool' },
  { qmp: 'tls-creds', core: 'tlsCreds', kind: 'str' },
  { qmp: 'tls-hostname', core: 'tlsHostname', kind: 'str' },
  { qmp: 'tls-authz', core: 'tlsAuthz', kind: 'str' },
  { qmp: 'max-bandwidth', core: 'maxBandwidthBytesPerSec', kind: 'size' },
  { qmp: 'downtime-limit', core: 'downtimeLimitMs', kind: 'uint64' },
  { qmp: 'x-checkpoint-delay', core: 'xCheckpointDelayMs', kind: 'uint32' },
  { qmp: 'block-incremental', core: 'blockIncremental', kind: 'bool' },
  { qmp: 'multifd-channels', core: 'multifdChannels', kind: 'uint8' },
  { qmp: 'xbzrle-cache-size', core: 'xbzrleCacheSizeBytes', kind: 'size' },
  { qmp: 'max-postcopy-bandwidth', core: 'maxPostcopyBandwidthBytesPerSec', kind: 'size' },
  { qmp: 'max-cpu-throttle', core: 'maxCpuThrottlePct', kind: 'uint8' },
  { qmp: 'multifd-compression', core: 'multifdCompression', kind: 'multifd-compression' },
  { qmp: 'multifd-zlib-level', core: 'multifdZlibLevel', kind: 'uint8' },
  { qmp: 'multifd-zstd-level', core: 'multifdZstdLevel', kind: 'uint8' },
  { qmp: 'block-bitmap-mapping', core: 'blockBitmapMapping', kind: 'bitmap-mapping' },
] as const);

/** The parameters of a fresh QEMU 7.2 (facts §9.5, read from query-migrate-parameters). */
export const DEFAULT_PARAMETERS: MigrationParameters = Object.freeze({
  announceInitialMs: 50,
  announceMaxMs: 550,
  announceRounds: 5,
  announceStepMs: 100,
  compressLevel: 1,
  compressThreads: 8,
  compressWaitThread: true,
  decompressThreads: 2,
  throttleTriggerThresholdPct: 50,
  cpuThrottleInitialPct: 20,
  cpuThrottleIncrementPct: 10,
  cpuThrottleTailslow: false,
  tlsCreds: '',
  tlsHostname: '',
  tlsAuthz: '',
  maxBandwidthBytesPerSec: 134217728,
  downtimeLimitMs: 300,
  xCheckpointDelayMs: 20000,
  blockIncremental: false,
  multifdChannels: 2,
  xbzrleCacheSizeBytes: 67108864,
  maxPostcopyBandwidthBytesPerSec: 0,
  maxCpuThrottlePct: 99,
  multifdCompression: 'none',
  multifdZlibLevel: 1,
  multifdZstdLevel: 1,
  blockBitmapMapping: null,
});

/** QEMU's MAX_MIGRATE_DOWNTIME, ms. */
export const MAX_MIGRATE_DOWNTIME_MS = 2000 * 1000;

/** The `query-migrate-parameters` reply for `params`, members in QAPI order. */
export function toQueryMigrateParameters(params: MigrationParameters): MigrationParametersQmp {
  const out: Record<string, unknown> = {};
  for (const field of PARAMETER_FIELDS) {
    const value = params[field.core];
    if (field.kind === 'bitmap-mapping' && value === null) continue;
    out[field.qmp] = value;
  }
  return out as unknown as MigrationParametersQmp;
}

/** The core form of a `query-migrate-parameters` reply (an absent mapping becomes null). */
export function fromQueryMigrateParameters(reply: MigrationParametersQmp): MigrationParameters {
  const out: Record<string, unknown> = {};
  for (const field of PARAMETER_FIELDS) {
    const value = reply[field.qmp];
    out[field.core] = field.kind === 'bitmap-mapping' ? (value ?? null) : value;
  }
  return Object.freeze(out) as unknown as MigrationParameters;
}

/** Integers widened to bigint: the exact values QEMU's checks see. */
export type ExactParameters = {
  readonly [K in keyof MigrationParameters]: MigrationParameters[K] extends number ? bigint : MigrationParameters[K];
};

/**
 * The parsed arguments of `migrate-set-parameters`: any subset, integers exact (negative
 * uint64/size inputs already wrapped), `tls-*: null` already turned into "".
 */
export type MigrateSetParameters = Partial<ExactParameters>;

/** Context of the parameter check: what the capabilities say. */
export interface ParameterCheckContext {
  /** Capability zero-copy-send is on (then multifd compression and TLS are refused). */
  readonly zeroCopySend: boolean;
}

/** QEMU's target page size, the lower bound of xbzrle-cache-size. */
const TARGET_PAGE_SIZE_BYTES = 4096n;

function widen(params: MigrationParameters): ExactParameters {
  const out: Record<string, unknown> = {};
  for (const field of PARAMETER_FIELDS) {
    const value = params[field.core];
    out[field.core] = typeof value === 'number' ? BigInt(Math.trunc(value)) : value;
  }
  return out as unknown as ExactParameters;
}

function narrow(params: ExactParameters): MigrationParameters {
  const out: Record<string, unknown> = {};
  for (const field of PARAMETER_FIELDS) {
    const value = params[field.core];
    out[field.core] = typeof value === 'bigint' ? Number(value) : value;
  }
  return Object.freeze(out) as unknown as MigrationParameters;
}

function invalid(underscoreName: string, expects: string): ParamError {
  return new ParamError('MIG_ERR_INVALID_PARAMETER', `Parameter '${underscoreName}' expects ${expects}`);
}

/**
 * QEMU 7.2's migrate_params_check over a complete (merged) parameter set. Returns the first
 * failure's error, or null. Criteria, in QEMU's order: compress_level ≤ 9; compress_threads ≥ 1;
 * decompress_threads ≥ 1; throttle_trigger_threshold 1..100; cpu_throttle_initial 1..99;
 * cpu_throttle_increment 1..99; downtime_limit ≤ 2000000; multifd_channels ≥ 1;
 * multifd_zlib_level ≤ 9; multifd_zstd_level ≤ 20; xbzrle_cache_size a power of two ≥ 4096;
 * max_cpu_throttle cpu_throttle_initial..99; announce_initial ≤ 100000; announce_max ≤ 100000;
 * announce_rounds ≤ 1000; announce_step 1..10000; with zero-copy-send on, no multifd
 * compression and no TLS. (max_bandwidth's SIZE_MAX check can never fail on a 64-bit host.)
 */
export function checkParameters(p: ExactParameters, context: ParameterCheckContext): ParamError | null {
  if (p.compressLevel > 9n) return invalid('compress_level', 'a value between 0 and 9');
  if (p.compressThreads < 1n) return invalid('compress_threads', 'a value between 1 and 255');
  if (p.decompressThreads < 1n) return invalid('decompress_threads', 'a value between 1 and 255');
  if (p.throttleTriggerThresholdPct < 1n || p.throttleTriggerThresholdPct > 100n) {
    return invalid('throttle_trigger_threshold', 'an integer in the range of 1 to 100');
  }
  if (p.cpuThrottleInitialPct < 1n || p.cpuThrottleInitialPct > 99n) {
    return invalid('cpu_throttle_initial', 'an integer in the range of 1 to 99');
  }
  if (p.cpuThrottleIncrementPct < 1n || p.cpuThrottleIncrementPct > 99n) {
    return invalid('cpu_throttle_increment', 'an integer in the range of 1 to 99');
  }
  if (p.downtimeLimitMs > BigInt(MAX_MIGRATE_DOWNTIME_MS)) {
    return invalid('downtime_limit', 'an integer in the range of 0 to (2000 * 1000) ms');
  }
  if (p.multifdChannels < 1n) return invalid('multifd_channels', 'a value between 1 and 255');
  if (p.multifdZlibLevel > 9n) return invalid('multifd_zlib_level', 'a value between 0 and 9');
  if (p.multifdZstdLevel > 20n) return invalid('multifd_zstd_level', 'a value between 0 and 20');
  const cache = p.xbzrleCacheSizeBytes;
  if (cache < TARGET_PAGE_SIZE_BYTES || (cache & (cache - 1n)) !== 0n) {
    return invalid('xbzrle_cache_size', 'a power of two no less than the target page size');
  }
  if (p.maxCpuThrottlePct < p.cpuThrottleInitialPct || p.maxCpuThrottlePct > 99n) {
    return invalid('max_cpu_throttle', 'an integer in the range of cpu_throttle_initial to 99');
  }
  if (p.announceInitialMs > 100000n) return invalid('announce_initial', 'a value between 0 and 100000');
  if (p.announceMaxMs > 100000n) return invalid('announce_max', 'a value between 0 and 100000');
  if (p.announceRounds > 1000n) return invalid('announce_rounds', 'a value between 0 and 1000');
  // QEMU's text says 0 although 0 is refused.
  if (p.announceStepMs < 1n || p.announceStepMs > 10000n) return invalid('announce_step', 'a value between 0 and 10000');
  if (context.zeroCopySend && (p.multifdCompression !== 'none' || p.tlsCreds !== '')) {
    return new ParamError(
      'MIG_ERR_INVALID_PARAMETER',
      'Zero copy only available for non-compressed non-TLS multifd migration',
    );
  }
  return null;
}

/**
 * `migrate-set-parameters` after parsing: applies `changes` to a copy of `current`, checks the
 * copy with `checkParameters`, and returns it (the caller commits it) or the first error.
 * Allowed at any time, also during a migration; the caller applies new limits at once.
 */
export function applySetParameters(
  current: MigrationParameters,
  changes: MigrateSetParameters,
  context: ParameterCheckContext = { zeroCopySend: false },
): ParamResult<MigrationParameters> {
  const merged: Record<string, unknown> = { ...widen(current) };
  for (const field of PARAMETER_FIELDS) {
    const value = changes[field.core];
    if (value !== undefined) merged[field.core] = value;
  }
  const error = checkParameters(merged as unknown as ExactParameters, context);
  if (error !== null) return { ok: false, error };
  return { ok: true, value: narrow(merged as unknown as ExactParameters) };
}
