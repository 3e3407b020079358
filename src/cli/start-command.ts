/**
 * `livemig start` (what `npm start` runs). The migration engine has not landed yet, so until
 * it does this is a stand-in that says so on its first line and then analyzes the bundled
 * QEMU 7.2 vector testdata/qemu-7.2/pattern-16M.stream.gz, decompressed in memory, exactly as
 * `livemig analyze` would.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { memorySource } from './byte-source.ts';
import { analyzeSource } from './analyze-command.ts';
import type { AnalyzeOptions } from './analyze-command.ts';
import { EXIT_FAILURE } from './io.ts';
import type { CliIo } from './io.ts';

export const BUNDLED_VECTOR = 'testdata/qemu-7.2/pattern-16M.stream.gz';
/** The vector decompresses to 16 MiB and a little; anything far larger is not the vector. */
const MAX_VECTOR_BYTES = 64 * 1024 * 1024;

export const STAND_IN_LINE =
  `livemig start: the migration engine (simulator, real mode, policies) has not landed yet; as a stand-in, ` +
  `this analyzes the bundled QEMU 7.2 stream ${BUNDLED_VECTOR}`;

export async function runStart(options: Pick<AnalyzeOptions, 'json'>, io: CliIo): Promise<number> {
  const path = fileURLToPath(new URL(`../../${BUNDLED_VECTOR}`, import.meta.url));
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(gunzipSync(readFileSync(path), { maxOutputLength: MAX_VECTOR_BYTES }));
  } catch (e) {
    io.err(`livemig start: cannot read the bundled vector ${path}: ${(e as Error).message}\n`);
    return EXIT_FAILURE;
  }
  // With --json the stand-in line goes to stderr so that stdout stays one JSON object.
  if (options.json === true) io.err(`${STAND_IN_LINE}\n`);
  else io.out(`${STAND_IN_LINE}\n\n`);
  return analyzeSource(memorySource(`${BUNDLED_VECTOR} (decompressed in memory)`, bytes), { json: options.json === true }, io);
}
