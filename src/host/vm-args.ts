/**
 * From a tokenized QEMU-style command line (qemu-args.ts) to the configuration of one VM
 * (VmCommandLine), with QEMU 7.2's texts for what it refuses. Pure: files named here (a
 * memory-backend-file's mem-path, a pidfile, TLS dirs) are only recorded, never opened.
 *
 * Memory: `-m SIZE` (bare numbers are MiB; default 128M) gives one RAM block named `ram`, as
 * QEMU's `-M none` does; `-M none,memory-backend=ID` with `-object memory-backend-ram|file,
 * id=ID,size=SIZE` names the block after the backend, and `-m`, when also given, must match.
 *
 * virtio-mem (`-device virtio-mem-pci,memdev=MEM,...` with `-m SIZE,maxmem=MAX`): see
 * vm-args-virtio-mem.ts.
 *
 * livemig's additions for `livemig vm`: `--vcpus N` (or QEMU's `-smp N`), `--seed N` and
 * `--workload idle | incrementer[:SIZE[:RATE]] | hot-set:SIZE:RATE | random:RATE[:SIZE] |
 * kernel-build[:USED[:RATE]]` (sizes in bytes with K/M/G suffixes, rates in bytes per second of
 * page writes; kernel-build is allocator churn keeping USED allocated, 60% of RAM by default),
 * `--vcpu-nice N` (0-19: the nice value each vCPU thread sets on itself, so the threads serving
 * migration and page requests get a CPU first; see docs/real-mode.md).
 */
import type { FreePageHintPostcopyPolicy } from '../devices/balloon/postcopy-policy.ts';
import { isFreePageHintPostcopyPolicy } from '../devices/balloon/postcopy-policy.ts';
import { MiB, TARGET_PAGE_SIZE } from '../lib/units.ts';
import { BYTES_BACKING_MAX_SIZE_BYTES } from '../memory/bytes-backing.ts';
import { TransportError, TRANSPORT_ERR_BAD_URI } from '../transport/errors.ts';
import { parseMigrationUri } from '../transport/uri.ts';
import { badValue as bad, checkKeys, optValue, parseOnOff, parseQemuOpts, parseSizeOption as parseSize, type ParsedOption, type QemuOpts } from './qemu-args.ts';
import { parseVirtioMemDevice, resolveVirtioMem, type RamOption, type VirtioMemDraft, type VirtioMemSpec } from './vm-args-virtio-mem.ts';

export type { VirtioMemSpec };

/** A `-object memory-backend-ram|memory-backend-file`. */
export interface MemoryBackendSpec {
  readonly kind: 'ram' | 'file';
  readonly id: string;
  readonly sizeBytes: number;
  /** memory-backend-file: the file whose content is guest RAM. */
  readonly memPath: string | null;
  /** share=on: guest writes reach the file (written back at exit, see memory-backend.ts). */
  readonly share: boolean;
  /** prealloc=on: every page is touched at start, so no first write faults later. */
  readonly prealloc: boolean;
}

/** A `-object tls-creds-x509`. */
export interface TlsCredsSpec {
  readonly id: string;
  readonly dir: string;
  readonly endpoint: 'client' | 'server';
  readonly verifyPeer: boolean;
}

/** A `-device virtio-balloon[-pci]`. */
export interface BalloonSpec {
  readonly id: string | null;
  readonly freePageHint: boolean;
  readonly postcopyPolicy: FreePageHintPostcopyPolicy;
}

/** Where a `-qmp` monitor listens (the QmpServer's address shape). */
export type QmpSpec = { readonly unix: string } | { readonly tcp: { readonly host: string; readonly port: number } };

/** What the vCPUs run (each vCPU gets an equal share of the size and the rate). */
export type WorkloadChoice =
  | { readonly kind: 'idle' }
  | { readonly kind: 'incrementer'; readonly sizeBytes: number | null; readonly rateBytesPerS: number }
  | { readonly kind: 'hot-set'; readonly sizeBytes: number; readonly rateBytesPerS: number }
  | { readonly kind: 'random'; readonly sizeBytes: number | null; readonly rateBytesPerS: number }
  | { readonly kind: 'kernel-build'; readonly usedBytes: number | null; readonly rateBytesPerS: number };

