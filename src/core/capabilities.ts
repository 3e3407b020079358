/**
 * Migration capabilities: QEMU 7.2's 21 names (QMP spelling, enum order, all off by default),
 * the `query-migrate-capabilities` shape, parsing of a `migrate-set-capabilities` list with
 * QEMU's error texts, and QEMU's compatibility check (migrate_caps_check) with its exact texts.
 *
 * Why here: the source machine, the destination machine and QMP all need the same answer to
 * "may these capabilities be on together?"; the check is pure once the host facts it depends
 * on (postcopy support, write tracking, protocol) are passed in as a context.
 *
 * What it deliberately doesn't do: refuse changes while a migration runs (`There's a migration
 * process in progress` is the caller's, see MIGRATION_IN_PROGRESS_TEXT), run the host's
 * postcopy probe (the caller passes its outcome), or model capabilities newer than 7.2.
 */
import { z } from 'zod';
import type { MultifdCompression } from './params.ts';
import { ParamError, firstIssueText, type ParamResult } from './param-errors.ts';

/** The capability names of QEMU 7.2, in enum order (query-migrate-capabilities lists them so). */
export const MIGRATION_CAPABILITIES = [
  'xbzrle',
  'rdma-pin-all',
  'auto-converge',
  'zero-blocks',
  'compress',
  'events',
  'postcopy-ram',
  'x-colo',
  'release-ram',
  'block',
  'return-path',
  'pause-before-switchover',
  'multifd',
  'dirty-bitmaps',
  'postcopy-blocktime',
  'late-block-activate',
  'x-ignore-shared',
  'validate-uuid',
  'background-snapshot',
  'zero-copy-send',
  'postcopy-preempt',
] as const;

export type MigrationCapability = (typeof MIGRATION_CAPABILITIES)[number];

/** Every capability's on/off state. */
export type MigrationCapabilities = Readonly<Record<MigrationCapability, boolean>>;

/** One element of `migrate-set-capabilities` and of `query-migrate-capabilities`. */
export interface MigrationCapabilityStatus {
  /** The capability's QMP name. */
  readonly capability: MigrationCapability;
  /** Whether it is on. */
  readonly state: boolean;
}

/** QEMU's error when capabilities change during a migration (the caller checks isRunningStatus). */
export const MIGRATION_IN_PROGRESS_TEXT = "There's a migration process in progress";

/**
 * Capabilities that `background-snapshot` refuses, in the order QEMU checks them (the first one
 * found is named in the error).
 */
export const BACKGROUND_SNAPSHOT_INCOMPATIBLE: readonly MigrationCapability[] = Object.freeze([
  'postcopy-ram',
  'dirty-bitmaps',
  'postcopy-blocktime',
  'late-block-activate',
  'return-path',
  'multifd',
  'pause-before-switchover',
  'auto-converge',
  'release-ram',
  'rdma-pin-all',
  'compress',
  'xbzrle',
  'x-colo',
  'validate-uuid',
  'zero-copy-send',
] as const);

/** All capabilities off, as QEMU 7.2 starts. */
export function defaultCapabilities(): MigrationCapabilities {
  const caps = {} as Record<MigrationCapability, boolean>;
  for (const name of MIGRATION_CAPABILITIES) caps[name] = false;
  return Object.freeze(caps);
}

/** The reply of `query-migrate-capabilities`: every capability, in enum order. */
export function queryMigrateCapabilities(caps: MigrationCapabilities): MigrationCapabilityStatus[] {
  return MIGRATION_CAPABILITIES.map((capability) => ({ capability, state: caps[capability] }));
}

/** True when `value` is a capability name of QEMU 7.2. */
export function isMigrationCapability(value: unknown): value is MigrationCapability {
  return typeof value === 'string' && (MIGRATION_CAPABILITIES as readonly string[]).includes(value);
}

function capabilityStatusSchema(index: number) {
  const path = `capabilities[${index}]`;
  return z.unknown().transform((element, ctx): MigrationCapabilityStatus => {
    const fail = (message: string): never => {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER as never;
    };
    if (typeof element !== 'object' || element === null || Array.isArray(element)) {
      return fail(`Invalid parameter type for '${path}', expected: object`);
    }
    const record = element as Record<string, unknown>;
    if (!('capability' in record)) return fail(`Parameter '${path}.capability' is missing`);
    const name = record.capability;
    if (typeof name !== 'string') return fail(`Invalid parameter type for '${path}.capability', expected: string`);
    // QEMU names only the member (not its path) when an enum value is unknown.
    if (!isMigrationCapability(name)) return fail(`Parameter 'capability' does not accept value '${name}'`);
    if (!('state' in record)) return fail(`Parameter '${path}.state' is missing`);
    if (typeof record.state !== 'boolean') return fail(`Invalid parameter type for '${path}.state', expected: boolean`);
    const extra = Object.keys(record).find((key) => key !== 'capability' && key !== 'state');
    if (extra !== undefined) return fail(`Parameter '${path}.${extra}' is unexpected`);
    return { capability: name, state: record.state };
  });
}

/**
 * zod schema of the `capabilities` argument of `migrate-set-capabilities`. Its issues carry
 * QEMU 7.2's texts (`Parameter 'capability' does not accept value 'nope'`, ...); elements are
 * checked in order and the first problem is the one QEMU reports.
 */
