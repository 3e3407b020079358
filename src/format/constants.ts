/**
 * Numbers of QEMU 7.2's main migration stream: the file header, the top-level type bytes,
 * the RAM record flags and the COMMAND numbers, each with the layout of what follows it.
 * Every integer on the wire is big-endian. The decoder and the encoder share these so that
 * both sides agree by construction on the numbers, while their tests use literal bytes.
 */

/** File magic, ASCII "QEVM" (be32). */
export const QEMU_VM_FILE_MAGIC = 0x5145564d;
/** The only stream version QEMU 7.2 writes and reads (be32 after the magic). */
export const QEMU_VM_FILE_VERSION = 3;
/** The obsolete version that QEMU rejects with its own message. */
export const QEMU_VM_FILE_VERSION_COMPAT = 2;

/** Top-level type bytes (one u8 in front of every record). */
export const QEMU_VM_EOF = 0x00;
/** u8 type, be32 section_id, cstr8 idstr, be32 instance_id, be32 version_id, payload, footer. */
export const QEMU_VM_SECTION_START = 0x01;
/** u8 type, be32 section_id, payload, footer. */
export const QEMU_VM_SECTION_PART = 0x02;
/** u8 type, be32 section_id, payload, footer. */
export const QEMU_VM_SECTION_END = 0x03;
/** Same layout as START; the complete state of a non-iterable device. */
export const QEMU_VM_SECTION_FULL = 0x04;
/** Only inside a vmstate payload: u8 0x05, cstr8 name, be32 version_id, fields. */
export const QEMU_VM_SUBSECTION = 0x05;
/** After EOF: u8 0x06, be32 length, JSON text without a terminator. */
export const QEMU_VM_VMDESCRIPTION = 0x06;
/** Right after the header: be32 name length, machine name, then optional subsections. */
export const QEMU_VM_CONFIGURATION = 0x07;
/** u8 0x08, be16 command, be16 payload length L, L payload bytes. */
export const QEMU_VM_COMMAND = 0x08;
/** Trailer of every section: u8 0x7e, be32 section_id (the same id as the header). */
export const QEMU_VM_SECTION_FOOTER = 0x7e;

/** Section header sizes without the idstr bytes. */
export const SECTION_FULL_HEADER_FIXED_BYTES = 1 + 4 + 1 + 4 + 4;
export const SECTION_SHORT_HEADER_BYTES = 1 + 4;
export const SECTION_FOOTER_BYTES = 1 + 4;

/** The idstr and version of the RAM handler; the loader refuses any other version. */
export const RAM_SECTION_IDSTR = 'ram';
export const RAM_SECTION_VERSION = 4;

/** `timer` (version 2): int64 cpu_ticks_offset, 8 unused bytes, int64 cpu_clock_offset. */
export const TIMER_SECTION_IDSTR = 'timer';
export const TIMER_SECTION_VERSION = 2;
export const TIMER_PAYLOAD_BYTES = 24;

/** `globalstate` (version 1): be32 size (= strlen + 1), 100-byte NUL-padded runstate name. */
export const GLOBALSTATE_SECTION_IDSTR = 'globalstate';
export const GLOBALSTATE_SECTION_VERSION = 1;
export const GLOBALSTATE_RUNSTATE_BYTES = 100;

/** CONFIGURATION subsection names (each version 1). */
export const CONFIG_SUBSECTION_PAGE_BITS = 'configuration/target-page-bits';
export const CONFIG_SUBSECTION_CAPABILITIES = 'configuration/capabilities';
export const CONFIG_SUBSECTION_UUID = 'configuration/uuid';
export const CONFIG_UUID_BYTES = 16;

/**
 * RAM record flags: the low bits (below the target page size) of the be64 word that starts
 * every RAM record; the high bits are the page offset within the block.
 */
/** Obsolete, never sent; rejected on load. */
export const RAM_SAVE_FLAG_FULL = 0x001;
/** Followed by a u8 fill byte (QEMU always sends 0). Historical name COMPRESS. */
export const RAM_SAVE_FLAG_ZERO = 0x002;
/** Setup chunk: the word's high bits hold the total RAM size; then the block list. */
export const RAM_SAVE_FLAG_MEM_SIZE = 0x004;
/** Followed by one target page of raw bytes. */
export const RAM_SAVE_FLAG_PAGE = 0x008;
/** Ends every RAM chunk (setup, each PART, END). */
export const RAM_SAVE_FLAG_EOS = 0x010;
/** Modifier: the block name is omitted; the block is the one named last. */
export const RAM_SAVE_FLAG_CONTINUE = 0x020;
/** u8 0x01, be16 n, n bytes of XBZRLE delta (not supported here). */
export const RAM_SAVE_FLAG_XBZRLE = 0x040;
/** RDMA control hook (not supported here). */
export const RAM_SAVE_FLAG_HOOK = 0x080;
/** be32 n, n bytes of zlib data (capability `compress`; not supported here). */
export const RAM_SAVE_FLAG_COMPRESS_PAGE = 0x100;
/** QEMU 8.1+ only (not supported here). */
export const RAM_SAVE_FLAG_MULTIFD_FLUSH = 0x200;
/** Every flag bit QEMU has ever defined; any other bit is an unknown combination. */
export const RAM_SAVE_FLAGS_KNOWN = 0x3ff;

