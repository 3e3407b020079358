/**
 * LivemigVm: a real-mode VM (vm-core.ts) with QMP's VmController methods (the QMP adapter in
 * cli/vm-command.ts turns it into one, see vm-types.ts for why). Each command checks its
 * preconditions in QEMU 7.2's order with QEMU's texts (the same order FakeVmController
 * documents), then acts on the VM: `migrate` and `migrate-incoming` start the real migrations
 * (with TLS from `-object tls-creds-x509` named by the tls-creds parameter), `pmemsave` writes
 * guest RAM to a file (faulting missing pages in first on a postcopy destination, as QEMU's
 * read through userfaultfd does), `balloon` and `query-balloon` go to the balloon device.
 *
 * Postcopy recovery as QEMU does it: `migrate-pause` (either side, in postcopy-active) or a
 * lost connection leaves both sides postcopy-paused with the guest stopped on the source and
 * waiting on the destination; `migrate-recover URI` on the destination listens again and
 * `migrate` with `resume: true` on the source connects to it (outgoing.ts, incoming.ts).
 * Not supported (refused with QEMU's text): pre-switchover (migrate-continue). Capabilities the source engine lacks (xbzrle, compress, ...) are
 * refused by `migrate` with the engine's text. Postcopy-preempt opens a second connection
 * (tcp: and unix: only, QEMU's text otherwise); resuming a paused preempt migration is refused.
 * Multifd opens multifd-channels extra connections (tcp: and
 * unix: only, multifd-channels.ts).
 *
 * @example
 * const vm = await LivemigVm.start(interpretVmArgs(tokenizeQemuArgs(['-m', '256M'], LIVEMIG_VM_OPTIONS)));
 * vm.migrate({ uri: 'tcp:127.0.0.1:4444' });
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import {
  DEFAULT_CAPABILITY_CONTEXT, MIGRATION_IN_PROGRESS_TEXT, applyCapabilities, queryMigrateCapabilities, type MigrationCapabilityStatus,
} from '../core/capabilities.ts';
import { applySetParameters, toQueryMigrateParameters, type MigrateSetParameters, type MigrationParametersQmp } from '../core/params.ts';
import { isFinalStatus, isRunningStatus, type MigrationStatus } from '../core/status.ts';
import { mergeQueryMigrate, toDestinationQueryMigrate, type MigrationInfoQmp } from '../core/stats.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { TransportError, TRANSPORT_ERR_BAD_URI } from '../transport/errors.ts';
import type { OpenOptions } from '../transport/open.ts';
import { loadTlsCreds, type TlsEndpoint } from '../transport/tls.ts';
import { parseMigrationUri } from '../transport/uri.ts';
import { multifdUriRefusal } from './multifd-channels.ts';
import { VmCore, type VmHooks } from './vm-core.ts';

/** QEMU 7.2's refusal of postcopy-preempt on a transport with a single channel. */
const PREEMPT_NEEDS_CHANNELS_TEXT = 'Postcopy preempt is not supported as current migration stream does not support multi-channels.';
import type { VmCommandLine } from './vm-args.ts';
import { VmCommandError, invalidParameter, vmError, type BalloonInfo, type MigrateArgs, type PmemsaveArgs, type StatusInfo, type VersionInfo } from './vm-types.ts';

/** What query-version reports: the QEMU release livemig speaks. */
export const LIVEMIG_VERSION: VersionInfo = Object.freeze({ qemu: Object.freeze({ major: 7, minor: 2, micro: 0 }), package: 'livemig 0.1.0' });

/** Longest time pmemsave waits for a postcopy page. */
const PMEMSAVE_FAULT_TIMEOUT_MS = 30_000;

export class LivemigVm extends VmCore {
  private incomingStarted = false;

  /** Builds and starts a VM (see VmCore.init). */
  static async start(config: VmCommandLine, hooks: VmHooks = {}): Promise<LivemigVm> {
    const vm = new LivemigVm(config, hooks);
    await vm.init();
    return vm;
  }

  queryVersion(): VersionInfo {
    return LIVEMIG_VERSION;
  }

  cpuCount(): number {
    return this.config.vcpus;
  }

  queryStatus(): StatusInfo {
    return { running: this.runState === 'running', singlestep: false, status: this.runState };
  }

  stop(): void {
    if (this.runState === 'inmigrate') this.autostart = false;
    else if (this.runState === 'running') this.pauseGuest('paused');
  }

  cont(): void {
    if (['internal-error', 'shutdown', 'guest-panicked'].includes(this.runState)) throw vmError('Resetting the Virtual Machine is required');
    if (this.runState === 'inmigrate') this.autostart = true;
    else if (this.runState !== 'running' && this.runState !== 'finish-migrate') this.resumeGuest();
  }

