/**
 * QEMU 7.2 → QEMU 7.2 migrations over loopback TCP, driven from TypeScript: the baselines of
 * the benchmark table (src/bench/qemu-group.ts) and the interop test of those pieces.
 *
 * A pair is two `-M none` QEMUs (no CPU, no devices: the stream is RAM plus a few sections).
 * The source's RAM is a `memory-backend-file` over a pattern file in /dev/shm (share=on,
 * prealloc=on, so every page is resident and non-zero) or an untouched `memory-backend-ram`
 * (all zero); the destination has its own `memory-backend-ram` and is started with
 * `-incoming defer`, so that capabilities (multifd, postcopy-ram) and parameters (channels,
 * tls-creds) are set before it listens on `tcp:127.0.0.1:0` (the port QEMU picked is read back
 * from query-migrate's socket-address). `max-bandwidth` defaults to 100 GiB/s on the source:
 * QEMU's default of 128 MiB/s would be the figure measured otherwise.
 *
 * Timing: the `events` capability is on at both ends; a run is timed from just before the
 * `migrate` command to the arrival of the source's MIGRATION `completed` event (wall), and to
 * the destination's (end to end). QEMU's own figures (total-time, setup-time, downtime, mbps,
 * transferred, ...) are re-queried until total-time is filled in: 7.2 reports `completed` a
 * moment before it sets them (and multifd runs may keep total-time at 0).
 *
 * `measurePostcopyFault` throttles precopy so that late pages are surely still on the source,
 * switches to postcopy early (background pages then flow at max-postcopy-bandwidth, unlimited
 * by default), then times QMP `pmemsave` of late pages on the destination: each read is a
 * userfaultfd fault served by a page request over the return path (the source's
 * ram.postcopy-requests counts them).
 *
 * Every QEMU runs under the harness watchdog (and coreutils' `timeout`) and is stopped by PID.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QmpError, type MigrationInfo, type QmpEvent } from './qmp-client.ts';
import { startQemu, type QemuProcess } from './qemu.ts';
import { processCpuMs, sleep } from './process-util.ts';
import { mismatchedPages, PAGE_BYTES } from './ram-pattern.ts';

const BASE_ARGS = ['-nodefaults', '-display', 'none'];
/** 100 GiB/s: far above anything loopback can carry, i.e. no cap. */
export const UNCAPPED_BANDWIDTH = 100 * 1024 ** 3;
const FINAL = new Set(['completed', 'failed', 'cancelled']);

// ---------------------------------------------------------------------------------------------
// x509 credentials for tls-creds-x509.

/**
 * Generates, with the openssl CLI, a CA and server/client certificates into `dir` laid out as
 * QEMU's tls-creds-x509 expects (ca-cert.pem, server-cert.pem, server-key.pem,
 * client-cert.pem, client-key.pem). EC P-256 keys; the server certificate names localhost and
 * 127.0.0.1. Throws with openssl's stderr on failure.
 */
