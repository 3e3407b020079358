/**
 * The human-readable report of `livemig analyze`: plain aligned text, one part per aspect of
 * the stream (source, header, configuration, sections, RAM blocks, commands, devices, end,
 * result). Long runs of PART sections of one section id collapse into a single line with a
 * count. Everything printed comes from the analysis objects; nothing is estimated here.
 */
import type { Command } from '../format/stream-types.ts';
import { bytesText, groupDigits, hexText, renderColumns, shortValue } from './io.ts';
import type { CommandEntry, DecodeErrorEntry, DeviceEntry, NestedEntry, SectionEntry, StreamAnalysis } from './stream-analysis.ts';
import type { MultifdAnalysis, ReturnPathAnalysis, RpEntry } from './channel-analysis.ts';

/** PART runs at least this long collapse into one line. */
const COLLAPSE_RUN = 4;

export function renderStreamReport(a: StreamAnalysis): string[] {
  const lines: string[] = [];
  const src = a.source;
  lines.push(`file: ${src.path}`);
  lines.push(
    src.gzip
      ? `size: ${bytesText(src.fileBytes)} gzip, ${bytesText(src.streamBytes)} of stream once decompressed`
      : `size: ${bytesText(src.fileBytes)}`,
  );
  lines.push(`stream: ${a.version === null ? 'no header decoded' : `QEVM, version ${a.version}`}`);
  if (a.configuration !== null) {
    const c = a.configuration;
    const bits = c.targetPageBits === null ? 'not sent (12 assumed)' : String(c.targetPageBits);
    const caps = c.capabilities.length === 0 ? 'none' : c.capabilities.join(', ');
    lines.push(`configuration: machine '${c.machine}', target page bits ${bits}, capabilities ${caps}${c.uuid === null ? '' : `, uuid ${c.uuid}`}`);
  } else {
    lines.push('configuration: none decoded');
  }
  lines.push('', ...sectionLines(a.sections));
  lines.push('', ...ramLines(a));
  lines.push('', ...commandLines(a.commands));
  lines.push('', ...deviceLines(a));
  lines.push('');
  const eof = a.eof === null ? 'no EOF' : `EOF at ${a.eof.offset}`;
  const vmdesc = a.vmdescription === null ? 'no VMDESCRIPTION' : `VMDESCRIPTION at ${a.vmdescription.offset} (${groupDigits(a.vmdescription.lengthBytes)} bytes of JSON, ${a.vmdescription.devices} devices)`;
  lines.push(`end: ${eof}; ${vmdesc}`);
  for (const note of a.notes) lines.push(`note: ${note}`);
  lines.push(...resultLines(a.error, a.decodedBytes, src.streamBytes));
  return lines;
}

function resultLines(error: DecodeErrorEntry | null, decodedBytes: number, totalBytes: number): string[] {
  if (error === null) return [`result: ok, ${groupDigits(decodedBytes)} of ${groupDigits(totalBytes)} bytes decoded`];
  const where = error.section === null ? '' : ` in section '${error.section.idstr}' (id ${error.section.sectionId})`;
  // FormatError messages end with their own "(at byte N, section …)"; the line says it already.
  const message = error.message.replace(/ \(at byte \d+(, section '.*' id \d+)?\)$/, '');
  const out = [`DECODE ERROR ${error.code} at byte ${error.offset}${where}: ${message}`];
  if (error.explanation !== undefined) out.push(`  why: ${error.explanation}`);
  out.push(`result: failed after ${groupDigits(decodedBytes)} of ${groupDigits(totalBytes)} bytes`);
  return out;
}

function pagesText(s: SectionEntry): string {
  return s.normalPages === undefined ? '' : `${groupDigits(s.normalPages)} normal, ${groupDigits(s.zeroPages ?? 0)} zero`;
}

function sectionLines(sections: readonly SectionEntry[]): string[] {
  const nested = sections.some((s) => s.depth === 1);
  const rows: string[][] = [['type', 'id', 'idstr', 'instance', 'version', 'offset', 'bytes', 'pages', ...(nested ? ['in'] : [])]];
  let collapsed = 0;
  for (let i = 0; i < sections.length; ) {
    const s = sections[i];
    let j = i + 1;
    if (s.type === 'PART') {
      while (j < sections.length && sections[j].type === 'PART' && sections[j].sectionId === s.sectionId && sections[j].depth === s.depth) j++;
    }
    const where = nested ? [s.depth === 1 ? 'PACKAGED' : ''] : [];
    const full = s.type === 'START' || s.type === 'FULL';
    if (j - i >= COLLAPSE_RUN) {
      const run = sections.slice(i, j);
      const normal = run.reduce((n, x) => n + (x.normalPages ?? 0), 0);
      const zero = run.reduce((n, x) => n + (x.zeroPages ?? 0), 0);
      const bytes = run.reduce((n, x) => n + x.bytes, 0);
      const last = run[run.length - 1];
      rows.push([`PART x${run.length}`, String(s.sectionId), s.idstr, '', '', `${s.offset}..${last.offset}`, groupDigits(bytes), `${groupDigits(normal)} normal, ${groupDigits(zero)} zero`, ...where]);
      collapsed += run.length;
    } else {
      j = i + 1;
      rows.push([s.type, String(s.sectionId), s.idstr, full ? String(s.instanceId) : '', full ? String(s.versionId) : '', String(s.offset), groupDigits(s.bytes), pagesText(s), ...where]);
    }
    i = j;
  }
  const head = `sections: ${sections.length}${collapsed > 0 ? ` (runs of PART sections shown as one line with their count)` : ''}`;
  return sections.length === 0 ? [head] : [head, ...renderColumns(rows)];
}

