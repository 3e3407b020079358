/**
 * zod schemas of the QAPI types our commands return and our events carry (QEMU 7.2 names and
 * member sets). They validate replies in tests and document the wire shapes; the argument side
 * is in qapi-visit.ts, which reproduces QEMU's input texts.
 *
 * Integers are `z.number().int()`, except the few uint64 members that can exceed 2^53 in
 * QEMU (max-bandwidth after a wrapped -1), which also accept bigint.
 */
import { z } from 'zod';
import { MIGRATION_CAPABILITIES } from '../core/capabilities.ts';
import { MULTIFD_COMPRESSIONS } from '../core/params.ts';
import { MIGRATION_STATUSES } from '../core/status.ts';
import { RUN_STATES } from './controller.ts';

const int = z.number().int();
const uint = z.number().int().nonnegative();
const uint64 = z.union([uint, z.bigint().nonnegative()]);

/** Empty `return` of commands that return nothing. */
export const emptyReturn = z.object({}).strict();

/** VersionInfo. */
export const versionInfoSchema = z
  .object({
    qemu: z.object({ major: int, minor: int, micro: int }).strict(),
    package: z.string(),
  })
  .strict();

/** The greeting: `{"QMP": {"version": VersionInfo, "capabilities": ["oob"]}}`. */
export const greetingSchema = z
  .object({
    QMP: z.object({ version: versionInfoSchema, capabilities: z.array(z.enum(['oob'])) }).strict(),
  })
  .strict();

/** StatusInfo (query-status). */
export const statusInfoSchema = z
  .object({ status: z.enum(RUN_STATES), singlestep: z.boolean(), running: z.boolean() })
  .strict();

/** MigrationCapabilityStatus. */
export const capabilityStatusSchema = z
  .object({ capability: z.enum(MIGRATION_CAPABILITIES), state: z.boolean() })
  .strict();

const bitmapMappingSchema = z.array(
  z
    .object({
      'node-name': z.string(),
      alias: z.string(),
      bitmaps: z.array(
        z
          .object({
            name: z.string(),
            alias: z.string(),
            transform: z.object({ persistent: z.boolean().optional() }).strict().optional(),
          })
          .strict(),
      ),
    })
    .strict(),
);

/** MigrationParameters (query-migrate-parameters), every member present but the mapping. */
export const migrationParametersSchema = z
  .object({
    'announce-initial': uint64,
    'announce-max': uint64,
    'announce-rounds': uint64,
    'announce-step': uint64,
    'compress-level': uint,
    'compress-threads': uint,
    'compress-wait-thread': z.boolean(),
    'decompress-threads': uint,
    'throttle-trigger-threshold': uint,
    'cpu-throttle-initial': uint,
    'cpu-throttle-increment': uint,
    'cpu-throttle-tailslow': z.boolean(),
    'tls-creds': z.string(),
    'tls-hostname': z.string(),
    'tls-authz': z.string(),
    'max-bandwidth': uint64,
    'downtime-limit': uint64,
    'x-checkpoint-delay': uint,
    'block-incremental': z.boolean(),
    'multifd-channels': uint,
    'xbzrle-cache-size': uint64,
    'max-postcopy-bandwidth': uint64,
    'max-cpu-throttle': uint,
    'multifd-compression': z.enum(MULTIFD_COMPRESSIONS),
    'multifd-zlib-level': uint,
    'multifd-zstd-level': uint,
    'block-bitmap-mapping': bitmapMappingSchema.optional(),
  })
  .strict();

/** MigrationStats (the `ram` member), every member required. */
export const migrationStatsSchema = z
  .object({
    transferred: uint,
    remaining: uint,
    total: uint,
    duplicate: uint,
    skipped: uint,
    normal: uint,
    'normal-bytes': uint,
    'dirty-pages-rate': uint,
    mbps: z.number(),
    'dirty-sync-count': uint,
    'postcopy-requests': uint,
    'page-size': uint,
    'multifd-bytes': uint,
    'pages-per-second': uint,
    'precopy-bytes': uint,
    'downtime-bytes': uint,
    'postcopy-bytes': uint,
    'dirty-sync-missed-zero-copy': uint,
  })
  .strict();

/** SocketAddress as query-migrate shows a listener (the `inet` variant and `unix`). */
export const socketAddressSchema = z.union([
  z
    .object({
      type: z.literal('inet'),
      host: z.string(),
      port: z.string(),
      numeric: z.boolean().optional(),
      to: z.number().int().optional(),
      ipv4: z.boolean().optional(),
      ipv6: z.boolean().optional(),
    })
    .strict(),
  z.object({ type: z.literal('unix'), path: z.string() }).strict(),
  z.object({ type: z.literal('vsock'), cid: z.string(), port: z.string() }).strict(),
  z.object({ type: z.literal('fd'), str: z.string() }).strict(),
]);

/** MigrationInfo (query-migrate): every member optional. */
export const migrationInfoSchema = z
  .object({
    status: z.enum(MIGRATION_STATUSES).optional(),
    ram: migrationStatsSchema.optional(),
    'total-time': uint.optional(),
    'expected-downtime': uint.optional(),
    downtime: uint.optional(),
    'setup-time': uint.optional(),
    'cpu-throttle-percentage': uint.optional(),
    'error-desc': z.string().optional(),
    'blocked-reasons': z.array(z.string()).optional(),
    'postcopy-blocktime': uint.optional(),
    'postcopy-vcpu-blocktime': z.array(uint).optional(),
    'socket-address': z.array(socketAddressSchema).optional(),
  })
  .strict();

/** BalloonInfo. */
export const balloonInfoSchema = z.object({ actual: int }).strict();

/** CommandInfo (query-commands element). */
export const commandInfoSchema = z.object({ name: z.string() }).strict();

/** QMP's event timestamp. */
export const timestampSchema = z.object({ seconds: int, microseconds: int.min(0).max(999_999) }).strict();

/** MIGRATION's data. */
export const migrationEventSchema = z.object({ status: z.enum(MIGRATION_STATUSES) }).strict();
/** MIGRATION_PASS's data. */
export const migrationPassEventSchema = z.object({ pass: int.min(1) }).strict();
/** BALLOON_CHANGE's data. */
export const balloonChangeEventSchema = z.object({ actual: int }).strict();
/** SHUTDOWN's data. */
export const shutdownEventSchema = z.object({ guest: z.boolean(), reason: z.string() }).strict();

/** An error reply's `error` member. */
export const errorBodySchema = z
  .object({
    class: z.enum(['GenericError', 'CommandNotFound', 'DeviceNotActive', 'DeviceNotFound', 'KVMMissingCap']),
    desc: z.string(),
  })
  .strict();
