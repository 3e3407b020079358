/**
 * `livemig analyze FILE`: what a migration capture holds. FILE is a main stream (magic QEVM)
 * or a multifd channel (magic 0x11223344, or --multifd), plain or gzip. Options add the
 * return-path capture of the same migration (--return-path), write the rebuilt RAM blocks to
 * files (--extract-ram) and switch the report to one JSON object (--json).
 *
 * Exit codes: 0 when everything decoded, 1 on a decode error (the report shows what was
 * decoded before it, and the error's code, offset and section), 2 on a usage error.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MiB } from '../lib/units.ts';
import { openFileSource } from './byte-source.ts';
import type { ByteSource } from './byte-source.ts';
import { EXIT_FAILURE, EXIT_OK, UsageError, groupDigits, parseByteOption, toJson } from './io.ts';
import type { CliIo } from './io.ts';
import { analyzeStream } from './stream-analysis.ts';
import type { StreamAnalysis } from './stream-analysis.ts';
import { analyzeMultifd, analyzeReturnPath, looksLikeMultifd } from './channel-analysis.ts';
import type { MultifdAnalysis, ReturnPathAnalysis } from './channel-analysis.ts';
import { renderMultifdReport, renderReturnPathReport, renderStreamReport } from './analysis-report.ts';
import { DEFAULT_MAX_RAM_BYTES } from './ram-tracker.ts';
import type { RamTracker } from './ram-tracker.ts';

export const DEFAULT_CHUNK_BYTES = MiB;
export const MAX_CHUNK_BYTES = 256 * MiB;

export interface AnalyzeOptions {
  readonly json?: boolean;
  readonly extractRam?: string;
  readonly returnPath?: string;
  readonly chunkBytes?: string;
  readonly multifd?: boolean;
  readonly maxRam?: string;
  /** Multifd channel captures whose pages are merged into the RAM of the main stream. */
  readonly multifdChannel?: string[];
}

export interface ExtractedBlock {
  readonly block: string;
  readonly path: string;
  readonly bytes: number;
}

/** A block name as a file name: [A-Za-z0-9._-] kept, anything else "_", never "." or "..". */
export function sanitizeBlockName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return s === '' || s === '.' || s === '..' ? `_${s}` : s;
}

/** Writes every rebuilt block to DIR/<sanitized name>.ram; same-named files get a suffix. */
export function extractRam(ram: RamTracker, dir: string): { written: ExtractedBlock[]; skipped: string[] } {
  mkdirSync(dir, { recursive: true });
  const written: ExtractedBlock[] = [];
  const skipped: string[] = [];
  const used = new Set<string>();
  for (const b of ram.blocks) {
    if (b.content === null) {
      skipped.push(b.name);
      continue;
    }
    let base = sanitizeBlockName(b.name);
    for (let k = 2; used.has(base); k++) base = `${sanitizeBlockName(b.name)}-${k}`;
    used.add(base);
    const path = join(dir, `${base}.ram`);
    writeAll(path, b.content);
    written.push({ block: b.name, path, bytes: b.content.length });
  }
  return { written, skipped };
}

/** Writes `bytes` in 64 MiB pieces (single writes are capped near 2 GiB). */
function writeAll(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(64 * MiB, bytes.length - at));
  } finally {
    closeSync(fd);
  }
}

