/**
 * The shapes a real-mode VM answers in: QEMU 7.2's RunState names, the QAPI replies of its
 * control commands, the events it emits, and its typed command error. They are QEMU's
 * (qapi/run-state.json, qapi/misc.json, qapi/migration.json); qmp/controller.ts re-exports
 * them (the host layer sits below qmp: qmp may import host, not the other way round). The QMP adapter (cli/vm-command.ts) is where the
 * compiler checks that a LivemigVm is a VmController, and where VmCommandError becomes
 * QmpCommandError.
 */
import type { MigrationStatus } from '../core/status.ts';

/** QEMU 7.2's RunState values (qapi/run-state.json), in enum order. */
export const RUN_STATES = [
  'debug', 'inmigrate', 'internal-error', 'io-error', 'paused', 'postmigrate', 'prelaunch', 'finish-migrate',
  'restore-vm', 'running', 'save-vm', 'shutdown', 'suspended', 'watchdog', 'guest-panicked', 'colo',
] as const;

export type RunState = (typeof RUN_STATES)[number];

/** `query-status`. */
export interface StatusInfo {
  readonly status: RunState;
  readonly singlestep: boolean;
  readonly running: boolean;
}

/** `query-version`. */
export interface VersionInfo {
  readonly qemu: { readonly major: number; readonly minor: number; readonly micro: number };
  readonly package: string;
}

/** `query-balloon`. */
export interface BalloonInfo {
  readonly actual: number;
}

/** `migrate` arguments. */
export interface MigrateArgs {
  readonly uri: string;
  readonly blk?: boolean;
  readonly inc?: boolean;
  readonly detach?: boolean;
  readonly resume?: boolean;
}

/** `pmemsave` arguments. */
export interface PmemsaveArgs {
  readonly val: number;
  readonly size: number;
  readonly filename: string;
}

/** The events a VM emits, with their QAPI data. */
export type VmEvent =
  | { readonly event: 'MIGRATION'; readonly data: { readonly status: MigrationStatus } }
  | { readonly event: 'MIGRATION_PASS'; readonly data: { readonly pass: number } }
  | { readonly event: 'STOP' }
  | { readonly event: 'RESUME' }
  | { readonly event: 'BALLOON_CHANGE'; readonly data: { readonly actual: number } }
  | { readonly event: 'SHUTDOWN'; readonly data: { readonly guest: boolean; readonly reason: string } };

export type VmEventListener = (event: VmEvent) => void;

/** QEMU's error classes a VM command can fail with. */
export type VmErrorClass = 'GenericError' | 'DeviceNotActive';

/** A refused command: QEMU's class and exact text, plus lines QEMU prints with error_report. */
export class VmCommandError extends Error {
  override name = 'VmCommandError';
  constructor(
    readonly errorClass: VmErrorClass,
    readonly desc: string,
    readonly reports: readonly string[] = [],
  ) {
    super(desc);
  }
}

/** A GenericError. */
export function vmError(desc: string, reports: readonly string[] = []): VmCommandError {
  return new VmCommandError('GenericError', desc, reports);
}

/** QEMU's QERR_INVALID_PARAMETER_VALUE. */
export function invalidParameter(name: string, expects: string): VmCommandError {
  return vmError(`Parameter '${name}' expects ${expects}`);
}
