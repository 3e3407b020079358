/**
 * The typed error of capability and parameter handling. Its message is QEMU 7.2's `desc` text,
 * byte for byte, so the QMP layer can reply `{"error": {"class": "GenericError", "desc": ...}}`
 * without rewording; `code` is a stable machine-readable reason for everything else.
 *
 * What it deliberately doesn't do: know about QMP framing or HMP's `Error: ` prefix.
 */
import type { z } from 'zod';

/** Stable codes of parameter and capability errors. */
export type ParamErrorCode =
  /** A `migrate-set-parameters` argument has the wrong type or an out-of-range value. */
  | 'MIG_ERR_INVALID_PARAMETER'
  /** A `migrate-set-capabilities` list element is malformed or names no capability. */
  | 'MIG_ERR_INVALID_CAPABILITY'
  /** Capabilities that cannot be on together, or one the host cannot support. */
  | 'MIG_ERR_CAPABILITY_CONFLICT';

export class ParamError extends Error {
  override name = 'ParamError';
  /** QMP error class QEMU uses for all of these. */
  readonly qmpClass = 'GenericError';
  constructor(
    /** Stable machine-readable code. */
    readonly code: ParamErrorCode,
    /** QEMU's exact error text (also the message). */
    readonly desc: string,
  ) {
    super(desc);
  }
}

/** A value, or the ParamError that refused it. */
export type ParamResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ParamError };

/** The text of the first issue of a zod error: the problem QEMU would have reported first. */
export function firstIssueText(error: z.ZodError): string {
  return error.issues[0]?.message ?? 'invalid input';
}
