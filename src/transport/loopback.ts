/**
 * The machine's limit for the benchmark table: how fast bytes move over loopback TCP.
 *
 * `measureIperf3BytesPerSec` runs iperf3 (client and a one-shot server on 127.0.0.1) when it is
 * installed. `measureLoopbackBytesPerSec` is the fallback and the Node-side reference: it pumps
 * `sizeBytes` through a tcp channel pair in writes of `writeSizeBytes`, respecting
 * backpressure, and times from the first write to the last byte received. The gap between
 * 4 KiB and 1 MiB writes is why the engine batches (see ChannelWriter).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { assert } from '../lib/assert.ts';
import { KiB, MiB, NS_PER_S } from '../lib/units.ts';
import { waitForDrain } from './channel.ts';
import { connectSocket } from './socket.ts';
import type { StreamChannel } from './stream-channel.ts';
import { TransportError, TRANSPORT_ERR_TIMEOUT } from './errors.ts';

/** Bytes of distinct memory the sender cycles through (views, never copies). */
const SOURCE_BUFFER_BYTES = 8 * MiB;

/**
 * The receiving end, run in a worker thread so that sender and receiver each get a core, as
 * a real source and destination would. Plain JS: the worker is evaluated without tsx. It
 * listens on 127.0.0.1, reports its port, counts bytes and reports the time (process.hrtime,
 * one clock for the whole process) when `size` bytes have arrived.
 */
const RECEIVER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const server = net.createServer((socket) => {
  let count = 0;
  socket.on('data', (chunk) => {
    count += chunk.length;
    if (count >= workerData.sizeBytes) parentPort.postMessage({ doneNs: process.hrtime.bigint() });
  });
  socket.on('error', () => undefined);
  socket.on('close', () => server.close(() => parentPort.close()));
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;

/** Pumps `sizeBytes` over a loopback TCP pair in `writeSizeBytes` writes; returns bytes per second. */
export async function measureLoopbackBytesPerSec(sizeBytes: number, writeSizeBytes: number, timeoutMs = 60_000): Promise<number> {
  assert(sizeBytes > 0 && writeSizeBytes > 0, 'sizes must be positive');
  const source = Buffer.alloc(Math.max(SOURCE_BUFFER_BYTES, writeSizeBytes), 0xa5);
  const worker = new Worker(RECEIVER_SOURCE, { eval: true, workerData: { sizeBytes } });
  let sender: StreamChannel | null = null;
  try {
    const messages = workerMessages(worker, timeoutMs);
    const { port } = (await messages.next()) as { port: number };
    sender = await connectSocket({ kind: 'tcp', host: '127.0.0.1', port });
    const startNs = process.hrtime.bigint();
    let offset = 0;
    for (let sent = 0; sent < sizeBytes && !sender.closed;) {
      const length = Math.min(writeSizeBytes, sizeBytes - sent);
      if (offset + length > source.length) offset = 0;
      const ok = sender.write(source.subarray(offset, offset + length));
      offset += length;
      sent += length;
      if (!ok) await waitForDrain(sender);
    }
    const { doneNs } = (await messages.next()) as { doneNs: bigint };
    return (sizeBytes * NS_PER_S) / Number(doneNs - startNs);
  } finally {
    sender?.destroy();
    await sender?.whenClosed();
    await worker.terminate();
  }
}

/** Successive messages of `worker`, each awaited with a deadline; a worker error rejects. */
function workerMessages(worker: Worker, timeoutMs: number): { next(): Promise<unknown> } {
  const inbox: unknown[] = [];
  const waiting: Array<{ resolve: (value: unknown) => void; reject: (error: unknown) => void }> = [];
  let failure: unknown = null;
  worker.on('message', (message: unknown) => {
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter.resolve(message);
    else inbox.push(message);
  });
  worker.on('error', (error) => {
    failure = error;
    for (const waiter of waiting.splice(0)) waiter.reject(error);
  });
  return {
    next: () => {
      if (inbox.length > 0) return Promise.resolve(inbox.shift());
      if (failure !== null) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new TransportError(TRANSPORT_ERR_TIMEOUT, `Loopback measure: no answer from the receiver within ${timeoutMs} ms`)), timeoutMs);
        waiting.push({
          resolve: (value) => { clearTimeout(timer); resolve(value); },
          reject: (error) => { clearTimeout(timer); reject(error); },
        });
      });
    },
  };
}

export interface LoopbackTable {
  /** Bytes per second with 4 KiB writes (one page per write). */
  readonly smallWritesBytesPerSec: number;
  /** Bytes per second with 1 MiB writes (batched). */
  readonly largeWritesBytesPerSec: number;
}

/** The benchmark's fallback row: 4 KiB versus 1 MiB writes, `sizeBytes` each (default 512 MiB). */
export async function measureLoopbackTable(sizeBytes = 512 * MiB): Promise<LoopbackTable> {
  const smallWritesBytesPerSec = await measureLoopbackBytesPerSec(sizeBytes, 4 * KiB);
  const largeWritesBytesPerSec = await measureLoopbackBytesPerSec(sizeBytes, 1 * MiB);
  return { smallWritesBytesPerSec, largeWritesBytesPerSec };
}

/** True when an executable `name` is on PATH. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return dir !== '';
    } catch {
      return false;
    }
  });
}

/** A free TCP port on 127.0.0.1 (bound and released; fine for a one-shot local tool). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = address !== null && typeof address === 'object' ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function run(file: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => (stdout += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', () => resolve({ code: null, stdout }));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
}

/**
 * Loopback TCP throughput by iperf3 (`-J`, receiver side), in bytes per second; null when
 * iperf3 is missing or fails. The one-shot server (`-s -1`) is killed by PID if it lingers.
 */
export async function measureIperf3BytesPerSec(durationS = 3): Promise<number | null> {
  if (!onPath('iperf3')) return null;
  const port = await freePort();
  const server = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const serverExited = new Promise<void>((resolve) => {
    server.once('error', () => resolve());
    server.once('close', () => resolve());
  });
  try {
    // iperf3 binds within milliseconds; retry the client a few times instead of parsing output.
    for (let attempt = 0; attempt < 20; attempt++) {
      const result = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(durationS), '-J'], (durationS + 10) * 1000);
      if (result.code === 0) {
        const report = JSON.parse(result.stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
        const bitsPerSec = report.end?.sum_received?.bits_per_second;
        return typeof bitsPerSec === 'number' ? bitsPerSec / 8 : null;
      }
      if (result.code === null || server.exitCode !== null) return null;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return null;
  } finally {
    if (server.exitCode === null && server.signalCode === null && server.pid !== undefined) server.kill('SIGKILL');
    await serverExited;
  }
}