export const capabilityListSchema = z.unknown().transform((value, ctx): MigrationCapabilityStatus[] => {
  if (!Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: "Invalid parameter type for 'capabilities', expected: array" });
    return z.NEVER as never;
  }
  const out: MigrationCapabilityStatus[] = [];
  for (let i = 0; i < value.length; i++) {
    const parsed = capabilityStatusSchema(i).safeParse(value[i]);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: firstIssueText(parsed.error) });
      return z.NEVER as never;
    }
    out.push(parsed.data);
  }
  return out;
});

/** Parses the `capabilities` argument; the error text is the first problem in QEMU's order. */
export function parseCapabilityList(value: unknown): ParamResult<MigrationCapabilityStatus[]> {
  const parsed = capabilityListSchema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, error: new ParamError('MIG_ERR_INVALID_CAPABILITY', firstIssueText(parsed.error)) };
}

/** Host and configuration facts that QEMU's capability check consults. */
export interface CapabilityCheckContext {
  /** Runstate is `inmigrate` (this process is a destination waiting for or in migration). */
  readonly incoming: boolean;
  /** Outcome of the host postcopy probe (facts §3.3); consulted only on the destination. */
  readonly postcopySupportedByHost: boolean;
  /** Userfaultfd write-tracking support, for `background-snapshot`. */
  readonly writeTracking: 'absent' | 'available' | 'compatible';
  /** Current `multifd-compression` parameter (zero copy needs `none`). */
  readonly multifdCompression: MultifdCompression;
  /** TLS is configured (`tls-creds` not empty). */
  readonly tlsEnabled: boolean;
  /** The incoming transport supports several channels (tcp, unix, vsock). */
  readonly multiChannelTransport: boolean;
  /** Built with live block migration (Debian's 7.2 is). */
  readonly liveBlockMigrationBuilt: boolean;
  /** Built with the replication module, needed by x-colo (Debian's 7.2 is). */
  readonly replicationBuilt: boolean;
  /** Host is Linux (zero copy is Linux-only). */
  readonly linuxHost: boolean;
}

/** The context of a Debian QEMU 7.2 source on Linux: everything supported, nothing special. */
export const DEFAULT_CAPABILITY_CONTEXT: CapabilityCheckContext = Object.freeze({
  incoming: false,
  postcopySupportedByHost: true,
  writeTracking: 'compatible',
  multifdCompression: 'none',
  tlsEnabled: false,
  multiChannelTransport: true,
  liveBlockMigrationBuilt: true,
  replicationBuilt: true,
  linuxHost: true,
});

/**
 * Applies `changes` to `current` and runs QEMU 7.2's compatibility check on the result, in
 * QEMU's order; the first failure's text is returned exactly. On success the merged set is
 * returned (the caller stores it). Criteria, in order: block needs live block migration built;
 * x-colo needs replication built; postcopy-ram newly on an incoming side needs the host probe,
 * and refuses x-ignore-shared; background-snapshot needs write tracking and none of
 * BACKGROUND_SNAPSHOT_INCOMPATIBLE; zero-copy-send needs Linux, multifd, no compress, no xbzrle,
 * no multifd compression and no TLS; multifd on an incoming side needs a multi-channel
 * transport; postcopy-preempt needs postcopy-ram and refuses compress; multifd refuses compress.
 */
export function applyCapabilities(
  current: MigrationCapabilities,
  changes: readonly MigrationCapabilityStatus[],
  context: CapabilityCheckContext = DEFAULT_CAPABILITY_CONTEXT,
): ParamResult<MigrationCapabilities> {
  const caps: Record<MigrationCapability, boolean> = { ...current };
  for (const change of changes) caps[change.capability] = change.state;
  const fail = (text: string): ParamResult<MigrationCapabilities> => ({
    ok: false,
    error: new ParamError('MIG_ERR_CAPABILITY_CONFLICT', text),
  });

  if (caps.block && !context.liveBlockMigrationBuilt) {
    return fail('QEMU compiled without old-style (blk/-b, inc/-i) block migration');
  }
  if (caps['x-colo'] && !context.replicationBuilt) {
    return fail("QEMU compiled without replication module can't enable COLO");
  }
  if (caps['postcopy-ram']) {
    if (!current['postcopy-ram'] && context.incoming && !context.postcopySupportedByHost) {
      return fail('Postcopy is not supported');
    }
    if (caps['x-ignore-shared']) return fail('Postcopy is not compatible with ignore-shared');
  }
  if (caps['background-snapshot']) {
    if (context.writeTracking === 'absent') return fail('Background-snapshot is not supported by host kernel');
    if (context.writeTracking === 'available') {
      return fail('Background-snapshot is not compatible with guest memory configuration');
    }
    const conflict = BACKGROUND_SNAPSHOT_INCOMPATIBLE.find((name) => caps[name]);
    if (conflict !== undefined) return fail(`Background-snapshot is not compatible with ${conflict}`);
  }
  if (caps['zero-copy-send']) {
    if (!context.linuxHost) return fail('Zero copy currently only available on Linux');
    if (!caps.multifd || caps.compress || caps.xbzrle || context.multifdCompression !== 'none' || context.tlsEnabled) {
      return fail('Zero copy only available for non-compressed non-TLS multifd migration');
    }
  }
  if (context.incoming && !context.multiChannelTransport && caps.multifd) {
    return fail('multifd is not supported by current protocol');
  }
  if (caps['postcopy-preempt']) {
    if (!caps['postcopy-ram']) return fail('Postcopy preempt requires postcopy-ram');
    if (caps.compress) return fail('Postcopy preempt not compatible with compress');
  }
  if (caps.multifd && caps.compress) return fail('Multifd is not compatible with compress');
  return { ok: true, value: Object.freeze(caps) };
}
