/**
 * The contract between the QMP control plane and the VM behind it (livemig's engine in the real
 * shell, a simulated VM in the sim, or FakeVmController in tests). One method per QMP command,
 * with the arguments already validated and typed (QAPI names in, QAPI-shaped data out), so a
 * controller never sees raw JSON and never formats an error reply.
 *
 * Rules for implementers:
 * - Refuse with `throw new QmpCommandError(class, desc)` (or a rejected promise) carrying QEMU
 *   7.2's exact text; put lines QEMU prints with error_report() first in `reports`.
 * - A method may return a value or a promise. In-band commands are executed one at a time per
 *   client, in order; `migratePause` and `migrateRecover` may also arrive out of band (exec-oob)
 *   while an earlier command is still pending, as in QEMU.
 * - Emit events through the listeners given to `subscribe`, synchronously at the moment the
 *   state changes (so a STOP caused by `stop` goes out before the reply, as QEMU's does). The
 *   control plane stamps the time unless the event carries one, and applies QEMU's rate limits.
 *
 * Cloud Hypervisor's `RequestHandler` is the model: transports (QMP, HMP, a CLI) call this;
 * it knows nothing about them.
 */
import type { MigrationCapabilityStatus } from '../core/capabilities.ts';
import type { MigrateSetParameters, MigrationParametersQmp } from '../core/params.ts';
import type { MigrationStatus } from '../core/status.ts';
import type { MigrationInfoQmp } from '../core/stats.ts';
import type { BalloonInfo, MigrateArgs, PmemsaveArgs, RunState, StatusInfo, VersionInfo } from '../host/vm-types.ts';

/** A value or a promise of it: controllers may answer synchronously (sim, tests) or not. */
export type MaybePromise<T> = T | Promise<T>;

// The QAPI shapes a VM answers in (RunState, StatusInfo, VersionInfo, BalloonInfo, MigrateArgs,
// PmemsaveArgs) are declared once, in the host layer below this one.
export { RUN_STATES } from '../host/vm-types.ts';
export type { BalloonInfo, MigrateArgs, PmemsaveArgs, RunState, StatusInfo, VersionInfo } from '../host/vm-types.ts';
/** The moment an event happened, as QMP prints it. */
export interface QmpTimestamp {
  readonly seconds: number;
  readonly microseconds: number;
}

/** The events this control plane carries, with their QAPI data. */
export type QmpEventBody =
  | { readonly event: 'MIGRATION'; readonly data: { readonly status: MigrationStatus } }
  | { readonly event: 'MIGRATION_PASS'; readonly data: { readonly pass: number } }
  | { readonly event: 'STOP' }
  | { readonly event: 'RESUME' }
  | { readonly event: 'BALLOON_CHANGE'; readonly data: { readonly actual: number } }
  | { readonly event: 'SHUTDOWN'; readonly data: { readonly guest: boolean; readonly reason: string } };

/** The names of QmpEventBody. */
export type QmpEventName = QmpEventBody['event'];

/** An event as a controller emits it: optionally with its own (for example simulated) time. */
export type QmpEventEmission = QmpEventBody & { readonly timestamp?: QmpTimestamp };

/** A listener of controller events. */
export type QmpEventListener = (event: QmpEventEmission) => void;

/** The VM behind the QMP server: one method per command. */
export interface VmController {
  /** `query-status`. */
  queryStatus(): MaybePromise<StatusInfo>;
  /** `stop`: pause the vCPUs (in `inmigrate`: only cancel autostart). Emits STOP when it pauses. */
  stop(): MaybePromise<void>;
  /** `cont`: resume (in `inmigrate`: only request autostart). Emits RESUME when it resumes. */
  cont(): MaybePromise<void>;
  /** `quit`: the reply is sent, then the process ends; emits SHUTDOWN (reason host-qmp-quit). */
  quit(): MaybePromise<void>;
  /** `migrate`: start an outgoing migration (or resume a paused postcopy with `resume`). */
  migrate(args: MigrateArgs): MaybePromise<void>;
  /** `migrate-incoming`: start listening (only with `-incoming defer`, only once). */
  migrateIncoming(args: { readonly uri: string }): MaybePromise<void>;
  /** `migrate-set-capabilities`, the list already parsed (names and types valid). */
  migrateSetCapabilities(args: { readonly capabilities: readonly MigrationCapabilityStatus[] }): MaybePromise<void>;
  /** `query-migrate-capabilities`: every capability, in QEMU's enum order. */
  queryMigrateCapabilities(): MaybePromise<readonly MigrationCapabilityStatus[]>;
  /** `migrate-set-parameters`, already visited (exact bigints, tls-* null turned into ""). */
  migrateSetParameters(args: MigrateSetParameters): MaybePromise<void>;
  /** `query-migrate-parameters`. */
  queryMigrateParameters(): MaybePromise<MigrationParametersQmp>;
  /** `query-migrate` (`{}` before any migration). */
  queryMigrate(): MaybePromise<MigrationInfoQmp>;
  /** `migrate-start-postcopy`. */
  migrateStartPostcopy(): MaybePromise<void>;
  /** `migrate_cancel` (succeeds without a migration). */
  migrateCancel(): MaybePromise<void>;
  /** `migrate-continue`: release a migration paused in `state` (pre-switchover). */
  migrateContinue(args: { readonly state: MigrationStatus }): MaybePromise<void>;
  /** `migrate-pause` (allowed out of band). */
  migratePause(): MaybePromise<void>;
  /** `migrate-recover` (allowed out of band). */
  migrateRecover(args: { readonly uri: string }): MaybePromise<void>;
  /** `balloon`: set the target logical RAM size, bytes. */
  balloon(args: { readonly value: number }): MaybePromise<void>;
  /** `query-balloon`. */
  queryBalloon(): MaybePromise<BalloonInfo>;
  /** `pmemsave`. */
  pmemsave(args: PmemsaveArgs): MaybePromise<void>;
  /** `query-version`, also the greeting's version. */
  queryVersion(): VersionInfo;
  /** Number of vCPUs (`human-monitor-command`'s cpu-index must be below it; QEMU -M none has 0). */
  cpuCount(): number;
  /** Registers an event listener; returns the function that removes it. */
  subscribe(listener: QmpEventListener): () => void;
}
