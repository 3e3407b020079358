/**
 * What every CLI command shares: the output writers (injected, so tests run the commands
 * in-process and read what they print), the exit codes, the usage error, and small helpers
 * for reading options and formatting numbers. Commands never call process.exit themselves:
 * they return an exit code and `bin/livemig.js` sets it.
 */
import { formatBytes, parseSizeBytes } from '../lib/units.ts';

/** Where a command writes. Each call receives whole text (usually lines ending in "\n"). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** Success. */
export const EXIT_OK = 0;
/** The input was read but is bad: a decode error, a failed check. */
export const EXIT_FAILURE = 1;
/** The command line is wrong: missing file, bad option value, unknown command. */
export const EXIT_USAGE = 2;

/** A problem with the command line or the files it names; the command exits with EXIT_USAGE. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Writes to the real process streams. */
export function processIo(): CliIo {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  };
}

/** An io that keeps everything written, for tests and for commands that post-process output. */
export class CapturedIo implements CliIo {
  stdout = '';
  stderr = '';
  out(text: string): void {
    this.stdout += text;
  }
  err(text: string): void {
    this.stderr += text;
  }
}

/**
 * Parses a positive byte count option such as "1048576", "64K" or "1M" (binary suffixes),
 * bounded by `maxBytes`. Throws UsageError with the option name on anything else.
 */
export function parseByteOption(option: string, text: string, maxBytes: number): number {
  const bytes = parseSizeBytes(text, 'B');
  if (bytes === null || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new UsageError(`${option}: '${text}' is not a positive byte count (e.g. 1048576, 64K, 1M)`);
  }
  if (bytes > maxBytes) throw new UsageError(`${option}: ${bytes} bytes is more than the maximum of ${maxBytes} (${formatBytes(maxBytes)})`);
  return bytes;
}

/** 16806670 → "16,806,670". */
export function groupDigits(n: number): string {
  return Number.isSafeInteger(n) ? n.toLocaleString('en-US') : String(n);
}

/** "16,806,670 bytes (16.0 MiB)"; small counts without the binary size. */
export function bytesText(n: number): string {
  return n >= 1024 ? `${groupDigits(n)} bytes (${formatBytes(n)})` : `${groupDigits(n)} bytes`;
}

/** 0x3ff000 */
export function hexText(n: number): string {
  return `0x${n.toString(16)}`;
}

/** JSON.stringify that turns bigint into decimal strings and byte arrays into hex. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, jsonReplacer, indent);
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  return value;
}

/** Aligns rows of cells into columns (two spaces apart), each line indented by `indent`. */
export function renderColumns(rows: readonly (readonly string[])[], indent = '  '): string[] {
  if (rows.length === 0) return [];
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd());
}

/** A value as short one-line text: JSON (bigints as numbers' text), cut at `maxChars`. */
export function shortValue(value: unknown, maxChars = 160): string {
  const text =
    typeof value === 'bigint' ? value.toString() : typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value, jsonReplacer) ?? String(value));
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}… (${text.length} chars)`;
}
