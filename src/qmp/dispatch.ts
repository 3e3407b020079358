/**
 * Request → controller call → reply, pure. Mirrors QEMU 7.2's qmp_dispatch and its monitor
 * wrapper:
 * 1. the command is looked up in the connection's command list: before negotiation only
 *    `qmp_capabilities` exists (CommandNotFound `The command %s has not been found`);
 * 2. `exec-oob` of a command without allow-oob: `The command %s does not support OOB`;
 * 3. arguments are visited (schema.ts, QEMU's texts); 4. the command runs;
 * 5. before negotiation every CommandNotFound reply reads `Expecting capabilities negotiation
 *    with 'qmp_capabilities'` (QEMU rewrites the desc the same way).
 *
 * `qmp_capabilities`, `query-commands` and `human-monitor-command` are answered here; the rest
 * call the VmController. A controller exception that is not a QmpCommandError becomes a
 * GenericError carrying its message and is reported to `onInternalError`.
 */
import type { MaybePromise, VmController } from './controller.ts';
import { QmpCommandError, invalidParameterValue, type QmpErrorBody } from './errors.ts';
import { runHmp } from './hmp.ts';
import { attemptMaybe, thenMaybe } from './maybe.ts';
import type { NegotiationState, QmpReply, QmpRequest } from './protocol.ts';
import { COMMANDS, COMMAND_NAMES, isCommandName, parseCommandArgs, type CommandArgs, type CommandName } from './schema.ts';

/** QEMU's desc for any CommandNotFound before negotiation. */
export const NEGOTIATION_REQUIRED_TEXT = "Expecting capabilities negotiation with 'qmp_capabilities'";

/** QEMU 7.2's text for `qmp_capabilities` after negotiation (class CommandNotFound). */
export const ALREADY_NEGOTIATED_TEXT = 'Capabilities negotiation is already complete, command ignored';

type Handler<N extends CommandName> = (controller: VmController, args: CommandArgs<N>) => MaybePromise<unknown>;

/** The controller call of each command; undefined results become `{}`. */
const HANDLERS: { readonly [N in Exclude<CommandName, 'qmp_capabilities' | 'query-commands' | 'human-monitor-command'>]: Handler<N> } = {
  'query-status': (c) => c.queryStatus(),
  stop: (c) => c.stop(),
  cont: (c) => c.cont(),
  quit: (c) => c.quit(),
  migrate: (c, a) => c.migrate(a),
  'migrate-incoming': (c, a) => c.migrateIncoming(a),
  'migrate-set-capabilities': (c, a) => c.migrateSetCapabilities(a),
  'query-migrate-capabilities': (c) => c.queryMigrateCapabilities(),
  'migrate-set-parameters': (c, a) => c.migrateSetParameters(a),
  'query-migrate-parameters': (c) => c.queryMigrateParameters(),
  'query-migrate': (c) => c.queryMigrate(),
  'migrate-start-postcopy': (c) => c.migrateStartPostcopy(),
  migrate_cancel: (c) => c.migrateCancel(),
  'migrate-continue': (c, a) => c.migrateContinue(a),
  'migrate-pause': (c) => c.migratePause(),
  'migrate-recover': (c, a) => c.migrateRecover(a),
  balloon: (c, a) => c.balloon(a),
  'query-balloon': (c) => c.queryBalloon(),
  pmemsave: (c, a) => c.pmemsave(a),
  'query-version': (c) => c.queryVersion(),
};

/** A refused command, kept apart from any value a controller could return. */
class Failure {
  constructor(readonly body: QmpErrorBody) {}
}

/** Options of the dispatcher. */
export interface DispatcherOptions {
  /** Called with controller exceptions that are not QmpCommandError (bugs, to be logged). */
  readonly onInternalError?: (command: string, error: unknown) => void;
}

/** Runs checked requests of one or many connections against one controller. */
export class QmpDispatcher {
  constructor(
    readonly controller: VmController,
    private readonly options: DispatcherOptions = {},
  ) {}

  /**
   * Executes `request` for a connection in state `state` (which `qmp_capabilities` updates).
   * Returns the reply, synchronously when the controller answers synchronously.
   */
  execute(state: NegotiationState, request: QmpRequest): MaybePromise<QmpReply> {
    const id = request.id;
    const result = attemptMaybe<unknown>(
      () => this.run(state, request),
      (error) => new Failure(this.errorBody(request.command, error)),
    );
    return thenMaybe(result, (outcome): QmpReply => {
      if (outcome instanceof Failure) return { kind: 'error', error: this.rewriteBeforeNegotiation(state, outcome.body), id };
      return { kind: 'return', value: outcome === undefined ? {} : outcome, id };
    });
  }

  private run(state: NegotiationState, request: QmpRequest): MaybePromise<unknown> {
    const name = request.command;
    const known = state.negotiated ? isCommandName(name) : name === 'qmp_capabilities';
    if (!known || !isCommandName(name)) {
      throw new QmpCommandError('CommandNotFound', `The command ${name} has not been found`);
    }
    if (request.oob && !COMMANDS[name].allowOob) {
      throw new QmpCommandError('GenericError', `The command ${name} does not support OOB`);
    }
    const parsed = parseCommandArgs(name, request.arguments);
    if (!parsed.ok) throw new QmpCommandError('GenericError', parsed.desc);
    return this.invoke(state, name, parsed.value);
  }

  private invoke<N extends CommandName>(state: NegotiationState, name: N, args: CommandArgs<N>): MaybePromise<unknown> {
    switch (name) {
      case 'qmp_capabilities':
        return this.negotiate(state, args as CommandArgs<'qmp_capabilities'>);
      case 'query-commands':
        return COMMAND_NAMES.map((command) => ({ name: command }));
      case 'human-monitor-command':
        return this.humanMonitorCommand(args as CommandArgs<'human-monitor-command'>);
      default: {
        const handler = HANDLERS[name as keyof typeof HANDLERS] as Handler<N>;
        return handler(this.controller, args);
      }
    }
  }

  /** QEMU's qmp_qmp_capabilities: OOB is the only capability, and we always offer it. */
  private negotiate(state: NegotiationState, args: CommandArgs<'qmp_capabilities'>): Record<string, never> {
    if (state.negotiated) throw new QmpCommandError('CommandNotFound', ALREADY_NEGOTIATED_TEXT);
    state.oobEnabled = (args.enable ?? []).includes('oob');
    state.negotiated = true;
    return {};
  }

  private humanMonitorCommand(args: CommandArgs<'human-monitor-command'>): MaybePromise<string> {
    const cpu = args['cpu-index'];
    if (cpu !== undefined && (cpu < 0 || cpu >= this.controller.cpuCount())) {
      throw invalidParameterValue('cpu-index', 'a CPU number');
    }
    return runHmp(this.controller, args['command-line']);
  }

  private errorBody(command: string, error: unknown): QmpErrorBody {
    if (error instanceof QmpCommandError) return error.toBody();
    this.options.onInternalError?.(command, error);
    const message = error instanceof Error ? error.message : String(error);
    return { class: 'GenericError', desc: message };
  }

  private rewriteBeforeNegotiation(state: NegotiationState, body: QmpErrorBody): QmpErrorBody {
    if (state.negotiated || body.class !== 'CommandNotFound') return body;
    return { class: 'CommandNotFound', desc: NEGOTIATION_REQUIRED_TEXT };
  }
}
