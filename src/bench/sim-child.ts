/**
 * Child process of the `sim` bench group: runs one scenario file with overrides and prints
 * one JSON line {ok, status, wallMs, cpuMs (user + system), maxRssBytes, arrayBufferBytes, liveArrayBufferBytes}.
 * Run as `node --expose-gc --import tsx src/bench/sim-child.ts FILE [override...]`, so that
 * its peak RSS (process.resourceUsage().maxRSS) is the simulation's alone.
 *
 * Two typed-array footprints are read at the end, while the world is still referenced:
 * `arrayBufferBytes` as the run left it (garbage included: stream chunks not yet collected),
 * and `liveArrayBufferBytes` after a full collection (what the world still holds: the engines'
 * bitmaps, the page stores, and the simulator's own audit bitmaps and guest structures).
 */
import { readFileSync } from 'node:fs';
import { loadScenario, parseOverride } from '../sim/scenario/scenario.ts';
import { buildMachine } from '../sim/machine.ts';
import { REAL_ENGINES } from '../sim/engines.ts';
import { TraceWriter } from '../sim/trace.ts';
import { World } from '../sim/world.ts';
import { resultOf } from '../sim/world-report.ts';
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
const cpuBefore = process.cpuUsage();
// runScenario's steps, with the world kept here so that it is alive at the measurement.
const trace = new TraceWriter({ keepLines: false });
let world: World | null = null;
const machine = buildMachine(scenario, scenario.seed, (startPage, pageCount, cmdId) => world?.onHint(startPage, pageCount, cmdId));
world = new World(scenario, machine, REAL_ENGINES, trace, scenario.seed);
world.run();
const result = resultOf(world, scenario.seed, trace);
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
const cpu = process.cpuUsage(cpuBefore);
const cpuMs = (cpu.user + cpu.system) / 1000;
const arrayBufferBytes = process.memoryUsage().arrayBuffers;
(globalThis as { gc?: () => void }).gc?.();
const liveArrayBufferBytes = process.memoryUsage().arrayBuffers;
process.stdout.write(`${JSON.stringify({ ok: result.ok, status: result.status, wallMs, cpuMs, maxRssBytes: process.resourceUsage().maxRSS * 1024, arrayBufferBytes, liveArrayBufferBytes, pageCount: world.machine.pageCount })}\n`);
