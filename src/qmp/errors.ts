/**
 * The typed error of QMP commands: QEMU's `{"class", "desc"}` pair, plus the lines QEMU would
 * have printed with error_report() before failing (they go to stderr under QMP and to the
 * monitor under HMP, which is how the refuse policy's two-line HMP output comes about).
 *
 * Controllers throw (or reject with) QmpCommandError; the dispatcher turns it into an error
 * reply, and HMP into "detail\r\nError: desc\r\n".
 */

/** QEMU 7.2's QapiErrorClass values. */
export const QMP_ERROR_CLASSES = ['GenericError', 'CommandNotFound', 'DeviceNotActive', 'DeviceNotFound', 'KVMMissingCap'] as const;

export type QmpErrorClass = (typeof QMP_ERROR_CLASSES)[number];

/** The `error` member of a reply. */
export interface QmpErrorBody {
  readonly class: QmpErrorClass;
  readonly desc: string;
}

/** A command refused, with QEMU's class and text. */
export class QmpCommandError extends Error {
  override name = 'QmpCommandError';
  constructor(
    /** QEMU's error class. */
    readonly errorClass: QmpErrorClass,
    /** QEMU's exact text (also the message). */
    readonly desc: string,
    /**
     * Lines QEMU prints with error_report() before this error (without line ends): on stderr for
     * QMP, on the monitor for HMP. Example: the refuse policy's
     * "virtio-balloon: 'free-page-hint' does not support postcopy".
     */
    readonly reports: readonly string[] = [],
  ) {
    super(desc);
  }

  /** The `error` member of the reply. */
  toBody(): QmpErrorBody {
    return { class: this.errorClass, desc: this.desc };
  }
}

/** A GenericError, the class of nearly every QEMU error. */
export function genericError(desc: string, reports: readonly string[] = []): QmpCommandError {
  return new QmpCommandError('GenericError', desc, reports);
}

/** QEMU's QERR_INVALID_PARAMETER_VALUE: "Parameter '%s' expects %s". */
export function invalidParameterValue(name: string, expects: string): QmpCommandError {
  return genericError(`Parameter '${name}' expects ${expects}`);
}

/** True when `value` is a QmpCommandError (also across realms of the same module). */
export function isQmpCommandError(value: unknown): value is QmpCommandError {
  return value instanceof QmpCommandError;
}