/** One VM's command line, interpreted. */
export interface VmCommandLine {
  /** Boot RAM (`-m`); the virtio-mem region, if any, comes after it. */
  readonly ramSizeBytes: number;
  /** The RAM block's name: `ram`, or the memory backend's id. */
  readonly ramBlockName: string;
  readonly memoryBackend: MemoryBackendSpec | null;
  readonly tlsCreds: readonly TlsCredsSpec[];
  readonly balloon: BalloonSpec | null;
  /** The virtio-mem device; its region follows boot RAM (`ramSizeBytes`), or null. */
  readonly virtioMem: VirtioMemSpec | null;
  /** `-incoming`: a migration URI, `defer`, or null. */
  readonly incoming: string | null;
  readonly qmp: readonly QmpSpec[];
  /** `-S`. */
  readonly startPaused: boolean;
  readonly name: string | null;
  readonly pidfile: string | null;
  readonly daemonize: boolean;
  readonly showVersion: boolean;
  readonly showHelp: boolean;
  readonly vcpus: number;
  readonly workload: WorkloadChoice;
  readonly seed: number;
  /** `--vcpu-nice`: the nice value of every vCPU thread (0, the process's own, by default). */
  readonly vcpuNice: number;
}

/** QEMU's default RAM size. */
export const DEFAULT_RAM_BYTES = 128 * MiB;
/** The default incrementer rate, bytes of page writes per second. */
export const DEFAULT_WORKLOAD_RATE_BYTES_PER_S = 64 * MiB;
/** The most vCPUs a livemig VM runs. */
export const VCPUS_MAX = 16;
/** The lowest priority Linux gives a thread (the highest nice value). */
export const VCPU_NICE_MAX = 19;

function parseCount(text: string, what: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw bad(`${what}: expects an integer from ${min} to ${max}`);
  return n;
}

function required(opts: QemuOpts, key: string, what: string): string {
  const value = optValue(opts, key);
  if (value === undefined) throw bad(`${what}: Parameter '${key}' is missing`);
  return value;
}

/** `-object`: memory backends and TLS credentials. */
function parseObject(text: string, what: string): MemoryBackendSpec | TlsCredsSpec {
  const opts = parseQemuOpts(text, 'qom-type', what);
  const type = opts.implied ?? optValue(opts, 'qom-type') ?? '';
  const id = required(opts, 'id', what);
  if (type === 'memory-backend-ram' || type === 'memory-backend-file') {
    const file = type === 'memory-backend-file';
    const known = ['qom-type', 'id', 'size', 'share', 'prealloc', 'merge', 'dump', 'policy', 'host-nodes', 'reserve', 'x-use-canonical-path-for-ramblock-id'];
    checkKeys(opts, file ? [...known, 'mem-path', 'discard-data', 'align', 'pmem', 'readonly'] : known, type, what);
    const sizeBytes = parseSize(required(opts, 'size', what), what, 'size');
    const memPath = file ? required(opts, 'mem-path', what) : null;
    const flag = (key: string): boolean => {
      const text = optValue(opts, key);
      return text === undefined ? false : parseOnOff(text, what, key);
    };
    return { kind: file ? 'file' : 'ram', id, sizeBytes, memPath, share: flag('share'), prealloc: flag('prealloc') };
  }
  if (type === 'tls-creds-x509') {
    checkKeys(opts, ['qom-type', 'id', 'dir', 'endpoint', 'verify-peer', 'priority', 'sanity-check'], type, what);
    const endpoint = optValue(opts, 'endpoint') ?? 'client';
    if (endpoint !== 'client' && endpoint !== 'server') throw bad(`${what}: Parameter 'endpoint' does not accept value '${endpoint}'`);
    const verify = optValue(opts, 'verify-peer');
    return { id, dir: required(opts, 'dir', what), endpoint, verifyPeer: verify === undefined ? true : parseOnOff(verify, what, 'verify-peer') };
  }
  throw bad(`${what}: Parameter 'qom-type' does not accept value '${type}'`);
}

