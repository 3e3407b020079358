/**
 * `livemig encode --ram-image FILE --block NAME -o OUT [--machine none]`: writes the precopy
 * stream QEMU 7.2 would send for a guest whose only RAM block NAME holds FILE's bytes
 * (format/precopy-stream.ts: header, CONFIGURATION, the RAM section with every page, all-zero
 * pages as ZERO records, timer, globalstate, EOF, VMDESCRIPTION). Chunks go to OUT as the
 * encoder fills them. Prints page counts, bytes written and the QEMU command line that loads
 * the result.
 */
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { StreamEncoder } from '../format/stream-encoder.ts';
import { writePrecopyStream } from '../format/precopy-stream.ts';
import { isZeroPage } from '../lib/bytes.ts';
import { TARGET_PAGE_SIZE } from '../lib/units.ts';
import { EXIT_OK, UsageError, bytesText, groupDigits, toJson } from './io.ts';
import type { CliIo } from './io.ts';

export interface EncodeOptions {
  readonly ramImage?: string;
  readonly block?: string;
  readonly output?: string;
  readonly machine?: string;
  readonly json?: boolean;
}

export interface EncodeSummary {
  readonly ramImage: string;
  readonly block: string;
  readonly machine: string;
  readonly output: string;
  readonly ramBytes: number;
  readonly normalPages: number;
  readonly zeroPages: number;
  readonly bytesWritten: number;
  readonly ramSha256: string;
}

/** QEMU's memory-backend ids and RAM block names used here: printable ASCII, 1..255 bytes. */
export function checkBlockName(name: string): void {
  if (name.length === 0) throw new UsageError('--block: the block name is empty');
  if (!/^[\x21-\x7e]+$/.test(name)) throw new UsageError(`--block: '${name}' must be printable ASCII without spaces`);
  if (name.length > 255) throw new UsageError(`--block: the block name is ${name.length} bytes, the stream allows at most 255`);
}

function checkMachine(machine: string): void {
  if (!/^[\x21-\x7e]{1,255}$/.test(machine)) throw new UsageError(`--machine: '${machine}' is not a machine type name (printable ASCII, 1..255 bytes)`);
}

/** Reads a whole RAM image, checking its size before allocating. */
function readRamImage(path: string): Uint8Array {
  let sizeBytes: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`--ram-image ${path}: not a regular file`);
    sizeBytes = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `--ram-image ${path}: no such file` : `--ram-image ${path}: cannot read (${code ?? String(e)})`);
  }
  if (sizeBytes === 0 || sizeBytes % TARGET_PAGE_SIZE !== 0) {
    throw new UsageError(`--ram-image ${path}: size ${sizeBytes} bytes is not a positive multiple of the ${TARGET_PAGE_SIZE}-byte page`);
  }
  if (sizeBytes > bufferConstants.MAX_LENGTH) {
    throw new UsageError(`--ram-image ${path}: ${sizeBytes} bytes is more than one buffer can hold (${bufferConstants.MAX_LENGTH})`);
  }
  const bytes = new Uint8Array(sizeBytes);
  const fd = openSync(path, 'r');
  try {
    let got = 0;
    while (got < sizeBytes) {
      const n = readSync(fd, bytes, got, Math.min(64 * 1024 * 1024, sizeBytes - got), got);
      if (n === 0) throw new UsageError(`--ram-image ${path}: file shrank while reading (${got} of ${sizeBytes} bytes)`);
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** Encodes and writes; returns what was done. Throws UsageError on bad options. */
export function encodeRamImage(options: EncodeOptions): EncodeSummary {
  if (options.ramImage === undefined) throw new UsageError('--ram-image FILE is required');
  if (options.block === undefined) throw new UsageError('--block NAME is required');
  if (options.output === undefined) throw new UsageError('-o OUT is required');
  const machine = options.machine ?? 'none';
  checkBlockName(options.block);
  checkMachine(machine);
  const ram = readRamImage(options.ramImage);

  let zeroPages = 0;
  for (let at = 0; at < ram.length; at += TARGET_PAGE_SIZE) if (isZeroPage(ram.subarray(at, at + TARGET_PAGE_SIZE))) zeroPages++;

  let fd: number;
  try {
    fd = openSync(options.output, 'w');
  } catch (e) {
    throw new UsageError(`-o ${options.output}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let bytesWritten = 0;
  try {
    const encoder = new StreamEncoder({
      onChunk: (chunk) => {
        for (let at = 0; at < chunk.length; ) at += writeSync(fd, chunk, at, chunk.length - at);
        bytesWritten += chunk.length;
      },
    });
    writePrecopyStream(encoder, { machine, blocks: [{ name: options.block, bytes: ram }] });
    encoder.flush();
  } finally {
    closeSync(fd);
  }
  return {
    ramImage: options.ramImage,
    block: options.block,
    machine,
    output: options.output,
    ramBytes: ram.length,
    normalPages: ram.length / TARGET_PAGE_SIZE - zeroPages,
    zeroPages,
    bytesWritten,
    ramSha256: createHash('sha256').update(ram).digest('hex'),
  };
}

/** Quotes a word for a POSIX shell when it needs it. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_/.,:@%+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The QEMU 7.2 command line that loads the stream (for `-M none`). */
export function qemuLoadCommand(s: EncodeSummary): string | null {
  if (s.machine !== 'none') return null;
  // QEMU runs the exec: command through /bin/sh, so the path is quoted twice.
  const common = `-nodefaults -display none -incoming ${shellWord(`exec:cat ${shellWord(s.output)}`)}`;
  if (s.block === 'ram') return `qemu-system-x86_64 -M none -m ${s.ramBytes}B ${common}`;
  return `qemu-system-x86_64 -M none,memory-backend=${s.block} -m ${s.ramBytes}B -object memory-backend-ram,id=${s.block},size=${s.ramBytes} ${common}`;
}

export function renderEncodeSummary(s: EncodeSummary): string[] {
  const pages = s.normalPages + s.zeroPages;
  const lines = [
    `encoded ${s.ramImage} as RAM block '${s.block}' of machine '${s.machine}' into ${s.output}`,
    `RAM: ${bytesText(s.ramBytes)}, sha256 ${s.ramSha256}`,
    `pages: ${groupDigits(pages)}: ${groupDigits(s.normalPages)} normal (PAGE records), ${groupDigits(s.zeroPages)} zero (ZERO records)`,
    `written: ${bytesText(s.bytesWritten)}`,
  ];
  const load = qemuLoadCommand(s);
  if (load !== null) lines.push(`load it with: ${load}`);
  return lines;
}

export function runEncode(options: EncodeOptions, io: CliIo): number {
  const summary = encodeRamImage(options);
  if (options.json === true) io.out(`${toJson({ ...summary, qemuLoadCommand: qemuLoadCommand(summary) })}\n`);
  else io.out(`${renderEncodeSummary(summary).join('\n')}\n`);
  return EXIT_OK;
}
