/**
 * Typed decoding and encoding errors of the format layer. Every error has a stable `code`
 * (MIG_ERR_*), names the byte offset where it was detected and, where one is open, the
 * section it belongs to. Decoders make their first error sticky: once failed, every later
 * push fails with the same error.
 *
 * Each module of this layer declares the codes it can raise next to its code; `FormatError`
 * is the one class they all use, so callers switch on `code`.
 */
export interface ErrorSection {
  readonly idstr: string;
  readonly sectionId: number;
}

export class FormatError extends Error {
  override name = 'FormatError';
  constructor(
    /** Stable machine-readable code, e.g. MIG_ERR_BAD_MAGIC. */
    readonly code: string,
    message: string,
    /** Absolute byte offset in the stream where the problem was detected. */
    readonly offset: number,
    /** The section being decoded, when there is one. */
    readonly section: ErrorSection | null = null,
  ) {
    super(section === null ? `${message} (at byte ${offset})` : `${message} (at byte ${offset}, section '${section.idstr}' id ${section.sectionId})`);
  }

  toJSON(): object {
    return { code: this.code, message: this.message, offset: this.offset, section: this.section };
  }
}