/** `-device`: the balloon or virtio-mem. */
function parseDevice(text: string, what: string): BalloonSpec | VirtioMemDraft {
  const opts = parseQemuOpts(text, 'driver', what);
  const driver = opts.implied ?? optValue(opts, 'driver') ?? '';
  if (driver === 'virtio-balloon' || driver === 'virtio-balloon-pci') {
    const known = ['driver', 'id', 'bus', 'addr', 'free-page-hint', 'free-page-hint-postcopy', 'deflate-on-oom', 'page-poison', 'free-page-reporting', 'iothread', 'guest-stats-polling-interval'];
    checkKeys(opts, known, 'virtio-balloon-pci', what);
    const hint = optValue(opts, 'free-page-hint');
    const policy = optValue(opts, 'free-page-hint-postcopy') ?? 'refuse';
    if (!isFreePageHintPostcopyPolicy(policy)) throw bad(`${what}: Parameter 'free-page-hint-postcopy' does not accept value '${policy}'`);
    return { id: optValue(opts, 'id') ?? null, freePageHint: hint === undefined ? false : parseOnOff(hint, what, 'free-page-hint'), postcopyPolicy: policy };
  }
  if (driver === 'virtio-mem' || driver === 'virtio-mem-pci') return parseVirtioMemDevice(opts, driver, what);
  throw bad(`${what}: '${driver}' is not a valid device model name`);
}

/** `-qmp unix:PATH,server=on,wait=off` or `tcp:HOST:PORT,server=on,wait=off`. */
function parseQmp(text: string, what: string): QmpSpec {
  const opts = parseQemuOpts(text, 'addr', what);
  const addr = opts.implied ?? '';
  for (const [key, value] of opts.entries) {
    if (key === 'server' && !parseOnOff(value, what, key)) throw bad(`${what}: livemig serves QMP only in server mode (server=on)`);
    else if (key === 'nowait' || key === 'wait' || key === 'server') continue;
    else throw bad(`${what}: Invalid parameter '${key}'`);
  }
  if (addr.startsWith('unix:') && addr.length > 5) return { unix: addr.slice(5) };
  const tcp = /^tcp:([^:]*):(\d{1,5})$/.exec(addr);
  if (tcp !== null && Number(tcp[2]) <= 65535) return { tcp: { host: tcp[1] === '' ? '127.0.0.1' : tcp[1], port: Number(tcp[2]) } };
  throw bad(`${what}: livemig's QMP listens on unix:PATH or tcp:HOST:PORT`);
}

/** `-incoming URI|defer`: QEMU's text for an unknown protocol. */
function parseIncoming(text: string, what: string): string {
  if (text === 'defer') return text;
  try {
    parseMigrationUri(text);
  } catch (error) {
    if (error instanceof TransportError && error.code === TRANSPORT_ERR_BAD_URI) throw bad(`${what}: unknown migration protocol: ${text}`);
    throw bad(`${what}: ${(error as Error).message}`);
  }
  return text;
}

/** `--workload` (see the module comment). */
export function parseWorkload(text: string): WorkloadChoice {
  const what = `--workload ${text}`;
  const [kind, ...rest] = text.split(':');
  const size = (t: string | undefined): number | null => (t === undefined || t === '' ? null : parseSize(t, what, 'size'));
  const rate = (t: string | undefined): number => (t === undefined || t === '' ? DEFAULT_WORKLOAD_RATE_BYTES_PER_S : parseSize(t, what, 'rate'));
  switch (kind) {
    case 'idle':
      if (rest.length > 0) break;
      return { kind: 'idle' };
    case 'incrementer':
      if (rest.length > 2) break;
      return { kind: 'incrementer', sizeBytes: size(rest[0]), rateBytesPerS: rate(rest[1]) };
    case 'hot-set': {
      const sizeBytes = size(rest[0]);
      if (rest.length !== 2 || sizeBytes === null) break;
      return { kind: 'hot-set', sizeBytes, rateBytesPerS: rate(rest[1]) };
    }
    case 'random':
      if (rest.length < 1 || rest.length > 2) break;
      return { kind: 'random', rateBytesPerS: rate(rest[0]), sizeBytes: size(rest[1]) };
    case 'kernel-build':
      if (rest.length > 2) break;
      return { kind: 'kernel-build', usedBytes: size(rest[0]), rateBytesPerS: rate(rest[1]) };
  }
  throw bad(`${what}: expects idle, incrementer[:SIZE[:RATE]], hot-set:SIZE:RATE, random:RATE[:SIZE] or kernel-build[:USED[:RATE]]`);
}

