/**
 * The text of HMP's `info` commands in QEMU 7.2 (monitor/hmp-cmds.c, migration/migration.c),
 * as lines without line ends. Layouts were checked against QEMU 7.2.22 for `info status`,
 * `info migrate` (globals, status with and without error, completed precopy statistics,
 * destination socket addresses), `info migrate_capabilities`, `info migrate_parameters`,
 * `info balloon` and `info version`.
 *
 * Unverified against a run (written from the 7.2 source): the `Outgoing migration blocked:`
 * block, `expected downtime`, the postcopy blocktime lines, `cpu throttle percentage`, and the
 * `block-bitmap-mapping` lines of `info migrate_parameters`.
 */
import type { MigrationCapabilityStatus } from '../core/capabilities.ts';
import type { MigrationParametersQmp } from '../core/params.ts';
import type { MigrationInfoQmp } from '../core/stats.ts';
import type { BalloonInfo, StatusInfo, VersionInfo } from './controller.ts';

/**
 * QEMU's migration_global_dump values. These are machine-type properties of the migration
 * object; a pc-q35-7.2 or `-M none` QEMU 7.2 shows exactly these.
 */
export const MIGRATION_GLOBALS: readonly (readonly [string, string])[] = Object.freeze([
  ['store-global-state', 'on'],
  ['only-migratable', 'off'],
  ['send-configuration', 'on'],
  ['send-section-footer', 'on'],
  ['decompress-error-check', 'on'],
  ['clear-bitmap-shift', '18'],
] as const);

/** `info status`. */
export function formatInfoStatus(info: StatusInfo): string[] {
  let line = `VM status: ${info.running ? 'running' : 'paused'}${info.singlestep ? ' (single step mode)' : ''}`;
  if (!info.running && info.status !== 'paused') line += ` (${info.status})`;
  return [line];
}

/** `info version`: QEMU prints the package string right after the micro number. */
export function formatInfoVersion(info: VersionInfo): string[] {
  return [`${info.qemu.major}.${info.qemu.minor}.${info.qemu.micro}${info.package}`];
}

/** `info balloon`: the actual size in MiB. */
export function formatInfoBalloon(info: BalloonInfo): string[] {
  return [`balloon: actual=${Math.trunc(info.actual / 1048576)}`];
}

/** `info migrate_capabilities`. */
export function formatInfoMigrateCapabilities(caps: readonly MigrationCapabilityStatus[]): string[] {
  return caps.map((c) => `${c.capability}: ${c.state ? 'on' : 'off'}`);
}

const onOff = (value: boolean): string => (value ? 'on' : 'off');
const num = (value: number | bigint): string => (typeof value === 'bigint' ? value.toString() : uint64Text(value));

/** A uint64 held in a double: 2^64 (a wrapped -1) prints as 2^64-1. */
function uint64Text(value: number): string {
  if (value >= 2 ** 64) return ((1n << 64n) - 1n).toString();
  return Number.isSafeInteger(value) ? String(value) : BigInt(Math.trunc(value)).toString();
}

/** `info migrate_parameters` (7.2 prints neither multifd-zlib-level nor multifd-zstd-level). */
export function formatInfoMigrateParameters(p: MigrationParametersQmp): string[] {
  const lines = [
    `announce-initial: ${num(p['announce-initial'])} ms`,
    `announce-max: ${num(p['announce-max'])} ms`,
    `announce-rounds: ${num(p['announce-rounds'])}`,
    `announce-step: ${num(p['announce-step'])} ms`,
    `compress-level: ${p['compress-level']}`,
    `compress-threads: ${p['compress-threads']}`,
    `compress-wait-thread: ${onOff(p['compress-wait-thread'])}`,
    `decompress-threads: ${p['decompress-threads']}`,
    `throttle-trigger-threshold: ${p['throttle-trigger-threshold']}`,
    `cpu-throttle-initial: ${p['cpu-throttle-initial']}`,
    `cpu-throttle-increment: ${p['cpu-throttle-increment']}`,
    `cpu-throttle-tailslow: ${onOff(p['cpu-throttle-tailslow'])}`,
    `max-cpu-throttle: ${p['max-cpu-throttle']}`,
    `tls-creds: '${p['tls-creds']}'`,
    `tls-hostname: '${p['tls-hostname']}'`,
    `max-bandwidth: ${num(p['max-bandwidth'])} bytes/second`,
    `downtime-limit: ${num(p['downtime-limit'])} ms`,
    `x-checkpoint-delay: ${p['x-checkpoint-delay']} ms`,
    `block-incremental: ${onOff(p['block-incremental'])}`,
    `multifd-channels: ${p['multifd-channels']}`,
    `multifd-compression: ${p['multifd-compression']}`,
    `xbzrle-cache-size: ${num(p['xbzrle-cache-size'])} bytes`,
    `max-postcopy-bandwidth: ${num(p['max-postcopy-bandwidth'])}`,
    `tls-authz: '${p['tls-authz']}'`,
  ];
  const mapping = p['block-bitmap-mapping'];
  if (mapping !== undefined) {
    lines.push('block-bitmap-mapping:');
    for (const node of mapping) {
      lines.push(`  '${node['node-name']}' -> '${node.alias}'`);
      for (const bitmap of node.bitmaps) lines.push(`    '${bitmap.name}' -> '${bitmap.alias}'`);
    }
  }
  return lines;
}

