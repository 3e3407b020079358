/**
 * The error codes of the main-stream codec (decoder and encoder), with the decoder's limits.
 * Every failure is a FormatError carrying one of these codes; `STREAM_ERROR_CODES` lists them
 * all so a test can check that each one is produced somewhere.
 */

/** The magic is not "QEVM" (QEMU: "Not a migration stream"). */
export const MIG_ERR_BAD_MAGIC = 'MIG_ERR_BAD_MAGIC';
/** Version 2 (QEMU: "SaveVM v2 format is obsolete and don't work anymore"). */
export const MIG_ERR_OBSOLETE_VERSION = 'MIG_ERR_OBSOLETE_VERSION';
/** Any version other than 2 or 3 (QEMU: "Unsupported migration stream version"). */
export const MIG_ERR_UNSUPPORTED_VERSION = 'MIG_ERR_UNSUPPORTED_VERSION';
/** The input ended inside a record or before EOF. */
export const MIG_ERR_TRUNCATED = 'MIG_ERR_TRUNCATED';
/** A malformed, missing or misplaced CONFIGURATION record. */
export const MIG_ERR_CONFIG = 'MIG_ERR_CONFIG';
/** A type byte that is not valid where it appears. */
export const MIG_ERR_UNKNOWN_TYPE = 'MIG_ERR_UNKNOWN_TYPE';
/** The byte after a section payload is not 0x7e. */
export const MIG_ERR_FOOTER_MISSING = 'MIG_ERR_FOOTER_MISSING';
/** The footer names another section id than the header. */
export const MIG_ERR_FOOTER_MISMATCH = 'MIG_ERR_FOOTER_MISMATCH';
/** PART/END with a section id no START/FULL introduced. */
export const MIG_ERR_UNKNOWN_SECTION = 'MIG_ERR_UNKNOWN_SECTION';
/** A section whose version this decoder does not load (ram ≠ 4, timer ≠ 2, globalstate ≠ 1). */
export const MIG_ERR_SECTION_VERSION = 'MIG_ERR_SECTION_VERSION';
/** A device section with no decoder for its layout (no VMDESCRIPTION-driven decoder given). */
export const MIG_ERR_OPAQUE_SECTION = 'MIG_ERR_OPAQUE_SECTION';
/** A device payload that is malformed or that the device decoder rejected. */
export const MIG_ERR_DEVICE_STATE = 'MIG_ERR_DEVICE_STATE';
/** A RAM record with an unknown flag combination. */
export const MIG_ERR_RAM_FLAGS = 'MIG_ERR_RAM_FLAGS';
/** A RAM record kind this decoder deliberately does not support (XBZRLE, COMPRESS_PAGE, ...). */
export const MIG_ERR_RAM_UNSUPPORTED = 'MIG_ERR_RAM_UNSUPPORTED';
/** CONTINUE with no block named before (QEMU: "Ack, bad migration stream!"). */
export const MIG_ERR_RAM_NO_BLOCK = 'MIG_ERR_RAM_NO_BLOCK';
/** A block name not in the MEM_SIZE list (QEMU: "Can't find block %s"). */
export const MIG_ERR_RAM_UNKNOWN_BLOCK = 'MIG_ERR_RAM_UNKNOWN_BLOCK';
/** A page or range beyond the block's used length (QEMU: "Illegal RAM offset"). */
export const MIG_ERR_RAM_OFFSET = 'MIG_ERR_RAM_OFFSET';
/** A discard range not aligned to the target page size. */
export const MIG_ERR_RAM_MISALIGNED = 'MIG_ERR_RAM_MISALIGNED';
/** A malformed MEM_SIZE block list (lengths overshoot the total, duplicate names, misplaced). */
export const MIG_ERR_RAM_BLOCKS = 'MIG_ERR_RAM_BLOCKS';
/** Command 0 or a number past the last 7.2 command. */
export const MIG_ERR_COMMAND_UNKNOWN = 'MIG_ERR_COMMAND_UNKNOWN';
/** A command payload length that its command does not allow. */
export const MIG_ERR_COMMAND_LENGTH = 'MIG_ERR_COMMAND_LENGTH';
/** A command payload with bad content (discard version, missing NUL, ...). */
export const MIG_ERR_COMMAND_PAYLOAD = 'MIG_ERR_COMMAND_PAYLOAD';
/** A postcopy command in the wrong postcopy state (QEMU: "CMD_POSTCOPY_* in wrong postcopy state"). */
export const MIG_ERR_POSTCOPY_STATE = 'MIG_ERR_POSTCOPY_STATE';
/** PACKAGED misuse: nested package, a record crossing the package end. */
export const MIG_ERR_PACKAGED = 'MIG_ERR_PACKAGED';
/** A length or count beyond a configured limit. */
export const MIG_ERR_LIMIT = 'MIG_ERR_LIMIT';
/** Bytes after EOF that are not a VMDESCRIPTION, or after the VMDESCRIPTION. */
export const MIG_ERR_TRAILING = 'MIG_ERR_TRAILING';
/** A 64-bit field above 2^53 - 1 where a size or offset is expected. */
export const MIG_ERR_INTEGER_RANGE = 'MIG_ERR_INTEGER_RANGE';
/** The sink threw; the original exception propagates and this becomes the sticky error. */
export const MIG_ERR_CALLBACK = 'MIG_ERR_CALLBACK';
/** push() after end(). */
export const MIG_ERR_USAGE = 'MIG_ERR_USAGE';
/** The encoder was asked to write something the format cannot express. */
export const MIG_ERR_ENCODE = 'MIG_ERR_ENCODE';

