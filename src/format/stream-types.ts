/**
 * The shapes a QEMU migration stream decodes into, shared by the stream decoder, the device
 * section decoders, the encoder and their users. Hot-path RAM records do not become objects:
 * the decoder hands them to `StreamSink.ramPage` / `ramZero` with a view of the payload.
 */
import type { ByteReader } from '../lib/bytes.ts';

export type SectionType = 'start' | 'part' | 'end' | 'full';

/** A section header as read from the stream (START/FULL carry idstr, instance and version). */
export interface SectionHeader {
  readonly type: SectionType;
  readonly sectionId: number;
  /** For PART/END, the idstr remembered from the START with the same id. */
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  /** Absolute offset of the type byte. */
  readonly offset: number;
  /** Nesting depth: 0 for the main stream, 1 inside a PACKAGED command. */
  readonly depth: number;
}

/** One RAM block of the MEM_SIZE list. */
export interface RamBlockInfo {
  readonly name: string;
  readonly usedLengthBytes: number;
  /** Present only with postcopy-ram when the block's page size differs from the host's. */
  readonly pageSizeBytes?: number;
  /** Present only with x-ignore-shared. */
  readonly gpa?: number;
}

/** A block as RAM page callbacks see it: its index in the MEM_SIZE list and its name. */
export interface RamBlockRef {
  readonly index: number;
  readonly name: string;
  readonly usedLengthBytes: number;
}

export type Command =
  | { readonly kind: 'open-return-path' }
  | { readonly kind: 'ping'; readonly value: number }
  | { readonly kind: 'postcopy-advise'; readonly pageSizeSummary: number; readonly targetPageSize: number }
  | { readonly kind: 'postcopy-advise-empty' }
  | { readonly kind: 'postcopy-listen' }
  | { readonly kind: 'postcopy-run' }
  | {
      readonly kind: 'postcopy-ram-discard';
      readonly blockName: string;
      /** Byte ranges within the block: start and length. */
      readonly ranges: ReadonlyArray<{ readonly startBytes: number; readonly lengthBytes: number }>;
    }
  | { readonly kind: 'packaged'; readonly lengthBytes: number }
  | { readonly kind: 'enable-colo' }
  | { readonly kind: 'postcopy-resume' }
  | { readonly kind: 'recv-bitmap'; readonly blockName: string };

export interface Configuration {
  readonly machine: string;
  readonly targetPageBits?: number;
  readonly capabilities?: readonly string[];
  readonly uuid?: Uint8Array;
}

/** A device section's decoded payload: a plain JSON-able value (fields by name). */
export type DeviceState = unknown;

export type StreamRecord =
  | { readonly kind: 'header'; readonly version: number }
  | { readonly kind: 'configuration'; readonly configuration: Configuration; readonly offset: number }
  | { readonly kind: 'section-begin'; readonly header: SectionHeader }
  | { readonly kind: 'section-end'; readonly header: SectionHeader; readonly lengthBytes: number }
  | { readonly kind: 'ram-blocks'; readonly totalBytes: number; readonly blocks: readonly RamBlockInfo[]; readonly depth: number }
  | { readonly kind: 'ram-eos'; readonly depth: number }
  | { readonly kind: 'device'; readonly header: SectionHeader; readonly state: DeviceState }
  | { readonly kind: 'command'; readonly command: Command; readonly offset: number; readonly depth: number }
  | { readonly kind: 'packaged-end'; readonly offset: number }
  | { readonly kind: 'eof'; readonly offset: number; readonly depth: number }
  | { readonly kind: 'vmdescription'; readonly json: string; readonly offset: number };

/** Where a decoder delivers what it reads. RAM payload views are valid only during the call. */
export interface StreamSink {
  record(record: StreamRecord): void;
  ramPage(block: RamBlockRef, offsetBytes: number, data: Uint8Array): void;
  ramZero(block: RamBlockRef, offsetBytes: number, fill: number): void;
  /**
   * Optional batch form: `pageCount` consecutive ZERO records with fill 0 for pages
   * `offsetBytes`, `offsetBytes + page`, ... of `block`, in stream order. A sink without it gets
   * one ramZero per record; one with it must behave exactly as that sequence of ramZero calls.
   */
  ramZeroRun?(block: RamBlockRef, offsetBytes: number, pageCount: number): void;
}

/**
 * Decodes the payload of a device section (FULL or START of a non-RAM handler). It reads
 * exactly the payload, not the footer. It throws ShortReadError when the bytes run out (the
 * push decoder then waits for more and retries the whole section) and FormatError for bad
 * content. The stream decoder handles `ram`, `timer` and `globalstate` itself and asks this
 * decoder for every other section; without one, such a section is an opaque-section error.
 */
export interface DeviceSectionDecoder {
  decode(header: SectionHeader, reader: ByteReader): DeviceState;
}
