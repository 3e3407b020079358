/**
 * A VmController with QEMU-7.2-like state and no engine behind it, for tests of the control
 * plane and for tools that need a QMP peer. It keeps the run state, capabilities and parameters
 * (through core/capabilities and core/params, so refusals carry QEMU's texts), a source and a
 * destination migration status, and an optional balloon whose `actual` starts at the RAM size.
 *
 * Migration commands give QEMU 7.2's errors in QEMU's order (qmp_migrate/migrate_prepare,
 * qmp_migrate_incoming, qmp_migrate_start_postcopy, qmp_migrate_pause, qmp_migrate_recover,
 * qmp_migrate_continue); accepted ones move the fake's status and emit the events QEMU would.
 * Test hooks (`completeMigration`, `failMigration`, `setSourceStatus`, ...) stand in for the
 * engine's progress. Time comes from `clockNs`, which tests advance.
 *
 * What it deliberately doesn't do: move bytes, open sockets or write pmemsave files (requests
 * are recorded in `pmemsaveRequests`).
 */
import {
  DEFAULT_CAPABILITY_CONTEXT,
  MIGRATION_IN_PROGRESS_TEXT,
  applyCapabilities,
  defaultCapabilities,
  queryMigrateCapabilities,
  type MigrationCapabilities,
  type MigrationCapabilityStatus,
} from '../core/capabilities.ts';
import { DEFAULT_PARAMETERS, applySetParameters, toQueryMigrateParameters, type MigrateSetParameters, type MigrationParameters } from '../core/params.ts';
import { isRunningStatus, type MigrationStatus } from '../core/status.ts';
import { MigrationStatsAccumulator, mergeQueryMigrate, toDestinationQueryMigrate, type MigrationInfoQmp } from '../core/stats.ts';
import type {
  BalloonInfo,
  MigrateArgs,
  PmemsaveArgs,
  QmpEventEmission,
  QmpEventListener,
  RunState,
  StatusInfo,
  VersionInfo,
  VmController,
} from './controller.ts';
import { QmpCommandError, genericError, invalidParameterValue } from './errors.ts';

/** Options of the fake VM. */
export interface FakeVmOptions {
  /** Guest RAM, bytes. Default 16 MiB. */
  readonly ramSizeBytes?: number;
  /** `-incoming defer`: start in runstate inmigrate, waiting for migrate-incoming. */
  readonly incomingDefer?: boolean;
  /** A virtio-balloon device is present. */
  readonly balloon?: boolean;
  /** The guest driver follows balloon targets at once (actual = target, BALLOON_CHANGE). */
  readonly balloonGuestResponds?: boolean;
  /**
   * When set, the destination's postcopy probe fails with this detail line (the refuse policy:
   * "virtio-balloon: 'free-page-hint' does not support postcopy").
   */
  readonly postcopyProbeFailure?: string;
  /** vCPUs (human-monitor-command cpu-index bound). Default 1. */
  readonly cpuCount?: number;
  /** What query-version reports. */
  readonly version?: VersionInfo;
}

const MIB = 1024 * 1024;
const VALID_URI_PREFIXES = ['tcp:', 'unix:', 'vsock:', 'exec:', 'fd:', 'rdma:'];

/** The fake VM. Public fields are for tests to read; use the hooks to change migration state. */
export class FakeVmController implements VmController {
  readonly ramSizeBytes: number;
  runState: RunState;
  capabilities: MigrationCapabilities = defaultCapabilities();
  parameters: MigrationParameters = DEFAULT_PARAMETERS;
  /** The outgoing migration's status. */
  sourceStatus: MigrationStatus = 'none';
  /** The incoming migration's status. */
  destinationStatus: MigrationStatus = 'none';
  /** Balloon target and actual, bytes (null without a balloon device). */
  balloonTargetBytes: number | null;
  balloonActualBytes: number | null;
  /** In inmigrate: run the guest when the incoming migration completes. */
  autostart = true;
  /** The test clock, ns. */
  clockNs = 0;
  /** Set by `quit`. */
  quitRequested = false;
  /** pmemsave calls, in order. */
  readonly pmemsaveRequests: PmemsaveArgs[] = [];
  /** The last `migrate` URI. */
  lastMigrateUri: string | null = null;
  private readonly listeners = new Set<QmpEventListener>();
  private readonly stats = new MigrationStatsAccumulator();
  private readonly options: FakeVmOptions;
  private incomingStarted = false;
  private incomingSocket: readonly unknown[] | undefined;
  private recoverTriggered = false;
  private migrationStarted = false;