/** Runs `analyze` on a source that is already open (the `start` command passes bytes in memory). */
export async function analyzeSource(source: ByteSource, options: AnalyzeOptions, io: CliIo): Promise<number> {
  const chunkBytes = options.chunkBytes === undefined ? DEFAULT_CHUNK_BYTES : parseByteOption('--chunk-bytes', options.chunkBytes, MAX_CHUNK_BYTES);
  const maxRamBytes = options.maxRam === undefined ? DEFAULT_MAX_RAM_BYTES : parseByteOption('--max-ram', options.maxRam, Number.MAX_SAFE_INTEGER);
  const rpSource = options.returnPath === undefined ? null : openFileSource(options.returnPath);
  const channelSources = (options.multifdChannel ?? []).map((path) => openFileSource(path));

  if (options.multifd === true || looksLikeMultifd(await source.head(4))) {
    if (rpSource !== null) throw new UsageError('--return-path goes with a main stream, not a multifd channel');
    if (channelSources.length > 0) throw new UsageError('--multifd-channel goes with a main stream; FILE is a multifd channel itself');
    if (options.extractRam !== undefined) throw new UsageError('--extract-ram needs a main stream; a multifd channel alone does not hold whole blocks');
    const m = await analyzeMultifd(source, chunkBytes);
    io.out(options.json === true ? `${toJson(m)}\n` : `${renderMultifdReport(m).join('\n')}\n`);
    if (m.error !== null) io.err(`livemig analyze: decode error ${m.error.code} at byte ${m.error.offset}\n`);
    return m.error === null ? EXIT_OK : EXIT_FAILURE;
  }

  const streamResult = await analyzeStream(source, { chunkBytes, maxRamBytes });
  const { ram } = streamResult;
  let analysis = streamResult.analysis;
  const channels: MultifdAnalysis[] = [];
  if (channelSources.length > 0) {
    const lengthOf = (name: string): number | undefined => analysis.ramBlocks.find((b) => b.name === name)?.sizeBytes;
    for (const channel of channelSources) {
      const onPage = (name: string, offsetBytes: number, data: Uint8Array): void => void ram.pageByName(name, offsetBytes, data);
      channels.push(await analyzeMultifd(channel, chunkBytes, { onPage, blockLengthBytes: lengthOf }));
    }
    const note = `RAM blocks include the pages of ${channels.length} multifd channel(s), applied after the main stream's records ` +
      '(a page sent on the main stream after its last channel copy would be rebuilt wrongly; QEMU 7.2 sends zero pages on the main stream, normal pages on the channels)';
    analysis = { ...analysis, ramBlocks: ram.summaries(), notes: [...analysis.notes, note] };
  }
  let rp: ReturnPathAnalysis | null = null;
  if (rpSource !== null) {
    const pageBytes = analysis.configuration?.targetPageBits != null ? 2 ** analysis.configuration.targetPageBits : 4096;
    const pagesOf = (name: string): number | undefined => {
      const b = analysis.ramBlocks.find((x) => x.name === name);
      return b === undefined ? undefined : Math.ceil(b.sizeBytes / pageBytes);
    };
    rp = await analyzeReturnPath(rpSource, chunkBytes, pagesOf);
  }
  let extracted: { written: ExtractedBlock[]; skipped: string[] } | null = null;
  if (options.extractRam !== undefined) extracted = extractRam(ram, options.extractRam);

  const failed =
    analysis.error !== null || (rp?.error ?? null) !== null || channels.some((c) => c.error !== null) || (extracted !== null && extracted.skipped.length > 0);
  if (options.json === true) {
    io.out(`${toJson({ ...analysis, returnPath: rp, multifdChannels: channels, extracted })}\n`);
  } else {
    const lines = renderStreamReport(analysis);
    for (const c of channels) lines.push('', ...renderMultifdReport(c));
    if (rp !== null) lines.push('', ...renderReturnPathReport(rp, pingValues(analysis)));
    if (extracted !== null) lines.push('', ...extractLines(extracted, analysis));
    io.out(`${lines.join('\n')}\n`);
  }
  if (analysis.error !== null) io.err(`livemig analyze: decode error ${analysis.error.code} at byte ${analysis.error.offset}\n`);
  if (rp?.error != null) io.err(`livemig analyze: return path decode error ${rp.error.code} at byte ${rp.error.offset}\n`);
  for (const c of channels) if (c.error !== null) io.err(`livemig analyze: ${c.source.path}: multifd decode error ${c.error.code} at byte ${c.error.offset}\n`);
  return failed ? EXIT_FAILURE : EXIT_OK;
}

function pingValues(a: StreamAnalysis): number[] {
  const out: number[] = [];
  for (const c of a.commands) {
    if (c.command.kind === 'ping') out.push(c.command.value);
    for (const n of c.nested ?? []) if (n.kind === 'command' && n.command.kind === 'ping') out.push(n.command.value);
  }
  return out;
}

function extractLines(e: { written: ExtractedBlock[]; skipped: string[] }, a: StreamAnalysis): string[] {
  const lines = ['extracted RAM:'];
  for (const w of e.written) lines.push(`  '${w.block}' -> ${w.path} (${groupDigits(w.bytes)} bytes)`);
  for (const s of e.skipped) lines.push(`  '${s}' NOT written: its content was not rebuilt (see the notes)`);
  if (e.written.length === 0 && e.skipped.length === 0) lines.push('  nothing: the stream announced no RAM blocks');
  if (a.error !== null && e.written.length > 0) lines.push('  (partial: decoding stopped at the error above, later pages are missing)');
  return lines;
}

/** The `analyze` action: FILE from the command line. */
export async function runAnalyze(file: string, options: AnalyzeOptions, io: CliIo): Promise<number> {
  return analyzeSource(openFileSource(file), options, io);
}