  quit(): void {
    this.emit({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
    // The reply goes out first; the owner ends the process on the next turn.
    setImmediate(() => (this.hooks.onQuit ?? (() => void this.close()))());
  }

  // ---- migration ----------------------------------------------------------------------------

  /** TLS options of the current tls-creds parameter for `endpoint`, or none. */
  private tlsOptions(endpoint: TlsEndpoint): OpenOptions {
    const id = this.parameters.tlsCreds;
    if (id === '') return {};
    const spec = this.config.tlsCreds.find((c) => c.id === id);
    if (spec === undefined) throw vmError(`No TLS credentials with id '${id}'`);
    if (spec.endpoint !== endpoint) throw vmError(`Expecting TLS credentials with a ${endpoint} endpoint`);
    try {
      const tls = loadTlsCreds(spec.dir, endpoint, spec.verifyPeer);
      return { tls, tlsHostname: this.parameters.tlsHostname === '' ? undefined : this.parameters.tlsHostname };
    } catch (error) {
      throw vmError((error as Error).message);
    }
  }

  migrate(args: MigrateArgs): void {
    if (args.resume === true) return this.resumeOutgoing(args);
    if (this.outgoing !== null && isRunningStatus(this.outgoing.status)) throw vmError(MIGRATION_IN_PROGRESS_TEXT);
    if (this.runState === 'inmigrate') throw vmError('Guest is waiting for an incoming migration');
    if (this.runState === 'postmigrate') throw vmError("Can't migrate the vm that was paused due to previous migration");
    if (args.blk === true || args.inc === true) throw vmError('livemig does not migrate block devices');
    checkUri(args.uri);
    if (this.capabilities['postcopy-preempt'] && multifdUriRefusal(args.uri) !== null) throw vmError(PREEMPT_NEEDS_CHANNELS_TEXT);
    const multifdRefusal = this.capabilities.multifd ? multifdUriRefusal(args.uri) : null;
    if (multifdRefusal !== null) throw vmError(multifdRefusal);
    const open = this.tlsOptions('client');
    try {
      this.startOutgoing(args.uri, open);
    } catch (error) {
      this.machine.devices.setSourceMigrating(false);
      throw vmError((error as Error).message);
    }
  }

  async migrateIncoming(args: { readonly uri: string }): Promise<void> {
    if (this.incomingStarted) throw vmError('The incoming migration has already been started');
    if (this.runState !== 'inmigrate' || !this.incomingDefer) throw vmError("'-incoming' was not specified on the command line");
    try {
      parseMigrationUri(args.uri);
    } catch (error) {
      throw vmError(error instanceof TransportError && error.code === TRANSPORT_ERR_BAD_URI ? `unknown migration protocol: ${args.uri}` : (error as Error).message);
    }
    const open = this.tlsOptions('server');
    this.incomingStarted = true;
    try {
      await this.listenIncoming(args.uri, open);
    } catch (error) {
      throw vmError((error as Error).message);
    }
  }

  migrateSetCapabilities(args: { readonly capabilities: readonly MigrationCapabilityStatus[] }): void {
    if (this.outgoing !== null && isRunningStatus(this.outgoing.status)) throw vmError(MIGRATION_IN_PROGRESS_TEXT);
    const probeVeto = this.runState === 'inmigrate' ? this.machine.devices.postcopyNotify('probe') : null;
    const result = applyCapabilities(this.capabilities, args.capabilities, {
      ...DEFAULT_CAPABILITY_CONTEXT,
      incoming: this.runState === 'inmigrate',
      postcopySupportedByHost: probeVeto === null,
      multifdCompression: this.parameters.multifdCompression,
      tlsEnabled: this.parameters.tlsCreds !== '',
    });
    if (!result.ok) {
      const reports = result.error.desc === 'Postcopy is not supported' && probeVeto !== null ? [probeVeto] : [];
      for (const line of reports) this.report(line);
      throw vmError(result.error.desc, reports);
    }
    this.capabilities = result.value;
  }

  queryMigrateCapabilities(): MigrationCapabilityStatus[] {
    return queryMigrateCapabilities(this.capabilities);
  }

  migrateSetParameters(args: MigrateSetParameters): void {
    const result = applySetParameters(this.parameters, args, { zeroCopySend: this.capabilities['zero-copy-send'] });
    if (!result.ok) throw vmError(result.error.desc);
    this.parameters = result.value;
    this.outgoing?.setParameters(result.value);
  }

  queryMigrateParameters(): MigrationParametersQmp {
    return toQueryMigrateParameters(this.parameters);
  }

  queryMigrate(): MigrationInfoQmp {
    const now = this.nowNs();
    const incoming = this.incoming;
    let destination: MigrationInfoQmp = {};
    if (incoming !== null) {
      const status = incoming.status === 'none' ? 'setup' : incoming.status;
      const address = isFinalStatus(status) ? undefined : incoming.socketAddress();
      destination = status === 'completed' ? incoming.engine.queryMigrate(now) : toDestinationQueryMigrate(status, { socketAddress: address });
    }
    const source = this.outgoing === null ? {} : this.outgoing.engine.queryMigrate(now);
    return mergeQueryMigrate(destination, source);
  }

  migrateStartPostcopy(): void {
    if (!this.capabilities['postcopy-ram']) throw vmError('Enable postcopy with migrate_set_capability before the start of migration');
    if (this.outgoing === null) throw vmError('Postcopy must be started after migration has been started');
    const refusal = this.outgoing.startPostcopy();
    if (refusal !== null) throw vmError(refusal);
  }

  migrateCancel(): void {
    this.outgoing?.cancel();
  }

  migrateContinue(_args: { readonly state: MigrationStatus }): void {
    throw vmError(`Migration not in expected state: ${this.outgoing?.status ?? 'none'}`);
  }

  /** `migrate` with resume: QEMU's migrate_prepare checks, then a new connection to `uri`. */
  private resumeOutgoing(args: MigrateArgs): void {
    const outgoing = this.outgoing;
    if (outgoing === null || outgoing.status !== 'postcopy-paused') throw vmError('Cannot resume if there is no paused migration');
    if (this.capabilities['postcopy-preempt']) throw vmError("livemig's real shell does not resume a postcopy-preempt migration yet");
    checkUri(args.uri);
    const refusal = outgoing.resume(args.uri, this.tlsOptions('client'));
    if (refusal !== null) throw vmError(refusal);
  }

  /** `migrate-pause`: the outgoing migration if it is postcopy-active, else the incoming one. */
  migratePause(): void {
    if (this.outgoing?.status === 'postcopy-active') {
      const refusal = this.outgoing.pause();
      if (refusal !== null) throw vmError(refusal);
      return;
    }
    const incoming = this.incoming;
    if (incoming?.status === 'postcopy-active') {
      const result = incoming.engine.migratePause(this.nowNs());
      if (result.error !== null) throw vmError(result.error.message);
      incoming.applyResult(result);
      return;
    }
    throw vmError('migrate-pause is currently only supported during postcopy-active state');
  }

  /** `migrate-recover URI` on a paused destination: listens on `uri` for the resumed source. */
  async migrateRecover(args: { readonly uri: string }): Promise<void> {
    const incoming = this.incoming;
    if (incoming === null) throw vmError('Migrate recover can only be run when postcopy is paused.');
    checkUri(args.uri);
    const open = this.tlsOptions('server');
    let refusal: string | null;
    try {
      refusal = await incoming.recover(args.uri, open);
    } catch (error) {
      throw vmError((error as Error).message);
    }
    if (refusal !== null) throw vmError(refusal);
  }

  // ---- balloon and memory ---------------------------------------------------------------------

  balloon(args: { readonly value: number }): void {
    if (this.machine.devices.balloon === null) throw new VmCommandError('DeviceNotActive', 'No balloon device has been activated');
    if (args.value <= 0) throw invalidParameter('target', 'a size');
    this.machine.devices.setBalloonTarget(Math.min(args.value, this.config.ramSizeBytes));
  }

  queryBalloon(): BalloonInfo {
    const actual = this.machine.devices.balloonActualBytes();
    if (actual === null) throw new VmCommandError('DeviceNotActive', 'No balloon device has been activated');
    return { actual };
  }

  /** `pmemsave`: guest-physical [val, val + size) into `filename`; bytes past RAM read as zero. */
  async pmemsave(args: PmemsaveArgs): Promise<void> {
    const ramBytes = this.machine.backing.sizeBytes;
    const end = Math.min(ramBytes, args.val + args.size);
    if (args.val < end) await this.faultIn(Math.floor(args.val / TARGET_PAGE_SIZE), Math.ceil(end / TARGET_PAGE_SIZE));
    let fd: number;
    try {
      fd = openSync(args.filename, 'w', 0o600);
    } catch (error) {
      throw vmError(`Could not open '${args.filename}': ${(error as NodeJS.ErrnoException).message.replace(/^[A-Z]+: /, '')}`);
    }
    try {
      const bytes = this.machine.backing.bytes;
      if (args.val < end) writeSync(fd, bytes, args.val, end - args.val);
      const tail = args.size - Math.max(0, end - args.val);
      if (tail > 0) writeSync(fd, new Uint8Array(tail));
    } finally {
      closeSync(fd);
    }
  }

  /** On a postcopy destination, requests the missing pages of [startPage, endPage) and waits. */
  private async faultIn(startPage: number, endPage: number): Promise<void> {
    const incoming = this.incoming;
    const received = this.machine.received;
    if (incoming === null || incoming.status !== 'postcopy-active') return;
    const deadline = Date.now() + PMEMSAVE_FAULT_TIMEOUT_MS;
    for (let page = startPage; page < endPage; page++) {
      if (received.isReceived(page)) continue;
      incoming.onGuestFault(0, page);
      while (!received.isReceived(page) && incoming.status === 'postcopy-active') {
        if (Date.now() > deadline) throw vmError(`pmemsave: page ${page} did not arrive`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    }
  }
}

/** Refuses a URI with no known migration protocol, with QEMU's text. */
function checkUri(uri: string): void {
  try {
    parseMigrationUri(uri);
  } catch (error) {
    if (error instanceof TransportError && error.code === TRANSPORT_ERR_BAD_URI) throw invalidParameter('uri', 'a valid migration protocol');
    throw vmError((error as Error).message);
  }
}