export function makeQemuTlsCreds(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const openssl = (args: readonly string[]): void => {
    const run = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    if (run.error !== undefined || run.status !== 0) {
      throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${run.error?.message ?? run.stderr.trim()}`);
    }
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '2', '-subj', '/CN=livemig bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = (name: string, subject: string, extensions: string, serial: number): void => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(['req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-set_serial', String(serial),
      '-days', '2', '-out', `${name}-cert.pem`, '-extfile', `${name}.ext`]);
  };
  leaf('server', '/CN=localhost', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n', 2);
  leaf('client', '/CN=livemig-bench-client', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n', 3);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// A source/destination pair.

/** The source's RAM: a pattern file (see writePatternFile) or untouched, all-zero anonymous memory. */
export type SourceRam = { readonly kind: 'file'; readonly path: string } | { readonly kind: 'zero' };

export interface MigrationPairOptions {
  readonly sizeBytes: number;
  readonly source: SourceRam;
  /** multifd with this many channels on both sides (absent or 0: single channel). */
  readonly multifdChannels?: number;
  /** A tls-creds-x509 directory (makeQemuTlsCreds): TLS on the migration channel, peers verified. */
  readonly tlsCredsDir?: string;
  /** postcopy-ram on both sides. */
  readonly postcopy?: boolean;
  /** Source max-bandwidth in bytes/s; default UNCAPPED_BANDWIDTH. */
  readonly maxBandwidth?: number;
  /** Source max-postcopy-bandwidth in bytes/s (0 = unlimited, QEMU's default). */
  readonly maxPostcopyBandwidth?: number;
  /** Each QEMU is killed this long after its start. Default 120 s. */
  readonly watchdogMs?: number;
  readonly qemuPath?: string;
  /**
   * The destination's memory-backend-ram with prealloc=on: QEMU touches all of its RAM at
   * start-up, as livemig's destination does while it listens (host/prefault.ts), so neither
   * takes first-touch faults during the migration.
   */
  readonly destinationPrealloc?: boolean;
}

export interface MigrationPair {
  readonly source: QemuProcess;
  readonly destination: QemuProcess;
  /** Where the destination listens, e.g. `tcp:127.0.0.1:40123`. */
  readonly uri: string;
  /** Stops both QEMUs (by PID, after QMP quit) and removes their temp dirs. */
  stop(): Promise<void>;
}

/** A QEMU command failed while the pair was being set up or run; the message carries QEMU's error (class and desc) verbatim, then its stderr. */
export class QemuPairError extends Error {
  override name = 'QemuPairError';
  constructor(message: string, readonly stderr: string) {
    super(stderr.trim() === '' ? message : `${message}; QEMU stderr: ${stderr.trim()}`);
  }
}

function ramArgs(sizeBytes: number, backend: string): string[] {
  return ['-M', 'none,memory-backend=mem', '-m', `${sizeBytes}B`, ...BASE_ARGS, '-object', backend];
}

async function step<T>(what: string, qemu: QemuProcess, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const text = error instanceof QmpError ? `${error.errorClass}: ${error.desc}` : (error as Error).message;
    throw new QemuPairError(`${qemu.name}: ${what}: ${text}`, qemu.stderr);
  }
}

/**
 * Starts the destination (listening) and the source, with capabilities and parameters set on
 * both; the migration itself is not started. On failure everything started is stopped.
 */
export async function startMigrationPair(options: MigrationPairOptions): Promise<MigrationPair> {
  const { sizeBytes } = options;
  const watchdogMs = options.watchdogMs ?? 120_000;
  const tls = options.tlsCredsDir;
  const started: QemuProcess[] = [];
  const stopAll = async (): Promise<void> => {
    for (const qemu of started.splice(0).reverse()) await qemu.stop();
  };
  try {
    const dstBackend = `memory-backend-ram,id=mem,size=${sizeBytes}${options.destinationPrealloc === true ? ',prealloc=on' : ''}`;
    const dstArgs = [...ramArgs(sizeBytes, dstBackend), '-incoming', 'defer'];
    if (tls !== undefined) dstArgs.push('-object', `tls-creds-x509,id=tls0,dir=${tls},endpoint=server,verify-peer=on`);
    const destination = await startQemu({ name: 'destination', args: dstArgs, watchdogMs, qemuPath: options.qemuPath });
    started.push(destination);

    const srcBackend = options.source.kind === 'file'
      ? `memory-backend-file,id=mem,size=${sizeBytes},mem-path=${options.source.path},share=on,prealloc=on`
      : `memory-backend-ram,id=mem,size=${sizeBytes}`;
    const srcArgs = ramArgs(sizeBytes, srcBackend);
    if (tls !== undefined) srcArgs.push('-object', `tls-creds-x509,id=tls0,dir=${tls},endpoint=client,verify-peer=on`);
    const source = await startQemu({ name: 'source', args: srcArgs, watchdogMs, qemuPath: options.qemuPath });
    started.push(source);

    const channels = options.multifdChannels ?? 0;
    const capabilities = [{ capability: 'events', state: true }];
    if (channels > 0) capabilities.push({ capability: 'multifd', state: true });
    if (options.postcopy === true) capabilities.push({ capability: 'postcopy-ram', state: true });
    const common: Record<string, unknown> = {};
    if (channels > 0) common['multifd-channels'] = channels;
    if (tls !== undefined) common['tls-creds'] = 'tls0';
    for (const qemu of [destination, source]) {
      await step('migrate-set-capabilities', qemu, () => qemu.qmp.execute('migrate-set-capabilities', { capabilities }));
      if (Object.keys(common).length > 0) await step('migrate-set-parameters', qemu, () => qemu.qmp.execute('migrate-set-parameters', common));
    }
    const sourceParams: Record<string, unknown> = { 'max-bandwidth': options.maxBandwidth ?? UNCAPPED_BANDWIDTH };
    if (options.maxPostcopyBandwidth !== undefined) sourceParams['max-postcopy-bandwidth'] = options.maxPostcopyBandwidth;
    await step('migrate-set-parameters', source, () => source.qmp.execute('migrate-set-parameters', sourceParams));

    await step('migrate-incoming', destination, () => destination.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' }));
    const listening = await step('query-migrate', destination, () => destination.qmp.execute<MigrationInfo>('query-migrate'));
    const addresses = listening['socket-address'] as ReadonlyArray<{ readonly port?: string | number }> | undefined;
    const port = Number(addresses?.[0]?.port ?? Number.NaN);
    if (!Number.isInteger(port) || port <= 0) {
      throw new QemuPairError(`destination: no listening port in query-migrate: ${JSON.stringify(listening)}`, destination.stderr);
    }
    return { source, destination, uri: `tcp:127.0.0.1:${port}`, stop: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// A timed precopy run.

/** One precopy migration's figures. Times in ms; null when QEMU did not report that figure. */
export interface PrecopyRun {
  /** Source's final status (`completed` on success). */
  readonly status: string;
  readonly destinationStatus: string;
  /** `migrate` issued → source MIGRATION completed event received. */
  readonly wallMs: number;
  /** `migrate` issued → destination MIGRATION completed event received (the migration is over). */
  readonly endToEndMs: number;
  /** Source event timestamps, setup → completed (QEMU's clock). */
  readonly eventMs: number | null;
  /** query-migrate on the source after completion. */
  readonly totalTimeMs: number | null;
  readonly setupTimeMs: number | null;
  readonly downtimeMs: number | null;
  readonly mbps: number | null;
  readonly transferredBytes: number | null;
  readonly normalPages: number | null;
  readonly duplicatePages: number | null;
  readonly multifdBytes: number | null;
  /**
   * CPU time (user + system, all threads; /proc/PID/stat) each QEMU spent from `migrate` to
   * the destination's completed event, ms; null without /proc.
   */
  readonly sourceCpuMs: number | null;
  readonly destinationCpuMs: number | null;
  readonly sizeBytes: number;
  /** The source's and the destination's final query-migrate replies, verbatim. */
  readonly source: MigrationInfo;
  readonly destination: MigrationInfo;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function eventSeconds(event: QmpEvent): number {
  return event.timestamp.seconds + event.timestamp.microseconds / 1e6;
}

function statusIs(statuses: ReadonlySet<string>): (event: QmpEvent) => boolean {
  return (event) => statuses.has(String(event.data?.status));
}

/** query-migrate until total-time is filled in (7.2 says `completed` a moment before), at most ~1 s. */
async function settledInfo(qemu: QemuProcess): Promise<MigrationInfo> {
  let info = await qemu.qmp.execute<MigrationInfo>('query-migrate');
  for (let i = 0; i < 40 && info.status === 'completed' && !(num(info['total-time']) ?? 0); i++) {
    await sleep(25);
    info = await qemu.qmp.execute<MigrationInfo>('query-migrate');
  }
  return info;
}

/**
 * Runs the pair's migration to the end and returns its figures. Throws QemuPairError with
 * QEMU's error-desc when either side fails.
 */
export async function runPrecopy(pair: MigrationPair, sizeBytes: number, timeoutMs = 120_000, clockNs: () => number = () => Number(process.hrtime.bigint())): Promise<PrecopyRun> {
  const { source, destination } = pair;
  const srcDone = source.qmp.waitEvent('MIGRATION', statusIs(FINAL), timeoutMs).then((event) => ({ event, ns: clockNs() }));
  const dstDone = destination.qmp.waitEvent('MIGRATION', statusIs(FINAL), timeoutMs).then((event) => ({ event, ns: clockNs() }));
  // Keep an early rejection (QEMU died) from being reported as unhandled while the other waits.
  srcDone.catch(() => undefined);
  dstDone.catch(() => undefined);
  const cpuMs = (): number[] => [source.qemuPid, destination.qemuPid].map(processCpuMs);
  const cpuBefore = cpuMs();
  const startNs = clockNs();
  await step('migrate', source, () => source.qmp.execute('migrate', { uri: pair.uri }));
  const src = await step('waiting for the MIGRATION event', source, () => srcDone);
  const srcInfo = await step('query-migrate', source, () => settledInfo(source));
  const srcStatus = String(src.event.data?.status);
  if (srcStatus !== 'completed') {
    throw new QemuPairError(`source: migration ${srcStatus}: ${srcInfo['error-desc'] ?? '(no error-desc)'}`, source.stderr);
  }
  const dst = await step('waiting for the MIGRATION event', destination, () => dstDone);
  const [sourceCpuMs, destinationCpuMs] = cpuMs().map((ms, i) => (Number.isNaN(ms - cpuBefore[i]) ? null : ms - cpuBefore[i]));
  const dstInfo = await step('query-migrate', destination, () => destination.qmp.execute<MigrationInfo>('query-migrate'));
  const dstStatus = String(dst.event.data?.status);
  if (dstStatus !== 'completed') {
    throw new QemuPairError(`destination: incoming migration ${dstStatus}: ${dstInfo['error-desc'] ?? '(no error-desc)'}`, destination.stderr);
  }
  const setup = source.qmp.events.find((e) => e.event === 'MIGRATION' && e.data?.status === 'setup');
  const ram = srcInfo.ram ?? {};
  return {
    status: srcStatus,
    destinationStatus: dstStatus,
    wallMs: (src.ns - startNs) / 1e6,
    endToEndMs: (dst.ns - startNs) / 1e6,
    eventMs: setup === undefined ? null : (eventSeconds(src.event) - eventSeconds(setup)) * 1000,
    totalTimeMs: num(srcInfo['total-time']),
    setupTimeMs: num(srcInfo['setup-time']),
    downtimeMs: num(srcInfo.downtime),
    mbps: num(ram.mbps),
    transferredBytes: num(ram.transferred),
    normalPages: num(ram.normal),
    duplicatePages: num(ram.duplicate),
    multifdBytes: num(ram['multifd-bytes']),
    sourceCpuMs,
    destinationCpuMs,
    sizeBytes,
    source: srcInfo,
    destination: dstInfo,
  };
}

/** Pages to spot-check after a run: the first, a few spread through RAM, and the last. */
export function spotCheckPages(sizeBytes: number): number[] {
  const pages = sizeBytes / PAGE_BYTES;
  return [...new Set([0, 1, Math.floor(pages / 3), Math.floor((2 * pages) / 3), pages - 1])].filter((p) => p >= 0 && p < pages);
}

/** pmemsave of `pages` on `qemu`, each compared with the pattern (or zero); returns the bad ones. */
export async function verifyPages(qemu: QemuProcess, pages: readonly number[], expect: 'pattern' | 'zero'): Promise<number[]> {
  const bad: number[] = [];
  for (const page of pages) {
    const bytes = await qemu.pmemsave(page * PAGE_BYTES, PAGE_BYTES);
    bad.push(...mismatchedPages(bytes, page * PAGE_BYTES, expect));
  }
  return bad;
}

export interface MeasuredPrecopy extends PrecopyRun {
  /** Spot-checked destination pages that differ from the source (empty when all match). */
  readonly badPages: readonly number[];
  readonly checkedPages: readonly number[];
}

/** Starts a pair, migrates, spot-checks the destination and stops both. */
export async function measurePrecopy(
  options: MigrationPairOptions & { readonly timeoutMs?: number; readonly clockNs?: () => number; readonly settleMs?: number },
): Promise<MeasuredPrecopy> {
  const pair = await startMigrationPair(options);
  try {
    // Both processes get the same time to finish starting before `migrate` (the bench gives
    // every pair it compares the same wait: registry.ts benchSettleMs).
    if ((options.settleMs ?? 0) > 0) await sleep(options.settleMs ?? 0);
    const run = await runPrecopy(pair, options.sizeBytes, options.timeoutMs, options.clockNs);
    const checkedPages = spotCheckPages(options.sizeBytes);
    const badPages = await verifyPages(pair.destination, checkedPages, options.source.kind === 'file' ? 'pattern' : 'zero');
    return { ...run, checkedPages, badPages };
  } finally {
    await pair.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Postcopy: the latency of a page the destination does not have yet.

export interface PostcopyFaultOptions {
  readonly sizeBytes: number;
  /** A pattern file (the source RAM); the faulted pages are checked against it. */
  readonly patternPath: string;
  /** How many late pages to fault, one at a time. Default 5. */
  readonly faults?: number;
  /** How many resident (already received) pages to read the same way, for the QMP cost. Default 3. */
  readonly residentReads?: number;
  /** Source max-bandwidth during precopy, bytes/s: low, so that late pages are not sent before the switch. Default 32 MiB/s. */
  readonly precopyBandwidth?: number;
  /** Source max-postcopy-bandwidth, bytes/s (0 = unlimited, QEMU's default). Default 0. */
  readonly postcopyBandwidth?: number;
  /** Precopy time before migrate-start-postcopy. Default 300 ms. */
  readonly switchAfterMs?: number;
  readonly watchdogMs?: number;
  readonly qemuPath?: string;
  readonly clockNs?: () => number;
}

export interface PostcopyFaultRun {
  /** ms per pmemsave of one page not yet received (each a userfaultfd fault + page request, checked by the source's postcopy-requests). */
  readonly faultMs: readonly number[];
  /** ms per pmemsave of one page received during precopy (the QMP + pmemsave cost alone). */
  readonly residentMs: readonly number[];
  /** The late pages whose read raised the source's postcopy-requests (the ones in faultMs). */
  readonly faultedPages: readonly number[];
  /** ms of late-page reads that raised no page request (the page had arrived meanwhile); not in faultMs. */
  readonly arrivedMs: readonly number[];
  /** Late pages whose content differs from the pattern. */
  readonly badPages: readonly number[];
  /** The source's ram.postcopy-requests after the faults (one per fault expected). */
  readonly postcopyRequests: number | null;
  /** The destination's status when the faults were taken (postcopy-active expected). */
  readonly destinationStatus: string;
  /** The source's query-migrate after the faults, verbatim. */
  readonly source: MigrationInfo;
}

/**
 * Starts a postcopy-capable migration with precopy throttled to `precopyBandwidth`, switches
 * to postcopy after `switchAfterMs`, waits for the destination to be postcopy-active, then
 * reads late pages (from the last quarter of RAM, 1 MiB apart, last page first) with pmemsave
 * and times each; a read counts as a fault when the source's postcopy-requests went up during
 * it. The pair is then stopped without waiting for the migration to finish.
 */
export async function measurePostcopyFault(options: PostcopyFaultOptions): Promise<PostcopyFaultRun> {
  const clockNs = options.clockNs ?? (() => Number(process.hrtime.bigint()));
  const pair = await startMigrationPair({
    sizeBytes: options.sizeBytes,
    source: { kind: 'file', path: options.patternPath },
    postcopy: true,
    maxBandwidth: options.precopyBandwidth ?? 32 * 1024 * 1024,
    maxPostcopyBandwidth: options.postcopyBandwidth ?? 0,
    watchdogMs: options.watchdogMs,
    qemuPath: options.qemuPath,
  });
  const { source, destination } = pair;
  try {
    await step('migrate', source, () => source.qmp.execute('migrate', { uri: pair.uri }));
    await step('waiting for precopy', source, () => source.qmp.waitMigration(['active', 'failed', 'cancelled'], 30_000, 5));
    await sleep(options.switchAfterMs ?? 300);
    await step('migrate-start-postcopy', source, () => source.qmp.execute('migrate-start-postcopy'));
    const dstInfo = await step('waiting for postcopy-active', destination, () =>
      destination.qmp.waitMigration(['postcopy-active', 'completed', 'failed', 'cancelled'], 30_000, 5));
    const destinationStatus = String(dstInfo.status);
    if (destinationStatus !== 'postcopy-active') {
      const srcInfo = await source.qmp.execute<MigrationInfo>('query-migrate').catch(() => ({}) as MigrationInfo);
      throw new QemuPairError(
        `destination: ${destinationStatus} instead of postcopy-active (${dstInfo['error-desc'] ?? srcInfo['error-desc'] ?? 'no error-desc'})`,
        `${destination.stderr}${source.stderr}`,
      );
    }
    const pages = options.sizeBytes / PAGE_BYTES;
    const time = async (page: number): Promise<{ ms: number; bytes: Uint8Array }> => {
      const start = clockNs();
      const bytes = await step(`pmemsave of page ${page}`, destination, () => destination.pmemsave(page * PAGE_BYTES, PAGE_BYTES));
      return { ms: (clockNs() - start) / 1e6, bytes };
    };
    const residentMs: number[] = [];
    for (let i = 0; i < (options.residentReads ?? 3); i++) residentMs.push((await time(i)).ms);
    const requests = async (): Promise<number> => {
      const info = await step('query-migrate', source, () => source.qmp.execute<MigrationInfo>('query-migrate'));
      return num(info.ram?.['postcopy-requests']) ?? 0;
    };
    const faultMs: number[] = [];
    const faultedPages: number[] = [];
    const arrivedMs: number[] = [];
    const badPages: number[] = [];
    const stride = 256; // 1 MiB apart: each read is its own page request
    let before = await requests();
    for (let i = 0; i < (options.faults ?? 5); i++) {
      const page = pages - 1 - i * stride;
      if (page < (pages * 3) / 4) break;
      const { ms, bytes } = await time(page);
      badPages.push(...mismatchedPages(bytes, page * PAGE_BYTES, 'pattern'));
      // Untimed: did this read make the destination ask the source (a real fault)?
      const after = await requests();
      if (after > before) {
        faultMs.push(ms);
        faultedPages.push(page);
      } else {
        arrivedMs.push(ms);
      }
      before = after;
    }
    const srcInfo = await step('query-migrate', source, () => source.qmp.execute<MigrationInfo>('query-migrate'));
    return { faultMs, residentMs, arrivedMs, faultedPages, badPages, postcopyRequests: num(srcInfo.ram?.['postcopy-requests']), destinationStatus, source: srcInfo };
  } finally {
    await pair.stop();
  }
}