/** Mutable collector while options are read in order. */
interface Draft {
  machineBackend: string | null;
  ramText: string | null;
  objects: (MemoryBackendSpec | TlsCredsSpec)[];
  balloon: BalloonSpec | null;
  virtioMem: VirtioMemDraft | null;
  incoming: string | null;
  qmp: QmpSpec[];
  flags: Set<string>;
  name: string | null;
  pidfile: string | null;
  vcpus: number | null;
  workload: WorkloadChoice;
  seed: number;
  vcpuNice: number;
}

/** `-M none[,memory-backend=ID]`: the only machine type livemig has. */
function parseMachine(text: string, what: string): string | null {
  const opts = parseQemuOpts(text, 'type', what);
  const type = opts.implied ?? optValue(opts, 'type') ?? 'none';
  if (type !== 'none') throw bad('unsupported machine type', ['Use -machine help to list supported machines']);
  checkKeys(opts, ['type', 'memory-backend', 'accel', 'dump-guest-core', 'mem-merge', 'usb', 'graphics'], 'none-machine', what);
  return optValue(opts, 'memory-backend') ?? null;
}

function readOption(draft: Draft, option: ParsedOption): void {
  const value = option.value ?? '';
  const what = option.value === null ? option.spelling : `${option.spelling} ${value}`;
  switch (option.name) {
    case 'M':
      draft.machineBackend = parseMachine(value, what);
      return;
    case 'm':
      draft.ramText = value;
      return;
    case 'object':
      draft.objects.push(parseObject(value, what));
      return;
    case 'device': {
      const device = parseDevice(value, what);
      if ('memdev' in device) {
        if (draft.virtioMem !== null) throw bad(`${what}: livemig supports one virtio-mem device`);
        draft.virtioMem = device;
        return;
      }
      if (draft.balloon !== null) throw bad(`${what}: livemig supports one virtio-balloon device`);
      draft.balloon = device;
      return;
    }
    case 'incoming':
      draft.incoming = parseIncoming(value, what);
      return;
    case 'qmp':
      draft.qmp.push(parseQmp(value, what));
      return;
    case 'name': {
      const opts = parseQemuOpts(value, 'guest', what);
      draft.name = opts.implied ?? optValue(opts, 'guest') ?? null;
      return;
    }
    case 'pidfile':
      draft.pidfile = value;
      return;
    case 'smp':
    case 'vcpus': {
      const opts = parseQemuOpts(value, 'cpus', what);
      draft.vcpus = parseCount(opts.implied ?? optValue(opts, 'cpus') ?? '', what, 0, VCPUS_MAX);
      return;
    }
    case 'workload':
      draft.workload = parseWorkload(value);
      return;
    case 'seed':
      draft.seed = parseCount(value, what, 0, 0xffffffff);
      return;
    case 'vcpu-nice':
      draft.vcpuNice = parseCount(value, what, 0, VCPU_NICE_MAX);
      return;
    default:
      // display, accel, nodefaults, nographic, enable-kvm: accepted and ignored; S, daemonize,
      // version, h: flags read below.
      draft.flags.add(option.name);
  }
}

