/**
 * The framing records of QEMU 7.2's main migration stream, the non-RAM half of StreamEncoder:
 * file header, CONFIGURATION, section headers and footers, EOF, the vmdescription, the
 * `timer` and `globalstate` device payloads, and the QEMU_VM_COMMAND records.
 */
import { ChunkWriter } from './chunk-writer.ts';
import type { Command, Configuration } from './stream-types.ts';
import {
  CONFIG_SUBSECTION_CAPABILITIES,
  CONFIG_SUBSECTION_PAGE_BITS,
  CONFIG_SUBSECTION_UUID,
  CONFIG_UUID_BYTES,
  GLOBALSTATE_RUNSTATE_BYTES,
  MIG_CMD_ENABLE_COLO,
  MIG_CMD_OPEN_RETURN_PATH,
  MIG_CMD_PACKAGED,
  MIG_CMD_PING,
  MIG_CMD_POSTCOPY_ADVISE,
  MIG_CMD_POSTCOPY_LISTEN,
  MIG_CMD_POSTCOPY_RAM_DISCARD,
  MIG_CMD_POSTCOPY_RESUME,
  MIG_CMD_POSTCOPY_RUN,
  MIG_CMD_RECV_BITMAP,
  POSTCOPY_RAM_DISCARD_MAX_RANGES,
  POSTCOPY_RAM_DISCARD_VERSION,
  QEMU_VM_COMMAND,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SECTION_PART,
  QEMU_VM_SECTION_START,
  QEMU_VM_SUBSECTION,
  QEMU_VM_VMDESCRIPTION,
} from './constants.ts';
import type { GlobalState, TimerState } from './sections.ts';

export class SectionWriter extends ChunkWriter {
  // --- file structure -------------------------------------------------------------------

  /** be32 magic "QEVM", be32 version 3. */
  header(): void {
    this.be32(QEMU_VM_FILE_MAGIC).be32(QEMU_VM_FILE_VERSION);
  }

  /** CONFIGURATION: be32 name length, name, then the subsections that are set. */
  configuration(configuration: Configuration): void {
    this.u8(QEMU_VM_CONFIGURATION).be32(configuration.machine.length).latin1(configuration.machine);
    if (configuration.targetPageBits !== undefined) {
      this.subsectionHeader(CONFIG_SUBSECTION_PAGE_BITS).be32(configuration.targetPageBits);
    }
    if (configuration.capabilities !== undefined) {
      this.subsectionHeader(CONFIG_SUBSECTION_CAPABILITIES).be32(configuration.capabilities.length);
      for (const name of configuration.capabilities) this.cstr8(name);
    }
    if (configuration.uuid !== undefined) {
      if (configuration.uuid.length !== CONFIG_UUID_BYTES) this.fail(`uuid must be ${CONFIG_UUID_BYTES} bytes`);
      this.subsectionHeader(CONFIG_SUBSECTION_UUID).bytes(configuration.uuid);
    }
  }

  private subsectionHeader(name: string): this {
    return this.u8(QEMU_VM_SUBSECTION).cstr8(name).be32(1);
  }

  sectionStart(sectionId: number, idstr: string, instanceId: number, versionId: number): void {
    this.u8(QEMU_VM_SECTION_START).be32(sectionId).cstr8(idstr).be32(instanceId).be32(versionId);
  }

  sectionFull(sectionId: number, idstr: string, instanceId: number, versionId: number): void {
    this.u8(QEMU_VM_SECTION_FULL).be32(sectionId).cstr8(idstr).be32(instanceId).be32(versionId);
  }

  sectionPart(sectionId: number): void {
    this.u8(QEMU_VM_SECTION_PART).be32(sectionId);
  }

  sectionEnd(sectionId: number): void {
    this.u8(QEMU_VM_SECTION_END).be32(sectionId);
  }

  /** u8 0x7e, be32 section id. */
  footer(sectionId: number): void {
    this.u8(QEMU_VM_SECTION_FOOTER).be32(sectionId);
  }

  eof(): void {
    this.u8(QEMU_VM_EOF);
  }

  /** u8 0x06, be32 length, the JSON as UTF-8. */
  vmdescription(json: string): void {
    const text = new TextEncoder().encode(json);
    this.u8(QEMU_VM_VMDESCRIPTION).be32(text.length).bytes(text);
  }

  // --- device payloads ------------------------------------------------------------------

