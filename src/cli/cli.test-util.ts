/**
 * Helpers shared by the CLI tests: run the CLI in-process with captured output, paths of
 * the bundled vectors, the manifest, and small stream builders for the error cases.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StreamEncoder } from '../format/stream-encoder.ts';
import { CapturedIo } from './io.ts';
import { runCli } from './main.ts';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function cli(...args: string[]): Promise<CliRun> {
  const io = new CapturedIo();
  const code = await runCli(args, io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

/** Absolute path of a file under testdata/qemu-7.2/ (the stored name, e.g. with .gz). */
export function vectorPath(name: string): string {
  return fileURLToPath(new URL(`../../testdata/qemu-7.2/${name}`, import.meta.url));
}

export interface ManifestStream {
  readonly size: number;
  readonly zero_pages: number;
  readonly normal_pages: number;
  readonly decoded_ram_sha256: string;
  readonly ram_blocks: Record<string, number>;
  readonly vmdescription_devices: string[];
  readonly sections: Array<Record<string, unknown>>;
}

export function manifest(): Record<string, ManifestStream> {
  return JSON.parse(readFileSync(vectorPath('manifest.json'), 'utf8')) as Record<string, ManifestStream>;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Runs `build` on an encoder and returns the bytes. */
export function buildStream(build: (e: StreamEncoder) => void): Uint8Array {
  const chunks: Uint8Array[] = [];
  const e = new StreamEncoder({ onChunk: (c) => chunks.push(c) });
  build(e);
  e.flush();
  return Buffer.concat(chunks);
}

/** A stream with one device section 'foo' (a be32 field x = 42), optionally described. */
export function fooDeviceStream(withVmdescription: boolean): Uint8Array {
  return buildStream((e) => {
    e.header();
    e.configuration({ machine: 'none' });
    e.sectionFull(3, 'foo', 0, 1);
    e.be32(42);
    e.footer(3);
    e.eof();
    if (withVmdescription) {
      e.vmdescription(
        '{"page_size": 4096, "devices": [{"name": "foo", "instance_id": 0, "vmsd_name": "foo", "version": 1, ' +
          '"fields": [{"name": "x", "type": "uint32", "size": 4}]}]}',
      );
    }
  });
}