/** Resolves the RAM: size and block name from -m and the machine's memory backend. */
function resolveMemory(draft: Draft, ram: RamOption | null): { sizeBytes: number; blockName: string; backend: MemoryBackendSpec | null } {
  let sizeBytes = ram?.sizeBytes ?? DEFAULT_RAM_BYTES;
  let backend: MemoryBackendSpec | null = null;
  if (draft.machineBackend !== null) {
    const found = draft.objects.find((o): o is MemoryBackendSpec => 'kind' in o && o.id === draft.machineBackend);
    if (found === undefined) throw bad(`Memory backend '${draft.machineBackend}' not found`);
    if (ram !== null && ram.sizeBytes !== found.sizeBytes) throw bad('Machine memory size does not match the size of the memory backend');
    backend = found;
    sizeBytes = found.sizeBytes;
  }
  if (sizeBytes % TARGET_PAGE_SIZE !== 0 || sizeBytes <= 0) throw bad(`RAM size ${sizeBytes} is not a positive multiple of ${TARGET_PAGE_SIZE}`);
  return { sizeBytes, blockName: backend?.id ?? 'ram', backend };
}

/** `-m [size=]SIZE[,slots=N,maxmem=SIZE]`; a bare number is MiB. */
function parseRamOption(text: string): RamOption {
  const what = `-m ${text}`;
  const opts = parseQemuOpts(text, 'size', what);
  checkKeys(opts, ['size', 'slots', 'maxmem'], 'memory', what);
  const sizeBytes = parseSize(opts.implied ?? optValue(opts, 'size') ?? '', what, 'size', 'M');
  const maxmemText = optValue(opts, 'maxmem');
  const maxmemBytes = maxmemText === undefined ? null : parseSize(maxmemText, what, 'maxmem');
  if (maxmemBytes !== null && maxmemBytes < sizeBytes) {
    throw bad(`invalid value of maxmem: maximum memory size (0x${maxmemBytes.toString(16)}) must be at least the initial memory size (0x${sizeBytes.toString(16)})`);
  }
  return { sizeBytes, maxmemBytes };
}

/** Interprets tokenized options (see tokenizeQemuArgs). */
export function interpretVmArgs(options: readonly ParsedOption[]): VmCommandLine {
  const draft: Draft = {
    machineBackend: null, ramText: null, objects: [], balloon: null, virtioMem: null, incoming: null, qmp: [],
    flags: new Set(), name: null, pidfile: null, vcpus: null, workload: { kind: 'idle' }, seed: 1, vcpuNice: 0,
  };
  for (const option of options) readOption(draft, option);
  const ram = draft.ramText === null ? null : parseRamOption(draft.ramText);
  const memory = resolveMemory(draft, ram);
  const virtioMem = draft.virtioMem === null
    ? null
    : resolveVirtioMem(draft.virtioMem, draft.objects.filter((o): o is MemoryBackendSpec => 'kind' in o), draft.machineBackend, { sizeBytes: memory.sizeBytes, maxmemBytes: ram?.maxmemBytes ?? null });
  const totalBytes = memory.sizeBytes + (virtioMem?.regionSizeBytes ?? 0);
  if (totalBytes > BYTES_BACKING_MAX_SIZE_BYTES) throw bad(`RAM size ${totalBytes} exceeds livemig's real-mode limit of ${BYTES_BACKING_MAX_SIZE_BYTES} bytes`);
  const ids = new Set<string>();
  for (const o of draft.objects) {
    if (ids.has(o.id)) throw bad(`attempt to add duplicate property '${o.id}' to object (type 'container')`);
    ids.add(o.id);
  }
  const vcpus = draft.vcpus ?? (draft.workload.kind === 'idle' ? 0 : 1);
  if (draft.workload.kind !== 'idle' && vcpus === 0) throw bad('--workload needs at least one vCPU (--vcpus N)');
  return {
    ramSizeBytes: memory.sizeBytes,
    ramBlockName: memory.blockName,
    memoryBackend: memory.backend,
    tlsCreds: draft.objects.filter((o): o is TlsCredsSpec => 'endpoint' in o),
    balloon: draft.balloon,
    virtioMem,
    incoming: draft.incoming,
    qmp: draft.qmp,
    startPaused: draft.flags.has('S'),
    name: draft.name,
    pidfile: draft.pidfile,
    daemonize: draft.flags.has('daemonize'),
    showVersion: draft.flags.has('version'),
    showHelp: draft.flags.has('h'),
    vcpus,
    workload: draft.workload,
    seed: draft.seed,
    vcpuNice: draft.vcpuNice,
  };
}
