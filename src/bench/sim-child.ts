/**
 * Child process of the `sim` bench group: runs one scenario file with overrides and prints
 * one JSON line {ok, wallMs, maxRssBytes, arrayBufferBytes, pageCount}. Run as
 * `node --import tsx src/bench/sim-child.ts FILE [override...]`, so that its peak RSS
 * (process.resourceUsage().maxRSS) is the simulation's alone.
 */
import { readFileSync } from 'node:fs';
import { loadScenario, parseOverride } from '../sim/scenario/scenario.ts';
import { runScenario } from '../sim/runner.ts';
import { installNativeZeroTest } from '../host/native-zero.ts';

installNativeZeroTest(); // as the CLI does (lib/zero-range.ts)
const [file, ...rest] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: sim-child.ts FILE [override...]');
const overrides = rest.map((text) => {
  const o = parseOverride(text);
  if (o === null) throw new Error(`bad override ${text}`);
  return o;
});
const scenario = loadScenario(readFileSync(file, 'utf8'), overrides);
const started = process.hrtime.bigint();
const result = runScenario(scenario);
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
// Read before anything is dropped: the world's bitmaps and stores are still reachable or not
// yet collected, so this is the run's typed-array footprint (an upper bound of what it held).
const arrayBufferBytes = process.memoryUsage().arrayBuffers;
process.stdout.write(`${JSON.stringify({ ok: result.ok, status: result.status, wallMs, maxRssBytes: process.resourceUsage().maxRSS * 1024, arrayBufferBytes })}\n`);