  /** The `timer` v2 payload: int64 cpu_ticks_offset, 8 unused bytes, int64 cpu_clock_offset. */
  timerPayload(state: TimerState): void {
    this.be64Signed(state.cpu_ticks_offset).fill(0, 8).be64Signed(state.cpu_clock_offset);
  }

  /** The `globalstate` v1 payload: be32 strlen + 1, the name NUL-padded to 100 bytes. */
  globalstatePayload(state: Pick<GlobalState, 'runstate'>): void {
    const name = state.runstate;
    if (name.length >= GLOBALSTATE_RUNSTATE_BYTES) this.fail(`runstate '${name}' is longer than ${GLOBALSTATE_RUNSTATE_BYTES - 1} bytes`);
    this.be32(name.length + 1).latin1(name).fill(0, GLOBALSTATE_RUNSTATE_BYTES - name.length);
  }

  /** A whole FULL `timer` section (version 2) with footer. */
  timerSection(sectionId: number, state: TimerState): void {
    this.sectionFull(sectionId, 'timer', 0, 2);
    this.timerPayload(state);
    this.footer(sectionId);
  }

  /** A whole FULL `globalstate` section (version 1) with footer. */
  globalstateSection(sectionId: number, runstate: string): void {
    this.sectionFull(sectionId, 'globalstate', 0, 1);
    this.globalstatePayload({ runstate });
    this.footer(sectionId);
  }

  // --- commands ---------------------------------------------------------------------------

  /** Any command of facts §3.1; PACKAGED writes only the command (use `packaged` for the data). */
  command(command: Command): void {
    switch (command.kind) {
      case 'open-return-path':
        return this.commandHeader(MIG_CMD_OPEN_RETURN_PATH, 0);
      case 'ping':
        this.commandHeader(MIG_CMD_PING, 4);
        this.be32(command.value);
        return;
      case 'postcopy-advise':
        this.commandHeader(MIG_CMD_POSTCOPY_ADVISE, 16);
        this.be64(command.pageSizeSummary).be64(command.targetPageSize);
        return;
      case 'postcopy-advise-empty':
        return this.commandHeader(MIG_CMD_POSTCOPY_ADVISE, 0);
      case 'postcopy-listen':
        return this.commandHeader(MIG_CMD_POSTCOPY_LISTEN, 0);
      case 'postcopy-run':
        return this.commandHeader(MIG_CMD_POSTCOPY_RUN, 0);
      case 'postcopy-ram-discard': {
        if (command.ranges.length > POSTCOPY_RAM_DISCARD_MAX_RANGES || command.ranges.length === 0) {
          this.fail(`POSTCOPY_RAM_DISCARD takes 1..${POSTCOPY_RAM_DISCARD_MAX_RANGES} ranges, got ${command.ranges.length}`);
        }
        if (command.blockName.length === 0 || command.blockName.length > 255) this.fail('POSTCOPY_RAM_DISCARD block name must be 1..255 bytes');
        this.commandHeader(MIG_CMD_POSTCOPY_RAM_DISCARD, 3 + command.blockName.length + 16 * command.ranges.length);
        this.u8(POSTCOPY_RAM_DISCARD_VERSION).cstr8(command.blockName).u8(0);
        for (const range of command.ranges) this.be64(range.startBytes).be64(range.lengthBytes);
        return;
      }
      case 'packaged':
        if (command.lengthBytes > 0xffffffff || command.lengthBytes < 0) this.fail(`PACKAGED length ${command.lengthBytes} does not fit be32`);
        this.commandHeader(MIG_CMD_PACKAGED, 4);
        this.be32(command.lengthBytes);
        return;
      case 'enable-colo':
        return this.commandHeader(MIG_CMD_ENABLE_COLO, 0);
      case 'postcopy-resume':
        return this.commandHeader(MIG_CMD_POSTCOPY_RESUME, 0);
      case 'recv-bitmap':
        this.commandHeader(MIG_CMD_RECV_BITMAP, 1 + command.blockName.length);
        this.cstr8(command.blockName);
        return;
    }
  }

  /** PACKAGED(L) followed by the L bytes of a nested stream (see encodeNestedStream). */
  packaged(nested: Uint8Array): void {
    this.command({ kind: 'packaged', lengthBytes: nested.length });
    this.bytes(nested);
  }

  private commandHeader(cmd: number, lengthBytes: number): void {
    this.u8(QEMU_VM_COMMAND).be16(cmd).be16(lengthBytes);
  }
}
