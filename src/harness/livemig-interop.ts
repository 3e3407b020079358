// Setup shared by the QEMU 7.2 ↔ livemig interop tests (src/host): a QEMU `-M none` source over a pattern
// memory-backend-file and a `livemig-qemu -incoming defer` destination, and the port a
// destination listens on.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startQemu, type QemuProcess } from './qemu.ts';
import { writePatternFile } from './ram-pattern.ts';
import type { MigrationInfo } from './qmp-client.ts';

export const LIVEMIG_QEMU = fileURLToPath(new URL('../../bin/livemig-qemu.js', import.meta.url));
export const BASE_ARGS = ['-nodefaults', '-display', 'none'];

/** `tcp:127.0.0.1:PORT` of a destination after `migrate-incoming tcp:127.0.0.1:0`. */
export async function listeningUri(qemu: QemuProcess): Promise<string> {
  const info = await qemu.qmp.execute<MigrationInfo>('query-migrate');
  const port = Number((info['socket-address'] as Array<{ port: string }> | undefined)?.[0]?.port);
  assert.ok(Number.isInteger(port) && port > 0, `no listening port: ${JSON.stringify(info)}`);
  return `tcp:127.0.0.1:${port}`;
}

/**
 * Starts the livemig-qemu destination, then the QEMU source whose RAM is a pattern file in
 * `dir`; both are pushed on `started` (stop them in reverse order).
 */
export async function startQemuToLivemig(dir: string, sizeBytes: number, started: QemuProcess[]): Promise<{ source: QemuProcess; dest: QemuProcess }> {
  const pattern = join(dir, 'pattern.ram');
  writePatternFile(pattern, sizeBytes);
  const m = `${sizeBytes}B`;
  const dest = await startQemu({
    name: 'livemig-qemu', qemuPath: LIVEMIG_QEMU, watchdogMs: 120_000,
    args: ['-M', 'none,memory-backend=mem', '-m', m, ...BASE_ARGS, '-object', `memory-backend-ram,id=mem,size=${sizeBytes}`, '-incoming', 'defer'],
  });
  started.push(dest);
  const source = await startQemu({
    name: 'qemu-source', watchdogMs: 120_000,
    args: ['-M', 'none,memory-backend=mem', '-m', m, ...BASE_ARGS, '-object', `memory-backend-file,id=mem,size=${sizeBytes},mem-path=${pattern},share=on,prealloc=on`],
  });
  started.push(source);
  return { source, dest };
}