export const STREAM_ERROR_CODES: readonly string[] = [
  MIG_ERR_BAD_MAGIC,
  MIG_ERR_OBSOLETE_VERSION,
  MIG_ERR_UNSUPPORTED_VERSION,
  MIG_ERR_TRUNCATED,
  MIG_ERR_CONFIG,
  MIG_ERR_UNKNOWN_TYPE,
  MIG_ERR_FOOTER_MISSING,
  MIG_ERR_FOOTER_MISMATCH,
  MIG_ERR_UNKNOWN_SECTION,
  MIG_ERR_SECTION_VERSION,
  MIG_ERR_OPAQUE_SECTION,
  MIG_ERR_DEVICE_STATE,
  MIG_ERR_RAM_FLAGS,
  MIG_ERR_RAM_UNSUPPORTED,
  MIG_ERR_RAM_NO_BLOCK,
  MIG_ERR_RAM_UNKNOWN_BLOCK,
  MIG_ERR_RAM_OFFSET,
  MIG_ERR_RAM_MISALIGNED,
  MIG_ERR_RAM_BLOCKS,
  MIG_ERR_COMMAND_UNKNOWN,
  MIG_ERR_COMMAND_LENGTH,
  MIG_ERR_COMMAND_PAYLOAD,
  MIG_ERR_POSTCOPY_STATE,
  MIG_ERR_PACKAGED,
  MIG_ERR_LIMIT,
  MIG_ERR_TRAILING,
  MIG_ERR_INTEGER_RANGE,
  MIG_ERR_CALLBACK,
  MIG_ERR_USAGE,
  MIG_ERR_ENCODE,
];

/** Bounds on every length field the decoder reads; all have defaults (DEFAULT_STREAM_LIMITS). */
export interface StreamLimits {
  /** Longest machine type name in CONFIGURATION. */
  readonly maxMachineNameBytes: number;
  /** Most capability names in the CONFIGURATION capabilities subsection. */
  readonly maxCapabilities: number;
  /** Longest VMDESCRIPTION JSON. */
  readonly maxVmdescriptionBytes: number;
  /** Longest PACKAGED nested stream. */
  readonly maxPackagedBytes: number;
  /** Most bytes buffered while waiting for a complete device section. */
  readonly maxDeviceSectionBytes: number;
  /** Most RAM blocks in a MEM_SIZE list. */
  readonly maxRamBlocks: number;
  /** Largest total RAM a MEM_SIZE list may announce. */
  readonly maxTotalRamBytes: number;
  /** Most ranges in one POSTCOPY_RAM_DISCARD command (QEMU sends at most 12). */
  readonly maxDiscardRanges: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  maxMachineNameBytes: 256,
  maxCapabilities: 64,
  maxVmdescriptionBytes: 16 * 1024 * 1024,
  maxPackagedBytes: 256 * 1024 * 1024,
  maxDeviceSectionBytes: 64 * 1024 * 1024,
  maxRamBlocks: 4096,
  maxTotalRamBytes: 16 * 1024 * 1024 * 1024 * 1024,
  maxDiscardRanges: 12,
};