/** Names of the RAM flags, for messages. */
export const RAM_FLAG_NAMES: ReadonlyMap<number, string> = new Map([
  [RAM_SAVE_FLAG_FULL, 'FULL'],
  [RAM_SAVE_FLAG_ZERO, 'ZERO'],
  [RAM_SAVE_FLAG_MEM_SIZE, 'MEM_SIZE'],
  [RAM_SAVE_FLAG_PAGE, 'PAGE'],
  [RAM_SAVE_FLAG_EOS, 'EOS'],
  [RAM_SAVE_FLAG_CONTINUE, 'CONTINUE'],
  [RAM_SAVE_FLAG_XBZRLE, 'XBZRLE'],
  [RAM_SAVE_FLAG_HOOK, 'HOOK'],
  [RAM_SAVE_FLAG_COMPRESS_PAGE, 'COMPRESS_PAGE'],
  [RAM_SAVE_FLAG_MULTIFD_FLUSH, 'MULTIFD_FLUSH'],
]);

/** Default target page size (x86_64) and the range of page bits a configuration may carry. */
export const DEFAULT_TARGET_PAGE_BITS = 12;
export const MIN_TARGET_PAGE_BITS = 10;
export const MAX_TARGET_PAGE_BITS = 21;

/** COMMAND numbers (be16 after the 0x08 type byte). */
export const MIG_CMD_INVALID = 0;
/** Payload length 0. */
export const MIG_CMD_OPEN_RETURN_PATH = 1;
/** Payload: be32 value, echoed back as PONG. */
export const MIG_CMD_PING = 2;
/** Payload: be64 ram_pagesize_summary, be64 target page size (16 bytes), or empty. */
export const MIG_CMD_POSTCOPY_ADVISE = 3;
/** Payload length 0. */
export const MIG_CMD_POSTCOPY_LISTEN = 4;
/** Payload length 0. */
export const MIG_CMD_POSTCOPY_RUN = 5;
/** Payload: u8 version 0, cstr8 block name, u8 0, then k × (be64 start, be64 length), k ≤ 12. */
export const MIG_CMD_POSTCOPY_RAM_DISCARD = 6;
/** Payload: be32 L; the L bytes after the command are a nested stream without header. */
export const MIG_CMD_PACKAGED = 7;
/** Payload length 0. */
export const MIG_CMD_ENABLE_COLO = 8;
/** Payload length 0. */
export const MIG_CMD_POSTCOPY_RESUME = 9;
/** Payload: cstr8 block name; the length must equal 1 + name length. */
export const MIG_CMD_RECV_BITMAP = 10;
/** QEMU 10.0+ only (length 0); a 7.2 destination rejects it as unknown. */
export const MIG_CMD_SWITCHOVER_START = 11;
/** One past the last command a 7.2 destination knows. */
export const MIG_CMD_MAX_7_2 = 11;

export const MIG_CMD_NAMES: readonly string[] = [
  'INVALID',
  'OPEN_RETURN_PATH',
  'PING',
  'POSTCOPY_ADVISE',
  'POSTCOPY_LISTEN',
  'POSTCOPY_RUN',
  'POSTCOPY_RAM_DISCARD',
  'PACKAGED',
  'ENABLE_COLO',
  'POSTCOPY_RESUME',
  'RECV_BITMAP',
  'SWITCHOVER_START',
];

/** The POSTCOPY_RAM_DISCARD payload version byte. */
export const POSTCOPY_RAM_DISCARD_VERSION = 0;
/** At most this many ranges in one POSTCOPY_RAM_DISCARD command. */
export const POSTCOPY_RAM_DISCARD_MAX_RANGES = 12;
/** The smallest valid POSTCOPY_RAM_DISCARD payload (version, name length, 1 name byte, NUL, one range). */
export const POSTCOPY_RAM_DISCARD_MIN_BYTES = 20;
/** The POSTCOPY_ADVISE payload length when RAM postcopy is advised. */
export const POSTCOPY_ADVISE_BYTES = 16;
