/**
 * The source engine's configuration checks and defaults: options resolved once at
 * construction, capabilities the engine refuses, QEMU 7.2's default section ids, and the page
 * ranges of the store that no block covers.
 */
import type { RamBlock } from '../../memory/ram-block.ts';
import type { DeviceSectionBlob, HintPostcopyPolicy, PagePayloadMode } from '../engine-types.ts';
import type { MigrationCapability } from '../capabilities.ts';
import {
  DEFAULT_MAX_CHUNK_PAGES,
  DEFAULT_REQUEST_QUEUE_LIMIT,
  DEFAULT_SOURCE_CHUNK_BYTES,
  SourceError,
  type SourceEngineConfig,
} from './source-types.ts';
import { defaultVmdescriptionJson } from './vmdesc-json.ts';

/** Options with every default applied. */
export interface ResolvedSourceOptions {
  /** How PAGE records carry their payload. */
  readonly payloadMode: PagePayloadMode;
  /** The hinting × postcopy policy (request side). */
  readonly hintPolicy: HintPostcopyPolicy;
  /** CONFIGURATION machine name. */
  readonly machine: string;
  /** UUID sent with validate-uuid, or null. */
  readonly uuid: Uint8Array | null;
  /** Section id of `ram`. */
  readonly ramSectionId: number;
  /** Section id of a device section. */
  readonly sectionIdOf: (idstr: string, instanceId: number) => number;
  /** Write VMDESCRIPTION after a precopy EOF. */
  readonly sendVmdesc: boolean;
  /** Builds the VMDESCRIPTION JSON. */
  readonly vmdescriptionJson: (devices: readonly DeviceSectionBlob[], pageSizeBytes: number) => string;
  /** Most background pages per RAM chunk. */
  readonly maxChunkPages: number;
  /** An iteration spans pumps until it has lasted this long, ns; null: an iteration is one chunk. */
  readonly iterationNsMin: number | null;
  /** Most queued page requests. */
  readonly requestQueueLimit: number;
  /** Encoder chunk buffer size, bytes. */
  readonly chunkSizeBytes: number;
  /** The main encoder's chunk allocator, if the shell gave one. */
  readonly allocChunk: ((bytes: number, retiredEndBytes: number) => Uint8Array) | undefined;
  /** Keep and check the "sent after the switch" bitmap. */
  readonly debugChecks: boolean;
  /** Completion without a return path waits for `written`. */
  readonly awaitWritten: boolean;
  /** The precopy completion's last pass is spread over budgeted pumps. */
  readonly completionSpansPumps: boolean;
  /** Background pages leave as views of guest RAM (main encoder option pageViews). */
  readonly pageViews: boolean;
}

/**
 * Capabilities whose stream or status changes this engine does not implement. Refused at
 * construction rather than silently ignored.
 */
export const UNSUPPORTED_CAPABILITIES: readonly MigrationCapability[] = [
  'xbzrle',
  'rdma-pin-all',
  'compress',
  'x-colo',
  'block',
  'pause-before-switchover',
  'multifd',
  'x-ignore-shared',
  'background-snapshot',
  'zero-copy-send',
];

export function resolveOptions(config: SourceEngineConfig, ids: Map<string, number>): ResolvedSourceOptions {
  const ramSectionId = config.ramSectionId ?? 2;
  const positive = (value: number | undefined, fallback: number, what: string): number => {
    const v = value ?? fallback;
    if (!Number.isSafeInteger(v) || v < 1) throw new SourceError('MIG_ERR_SOURCE_CONFIG', `${what} must be a positive integer, got ${v}`);
    return v;
  };
  if (config.uuid !== undefined && config.uuid.length !== 16) {
    throw new SourceError('MIG_ERR_SOURCE_CONFIG', `uuid must be 16 bytes, got ${config.uuid.length}`);
  }
  return {
    payloadMode: config.payloadMode ?? 'bytes',
    hintPolicy: config.hintPolicy ?? 'refuse',
    machine: config.machine ?? 'none',
    uuid: config.uuid ?? null,
    ramSectionId,
    sectionIdOf: config.sectionIdOf ?? ((idstr, instanceId) => defaultSectionId(ids, ramSectionId, idstr, instanceId)),
    sendVmdesc: config.sendVmdesc ?? true,
    vmdescriptionJson: config.vmdescriptionJson ?? defaultVmdescriptionJson,
    maxChunkPages: positive(config.maxChunkPages, DEFAULT_MAX_CHUNK_PAGES, 'maxChunkPages'),
    iterationNsMin: config.iterationNsMin === undefined ? null : positive(config.iterationNsMin, 1, 'iterationNsMin'),
    requestQueueLimit: positive(config.requestQueueLimit, DEFAULT_REQUEST_QUEUE_LIMIT, 'requestQueueLimit'),
    chunkSizeBytes: positive(config.chunkSizeBytes, DEFAULT_SOURCE_CHUNK_BYTES, 'chunkSizeBytes'),
    allocChunk: config.allocChunk,
    debugChecks: config.debugChecks ?? false,
    awaitWritten: config.awaitWritten ?? false,
    completionSpansPumps: config.completionSpansPumps ?? false,
    pageViews: config.pageViews ?? false,
  };
}

/** QEMU 7.2 `-M none` ids: timer 0, ram 2, globalstate 4; others from 5 on, first come first served. */
function defaultSectionId(ids: Map<string, number>, ramSectionId: number, idstr: string, instanceId: number): number {
  if (instanceId === 0 && idstr === 'timer') return 0;
  if (instanceId === 0 && idstr === 'globalstate') return 4;
  const key = `${idstr}/${instanceId}`;
  let id = ids.get(key);
  if (id === undefined) {
    id = 5 + ids.size;
    if (id === ramSectionId) id++;
    ids.set(key, id);
  }
  return id;
}

export function checkSupported(config: SourceEngineConfig): void {
  const shellMultifd = config.multifd === true;
  const on = UNSUPPORTED_CAPABILITIES.filter((name) => config.capabilities[name] && !(name === 'multifd' && shellMultifd));
  if (on.length > 0) {
    throw new SourceError('MIG_ERR_SOURCE_UNSUPPORTED', `The source engine does not implement capability ${on.join(', ')}`);
  }
  if (config.capabilities.multifd && config.capabilities['postcopy-ram']) {
    throw new SourceError('MIG_ERR_SOURCE_UNSUPPORTED', 'The source engine does not implement multifd together with postcopy-ram');
  }
  if (config.capabilities.multifd && (config.payloadMode ?? 'bytes') !== 'bytes') {
    throw new SourceError('MIG_ERR_SOURCE_UNSUPPORTED', 'multifd needs the bytes payload mode');
  }
}

/** The page ranges of [0, pageCount) outside every block's used range. */
export function gapsOf(blocks: readonly RamBlock[], pageCount: number): Array<readonly [number, number]> {
  const sorted = [...blocks].sort((a, b) => a.startPage - b.startPage);
  const gaps: Array<readonly [number, number]> = [];
  let at = 0;
  for (const b of sorted) {
    if (b.startPage > at) gaps.push([at, b.startPage]);
    at = Math.max(at, b.startPage + b.pageCount);
  }
  if (at < pageCount) gaps.push([at, pageCount]);
  return gaps;
}