  constructor(options: FakeVmOptions = {}) {
    this.options = options;
    this.ramSizeBytes = options.ramSizeBytes ?? 16 * MIB;
    this.runState = options.incomingDefer === true ? 'inmigrate' : 'running';
    this.balloonTargetBytes = options.balloon === true ? this.ramSizeBytes : null;
    this.balloonActualBytes = options.balloon === true ? this.ramSizeBytes : null;
  }

  subscribe(listener: QmpEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Emits an event to every listener (tests may call it directly). */
  emit(event: QmpEventEmission): void {
    for (const listener of [...this.listeners]) listener(event);
  }

  private emitMigration(status: MigrationStatus): void {
    if (this.capabilities.events) this.emit({ event: 'MIGRATION', data: { status } });
  }

  private setRunState(next: RunState): void {
    const wasRunning = this.runState === 'running';
    this.runState = next;
    if (wasRunning && next !== 'running') this.emit({ event: 'STOP' });
    if (!wasRunning && next === 'running') this.emit({ event: 'RESUME' });
  }

  queryVersion(): VersionInfo {
    return this.options.version ?? { qemu: { major: 7, minor: 2, micro: 0 }, package: 'livemig (fake VM)' };
  }

  cpuCount(): number {
    return this.options.cpuCount ?? 1;
  }

  queryStatus(): StatusInfo {
    // QAPI member order: QDict ordering of the reply depends on it.
    return { running: this.runState === 'running', singlestep: false, status: this.runState };
  }

  stop(): void {
    if (this.runState === 'inmigrate') this.autostart = false;
    else if (this.runState === 'running') this.setRunState('paused');
  }

  cont(): void {
    if (['internal-error', 'shutdown', 'guest-panicked'].includes(this.runState)) {
      throw genericError('Resetting the Virtual Machine is required');
    }
    if (this.runState === 'inmigrate') this.autostart = true;
    else if (this.runState !== 'running') this.setRunState('running');
  }

  quit(): void {
    this.quitRequested = true;
    this.emit({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
  }

  migrate(args: MigrateArgs): void {
    if (args.resume === true) {
      if (this.sourceStatus !== 'postcopy-paused') throw genericError('Cannot resume if there is no paused migration');
      if (this.capabilities['release-ram']) throw genericError('Postcopy recovery cannot work when release-ram capability is set');
      this.moveSource('postcopy-recover');
      return;
    }
    if (isRunningStatus(this.sourceStatus)) throw genericError(MIGRATION_IN_PROGRESS_TEXT);
    if (this.runState === 'inmigrate') throw genericError('Guest is waiting for an incoming migration');
    if (this.runState === 'postmigrate') throw genericError("Can't migrate the vm that was paused due to previous migration");
    if ((args.blk === true || args.inc === true) && (this.capabilities.block || this.parameters.blockIncremental)) {
      throw genericError('Command options are incompatible with current migration capabilities');
    }
    this.stats.begin(this.clockNs, this.ramSizeBytes, this.parameters.downtimeLimitMs);
    this.migrationStarted = true;
    this.moveSource('setup');
    if (!VALID_URI_PREFIXES.some((prefix) => args.uri.startsWith(prefix))) {
      this.moveSource('failed');
      throw invalidParameterValue('uri', 'a valid migration protocol');
    }
    this.lastMigrateUri = args.uri;
    // The fake connects at once: setup is done and the first pass begins.
    this.stats.markSetupDone(this.clockNs);
    this.stats.recordDirtySync();
    this.stats.remainingBytes = this.ramSizeBytes;
    if (this.capabilities.events) this.emit({ event: 'MIGRATION_PASS', data: { pass: 1 } });
    this.moveSource('active');
  }

  migrateIncoming(args: { readonly uri: string }): void {
    if (this.incomingStarted) throw genericError('The incoming migration has already been started');
    if (this.runState !== 'inmigrate' || this.options.incomingDefer !== true) {
      throw genericError("'-incoming' was not specified on the command line");
    }
    // QEMU announces setup before it even parses the URI.
    this.emit({ event: 'MIGRATION', data: { status: 'setup' } });
    const tcp = /^tcp:([^:]*):(\d+)$/.exec(args.uri);
    if (tcp !== null) {
      this.incomingSocket = [{ port: tcp[2], ipv4: true, host: tcp[1], type: 'inet' }];
    } else if (args.uri.startsWith('unix:')) {
      this.incomingSocket = [{ path: args.uri.slice('unix:'.length), type: 'unix' }];
    } else if (!['exec:', 'fd:', 'rdma:', 'vsock:'].some((prefix) => args.uri.startsWith(prefix))) {
      throw genericError(`unknown migration protocol: ${args.uri}`);
    }
    this.incomingStarted = true;
  }

  migrateSetCapabilities(args: { readonly capabilities: readonly MigrationCapabilityStatus[] }): void {
    if (isRunningStatus(this.sourceStatus)) throw genericError(MIGRATION_IN_PROGRESS_TEXT);
    const probeFailure = this.options.postcopyProbeFailure;
    const result = applyCapabilities(this.capabilities, args.capabilities, {
      ...DEFAULT_CAPABILITY_CONTEXT,
      incoming: this.runState === 'inmigrate',
      postcopySupportedByHost: probeFailure === undefined,
      multifdCompression: this.parameters.multifdCompression,
      tlsEnabled: this.parameters.tlsCreds !== '',
    });
    if (!result.ok) {
      const reports = result.error.desc === 'Postcopy is not supported' && probeFailure !== undefined ? [probeFailure] : [];
      throw genericError(result.error.desc, reports);
    }
    this.capabilities = result.value;
  }

  queryMigrateCapabilities(): MigrationCapabilityStatus[] {
    return queryMigrateCapabilities(this.capabilities);
  }

  migrateSetParameters(args: MigrateSetParameters): void {
    const result = applySetParameters(this.parameters, args, { zeroCopySend: this.capabilities['zero-copy-send'] });
    if (!result.ok) throw genericError(result.error.desc);
    this.parameters = result.value;
  }

  queryMigrateParameters(): ReturnType<typeof toQueryMigrateParameters> {
    return toQueryMigrateParameters(this.parameters);
  }

  queryMigrate(): MigrationInfoQmp {
    const destination = toDestinationQueryMigrate(this.destinationStatus, { socketAddress: this.incomingSocket });
    const source = this.migrationStarted ? this.stats.toQueryMigrate(this.sourceStatus, this.clockNs) : {};
    return mergeQueryMigrate(destination, source);
  }

  migrateStartPostcopy(): void {
    if (!this.capabilities['postcopy-ram']) {
      throw genericError('Enable postcopy with migrate_set_capability before the start of migration');
    }
    if (this.sourceStatus === 'none') throw genericError('Postcopy must be started after migration has been started');
    if (this.sourceStatus === 'active') {
      this.stats.markDowntimeStart(this.clockNs);
      this.moveSource('postcopy-active');
      this.setRunState('finish-migrate');
      this.stats.markPostcopyDowntimeEnd(this.clockNs);
    }
  }

  migrateCancel(): void {
    if (!isRunningStatus(this.sourceStatus) || this.sourceStatus === 'cancelling') return;
    this.moveSource('cancelling');
    this.moveSource('cancelled');
    if (this.runState === 'finish-migrate') this.setRunState('running');
  }

  migrateContinue(args: { readonly state: MigrationStatus }): void {
    if (this.sourceStatus !== args.state) throw genericError(`Migration not in expected state: ${this.sourceStatus}`);
    if (this.sourceStatus === 'pre-switchover') {
      this.moveSource('device');
      this.completeMigration();
    }
  }

  migratePause(): void {
    if (this.sourceStatus === 'postcopy-active') {
      this.moveSource('postcopy-paused');
      return;
    }
    if (this.destinationStatus === 'postcopy-active') {
      this.destinationStatus = 'postcopy-paused';
      this.emitMigration('postcopy-paused');
      return;
    }
    throw genericError('migrate-pause is currently only supported during postcopy-active state');
  }

  migrateRecover(_args: { readonly uri: string }): void {
    if (this.destinationStatus !== 'postcopy-paused') throw genericError('Migrate recover can only be run when postcopy is paused.');
    if (this.recoverTriggered) throw genericError('Migrate recovery is triggered already');
    this.recoverTriggered = true;
  }

  private requireBalloon(): void {
    if (this.balloonActualBytes === null) throw new QmpCommandError('DeviceNotActive', 'No balloon device has been activated');
  }

  balloon(args: { readonly value: number }): void {
    this.requireBalloon();
    if (args.value <= 0) throw invalidParameterValue('target', 'a size');
    this.balloonTargetBytes = Math.min(args.value, this.ramSizeBytes);
    if (this.options.balloonGuestResponds === true) this.setBalloonActual(this.balloonTargetBytes);
  }

  queryBalloon(): BalloonInfo {
    this.requireBalloon();
    return { actual: this.balloonActualBytes as number };
  }

  pmemsave(args: PmemsaveArgs): void {
    this.pmemsaveRequests.push(args);
  }

  // ---- Test hooks: the engine's progress. ----

  /** Moves the source status, emitting MIGRATION when capability `events` is on. */
  moveSource(status: MigrationStatus): void {
    this.sourceStatus = status;
    this.emitMigration(status);
  }

  /** Sets the source status without events (a fixture). */
  setSourceStatus(status: MigrationStatus): void {
    if (!this.migrationStarted) {
      this.stats.begin(this.clockNs, this.ramSizeBytes, this.parameters.downtimeLimitMs);
      this.migrationStarted = true;
    }
    this.sourceStatus = status;
  }

  /** Sets the destination status without events (a fixture). A finished one stops listening. */
  setDestinationStatus(status: MigrationStatus): void {
    this.destinationStatus = status;
    if (status === 'completed' || status === 'failed') this.incomingSocket = undefined;
  }

  /** The source finishes: STOP, the last pass, completed, runstate postmigrate. */
  completeMigration(totalStreamBytes = this.ramSizeBytes): void {
    if (this.runState === 'running') {
      this.stats.markDowntimeStart(this.clockNs);
      this.setRunState('finish-migrate');
    }
    this.stats.recordDirtySync();
    this.stats.addNormalPages(Math.floor(this.ramSizeBytes / 4096));
    this.stats.addTransferred(totalStreamBytes, 'precopy');
    if (this.capabilities.events) this.emit({ event: 'MIGRATION_PASS', data: { pass: this.stats.dirtySyncCount } });
    this.stats.complete(this.clockNs, totalStreamBytes);
    this.moveSource('completed');
    this.runState = 'postmigrate';
  }

  /** The source fails with `errorDesc`; a guest stopped for the switch runs again. */
  failMigration(errorDesc: string): void {
    this.stats.fail(errorDesc);
    this.moveSource('failed');
    if (this.runState === 'finish-migrate') this.setRunState('running');
  }

  /** The guest driver reached a new balloon size: BALLOON_CHANGE. */
  setBalloonActual(actualBytes: number): void {
    this.requireBalloon();
    this.balloonActualBytes = actualBytes;
    this.emit({ event: 'BALLOON_CHANGE', data: { actual: actualBytes } });
  }
}