/** `%0.2f`. */
function fixed2(value: number): string {
  return value.toFixed(2);
}

/** `>> 10` of a byte count. */
function kib(bytes: number): number {
  return Math.floor(bytes / 1024);
}

/** The string output visitor's form of an integer list: sorted, runs as "a-b", comma-joined. */
function formatIntRanges(values: readonly number[]): string {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** socket_uri() of a SocketAddress as query-migrate shows it. */
function socketUri(address: unknown): string {
  const a = address as Record<string, string>;
  switch (a.type) {
    case 'inet':
      return `tcp:${a.host}:${a.port}`;
    case 'unix':
      return `unix:${a.path}`;
    case 'vsock':
      return `vsock:${a.cid}:${a.port}`;
    case 'fd':
      return `fd:${a.str}`;
    default:
      return String(a.type);
  }
}

/** `info migrate`. */
export function formatInfoMigrate(info: MigrationInfoQmp): string[] {
  const lines = ['globals:', ...MIGRATION_GLOBALS.map(([name, value]) => `${name}: ${value}`)];
  const blocked = info['blocked-reasons'];
  if (blocked !== undefined) {
    lines.push('Outgoing migration blocked:', ...blocked.map((reason) => `  ${reason}`));
  }
  if (info.status !== undefined) {
    const error = info.status === 'failed' && info['error-desc'] !== undefined ? ` (${info['error-desc']})` : '';
    lines.push(`Migration status: ${info.status}${error}`);
    lines.push(`total time: ${info['total-time'] ?? 0} ms`);
    if (info['expected-downtime'] !== undefined) lines.push(`expected downtime: ${info['expected-downtime']} ms`);
    if (info.downtime !== undefined) lines.push(`downtime: ${info.downtime} ms`);
    if (info['setup-time'] !== undefined) lines.push(`setup: ${info['setup-time']} ms`);
  }
  const ram = info.ram;
  if (ram !== undefined) {
    lines.push(
      `transferred ram: ${kib(ram.transferred)} kbytes`,
      `throughput: ${fixed2(ram.mbps)} mbps`,
      `remaining ram: ${kib(ram.remaining)} kbytes`,
      `total ram: ${kib(ram.total)} kbytes`,
      `duplicate: ${ram.duplicate} pages`,
      `skipped: ${ram.skipped} pages`,
      `normal: ${ram.normal} pages`,
      `normal bytes: ${kib(ram['normal-bytes'])} kbytes`,
      `dirty sync count: ${ram['dirty-sync-count']}`,
      `page size: ${kib(ram['page-size'])} kbytes`,
      `multifd bytes: ${kib(ram['multifd-bytes'])} kbytes`,
      `pages-per-second: ${ram['pages-per-second']}`,
    );
    if (ram['dirty-pages-rate'] !== 0) lines.push(`dirty pages rate: ${ram['dirty-pages-rate']} pages`);
    if (ram['postcopy-requests'] !== 0) lines.push(`postcopy request count: ${ram['postcopy-requests']}`);
    if (ram['precopy-bytes'] !== 0) lines.push(`precopy ram: ${kib(ram['precopy-bytes'])} kbytes`);
    if (ram['downtime-bytes'] !== 0) lines.push(`downtime ram: ${kib(ram['downtime-bytes'])} kbytes`);
    if (ram['postcopy-bytes'] !== 0) lines.push(`postcopy ram: ${kib(ram['postcopy-bytes'])} kbytes`);
    if (ram['dirty-sync-missed-zero-copy'] !== 0) {
      lines.push(`Zero-copy-send fallbacks happened: ${ram['dirty-sync-missed-zero-copy']} times`);
    }
  }
  if (info['cpu-throttle-percentage'] !== undefined) lines.push(`cpu throttle percentage: ${info['cpu-throttle-percentage']}`);
  if (info['postcopy-blocktime'] !== undefined) lines.push(`postcopy blocktime: ${info['postcopy-blocktime']}`);
  const vcpuBlocktime = info['postcopy-vcpu-blocktime'];
  if (vcpuBlocktime !== undefined) lines.push(`postcopy vcpu blocktime: ${formatIntRanges(vcpuBlocktime)}`);
  const sockets = info['socket-address'];
  if (sockets !== undefined) lines.push('socket address: [', ...sockets.map((s) => `\t${socketUri(s)}`), ']');
  return lines;
}