function ramLines(a: StreamAnalysis): string[] {
  if (a.ramBlocks.length === 0) return ['RAM blocks: none'];
  const rows: string[][] = [['name', 'size', 'normal pages', 'zero pages', 'discarded', 'never sent', 'sha256 (unsent pages zero)']];
  for (const b of a.ramBlocks) {
    rows.push([
      b.name,
      bytesText(b.sizeBytes),
      groupDigits(b.normalPages),
      groupDigits(b.zeroPages),
      groupDigits(b.discardedPages),
      b.pagesNeverSent === null ? 'n/a' : groupDigits(b.pagesNeverSent),
      b.sha256 ?? 'not computed',
    ]);
  }
  return [`RAM blocks: ${a.ramBlocks.length}`, ...renderColumns(rows)];
}

/** A command in QEMU's words with its payload. */
export function commandText(c: Command): string {
  switch (c.kind) {
    case 'open-return-path':
      return 'OPEN_RETURN_PATH';
    case 'ping':
      return `PING ${c.value}`;
    case 'postcopy-advise':
      return `POSTCOPY_ADVISE page size summary ${hexText(c.pageSizeSummary)}, target page size ${c.targetPageSize}`;
    case 'postcopy-advise-empty':
      return 'POSTCOPY_ADVISE (no payload)';
    case 'postcopy-listen':
      return 'POSTCOPY_LISTEN';
    case 'postcopy-run':
      return 'POSTCOPY_RUN';
    case 'postcopy-ram-discard': {
      const ranges = c.ranges.map((r) => `${hexText(r.startBytes)}+${hexText(r.lengthBytes)}`).join(', ');
      const bytes = c.ranges.reduce((n, r) => n + r.lengthBytes, 0);
      return `POSTCOPY_RAM_DISCARD block '${c.blockName}': ${ranges} (${groupDigits(bytes)} bytes)`;
    }
    case 'packaged':
      return `PACKAGED ${groupDigits(c.lengthBytes)} bytes`;
    case 'enable-colo':
      return 'ENABLE_COLO';
    case 'postcopy-resume':
      return 'POSTCOPY_RESUME';
    case 'recv-bitmap':
      return `RECV_BITMAP block '${c.blockName}'`;
  }
}

function nestedText(n: NestedEntry): [string, string] {
  if (n.kind === 'command') return [String(n.offset), commandText(n.command)];
  if (n.kind === 'eof') return [String(n.offset), 'EOF'];
  const s = n.section;
  const id = s.type === 'START' || s.type === 'FULL' ? `${s.idstr}/${s.instanceId} v${s.versionId}` : s.idstr;
  const pages = pagesText(s);
  return [String(s.offset), `${s.type} section ${id}, ${groupDigits(s.bytes)} bytes${pages === '' ? '' : `, ${pages}`}`];
}

function commandLines(commands: readonly CommandEntry[]): string[] {
  if (commands.length === 0) return ['commands: none'];
  const rows: string[][] = [];
  for (const c of commands) {
    rows.push([String(c.offset), commandText(c.command) + (c.nested === undefined ? '' : ', containing:')]);
    for (const n of c.nested ?? []) {
      const [offset, text] = nestedText(n);
      rows.push([offset, `  ${text}`]);
    }
  }
  return [`commands: ${commands.length} (offset, command)`, ...renderColumns(rows)];
}

