// Where the simulator's typed-array memory goes: runs one scenario (as src/bench/sim-child.ts
// does), then walks the object graph from the world and lists every ArrayBuffer or
// SharedArrayBuffer it reaches, once, under the first property path that reaches it, with its
// size in bits per guest page. `node --expose-gc --import tsx scripts/perf/sim-bits.ts FILE [override...]`
import { readFileSync } from 'node:fs';
import { loadScenario, parseOverride } from '../../src/sim/scenario/scenario.ts';
import { buildMachine } from '../../src/sim/machine.ts';
import { REAL_ENGINES } from '../../src/sim/engines.ts';
import { TraceWriter } from '../../src/sim/trace.ts';
import { World } from '../../src/sim/world.ts';
import { installNativeZeroTest } from '../../src/host/native-zero.ts';

installNativeZeroTest();
const [file, ...rest] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: sim-bits.ts FILE [override...]');
const scenario = loadScenario(readFileSync(file, 'utf8'), rest.map((text) => parseOverride(text) ?? (() => { throw new Error(`bad override ${text}`); })()));
let world: World | null = null;
const machine = buildMachine(scenario, scenario.seed, (startPage, pageCount, cmdId) => world?.onHint(startPage, pageCount, cmdId));
world = new World(scenario, machine, REAL_ENGINES, new TraceWriter({ keepLines: false }), scenario.seed);
world.run();
(globalThis as { gc?: () => void }).gc?.();

const pages = machine.pageCount;
const found = new Map<ArrayBufferLike, string>();
const seen = new Set<object>();
const queue: Array<[object, string]> = [[world, 'world']];
while (queue.length > 0) {
  const [obj, path] = queue.shift()!;
  if (seen.has(obj)) continue;
  seen.add(obj);
  if (ArrayBuffer.isView(obj)) {
    if (!found.has(obj.buffer)) found.set(obj.buffer, path);
    continue;
  }
  if (obj instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && obj instanceof SharedArrayBuffer)) {
    if (!found.has(obj)) found.set(obj, path);
    continue;
  }
  const children: Array<[unknown, string]> = [];
  if (obj instanceof Map) for (const [k, v] of obj) children.push([v, `${path}{${String(k).slice(0, 20)}}`]);
  else if (obj instanceof Set) for (const v of obj) children.push([v, `${path}{}`]);
  else if (Array.isArray(obj)) obj.slice(0, 10000).forEach((v, i) => children.push([v, `${path}[${i}]`]));
  else for (const key of Object.getOwnPropertyNames(obj)) {
    let value: unknown;
    try { value = (obj as Record<string, unknown>)[key]; } catch { continue; }
    children.push([value, `${path}.${key}`]);
  }
  for (const [value, childPath] of children) if (value !== null && (typeof value === 'object' || typeof value === 'function') && !seen.has(value as object)) queue.push([value as object, childPath]);
}
let total = 0;
const rows = [...found].map(([buf, path]) => ({ path, bytes: buf.byteLength })).filter((r) => r.bytes >= 1 << 20).sort((a, b) => b.bytes - a.bytes);
for (const r of rows) {
  total += r.bytes;
  console.log(`${(r.bytes * 8 / pages).toFixed(3).padStart(8)} bits/page ${(r.bytes / 2 ** 20).toFixed(1).padStart(9)} MiB  ${r.path}`);
}
console.log(`${(total * 8 / pages).toFixed(3).padStart(8)} bits/page in buffers of 1 MiB or more; process arrayBuffers ${(process.memoryUsage().arrayBuffers / 2 ** 20).toFixed(1)} MiB; ${pages} pages`);