function stateText(state: unknown): string {
  if (state === null || typeof state !== 'object') return shortValue(state);
  const s = state as Record<string, unknown>;
  // VMDESCRIPTION-decoded devices: { fields, subsections }.
  const fields = 'fields' in s && typeof s.fields === 'object' && s.fields !== null ? (s.fields as Record<string, unknown>) : s;
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${shortValue(v, 48)}`);
  const subs = 'subsections' in s && typeof s.subsections === 'object' && s.subsections !== null ? Object.keys(s.subsections) : [];
  const text = parts.join(', ') + (subs.length > 0 ? `; subsections ${subs.join(', ')}` : '');
  return text.length <= 240 ? text : `${text.slice(0, 240)}…`;
}

function deviceLines(a: StreamAnalysis): string[] {
  const lines = [`devices from sections: ${a.devices.fromSections.length}`];
  const rows = a.devices.fromSections.map((d: DeviceEntry) => [
    `${d.idstr}/${d.instanceId} v${d.versionId}`,
    `${d.sectionType} @${d.offset}${d.depth === 1 ? ' in PACKAGED' : ''}`,
    stateText(d.state),
  ]);
  lines.push(...renderColumns(rows));
  const v = a.devices.fromVmdescription;
  if (v === null) lines.push('devices from VMDESCRIPTION: none (no VMDESCRIPTION)');
  else {
    const list = v.map((d) => `${d.name}/${d.instanceId} v${d.version ?? '?'} (${d.fields} fields${d.subsections.length > 0 ? `, subsections ${d.subsections.join(' ')}` : ''})`);
    lines.push(`devices from VMDESCRIPTION: ${v.length}`, ...wrapItems(list, 110));
  }
  return lines;
}

/** Comma-separated items on indented lines of at most `width` characters (longer items alone). */
function wrapItems(items: readonly string[], width: number, indent = '  '): string[] {
  const out: string[] = [];
  let line = '';
  for (const [i, item] of items.entries()) {
    const piece = i < items.length - 1 ? `${item},` : item;
    if (line !== '' && indent.length + line.length + 1 + piece.length > width) {
      out.push(indent + line);
      line = piece;
    } else line = line === '' ? piece : `${line} ${piece}`;
  }
  if (line !== '') out.push(indent + line);
  return out;
}

export function rpText(m: RpEntry): string {
  switch (m.kind) {
    case 'shut':
      return `SHUT status ${m.status}${m.status === 0 ? ' (ok)' : ' (error)'}`;
    case 'pong':
      return `PONG ${m.value}`;
    case 'resume-ack':
      return `RESUME_ACK ${m.value}`;
    case 'req-pages-id':
      return `REQ_PAGES_ID block '${m.blockName}' offset ${hexText(m.startBytes)} length ${m.lengthBytes}`;
    case 'req-pages':
      return `REQ_PAGES (block '${m.blockName}') offset ${hexText(m.startBytes)} length ${m.lengthBytes}`;
    case 'recv-bitmap':
      return `RECV_BITMAP block '${m.blockName}': ${groupDigits(m.bitmapBytes)} bitmap bytes, ${groupDigits(m.pagesReceived)} pages received`;
  }
}

/** `pings`: the PING values of the main stream, when it was analysed too. */
export function renderReturnPathReport(r: ReturnPathAnalysis, pings: readonly number[] | null): string[] {
  const lines = [`return path: ${r.source.path} (${bytesText(r.source.fileBytes)}${r.source.gzip ? ' gzip' : ''}), ${r.messages.length} messages (offset, message)`];
  lines.push(...renderColumns(r.messages.map((m) => [String(m.offset), rpText(m)])));
  if (pings !== null) {
    const pongs = new Set(r.messages.flatMap((m) => (m.kind === 'pong' ? [m.value] : [])));
    const missing = pings.filter((p) => !pongs.has(p));
    lines.push(`pings of the stream answered: ${pings.length - missing.length} of ${pings.length}${missing.length > 0 ? ` (no PONG for ${missing.join(', ')})` : ''}`);
  }
  lines.push(r.shutDown ? 'return path closed by SHUT' : 'no SHUT (the capture ends without the final message)');
  lines.push(...resultLines(r.error, r.decodedBytes, r.source.gzip ? r.decodedBytes : r.source.fileBytes));
  return lines;
}

export function renderMultifdReport(m: MultifdAnalysis): string[] {
  const lines = [`file: ${m.source.path}`];
  lines.push(m.source.gzip ? `size: ${bytesText(m.source.fileBytes)} gzip, ${bytesText(m.source.streamBytes)} decompressed` : `size: ${bytesText(m.source.fileBytes)}`);
  lines.push(m.init === null ? 'multifd channel: no init packet decoded' : `multifd channel ${m.init.channelId}, uuid ${m.init.uuid} (init packet at ${m.init.offset})`);
  const rows: string[][] = [['offset', 'packet', 'flags', 'pages', 'alloc', 'block', 'page offsets']];
  for (const p of m.packets) {
    const offsets = p.firstOffset === null ? '' : `${hexText(p.firstOffset)}..${hexText(p.lastOffset ?? p.firstOffset)}`;
    rows.push([String(p.offset), `#${p.packetNum}`, p.sync ? 'SYNC' : hexText(p.flags), String(p.normalPages), String(p.pagesAlloc), p.blockName === '' ? '-' : p.blockName, offsets]);
  }
  lines.push(`packets: ${m.totals.packets} (${m.totals.syncPackets} SYNC), ${groupDigits(m.totals.pages)} pages`, ...renderColumns(rows));
  if (m.packetsNotListed > 0) lines.push(`  … ${m.packetsNotListed} more packets not listed`);
  const byBlock = Object.entries(m.totals.pagesByBlock).map(([name, n]) => `'${name}' ${groupDigits(n)}`);
  lines.push(`pages by block: ${byBlock.length === 0 ? 'none' : byBlock.join(', ')}`);
  lines.push(...resultLines(m.error, m.decodedBytes, m.source.streamBytes));
  return lines;
}
