/**
 * Replays one seed of the stale-page world and prints how its stale pages came about:
 * `node --import tsx scripts/stale-trace.ts SEED [MODE] [--no-init-on-alloc] [--all]`.
 * MODE is a stale-world mode (default qemu-7.2): livemig, qemu-7.2, qemu-7.2-tcg, race-a, ...
 * Prints the result, then the events of the stale pages and of the blocks holding them, with
 * every sync and dirty-log CLEAR (`--all`: every event). Not part of npm test.
 */
import { STALE_MODES, type StaleMode } from '../src/sim/stale/stale-world.ts';
import { runStaleWorld } from '../src/sim/stale/stale-world.ts';

const args = process.argv.slice(2);
const seed = Number(args[0]);
const mode = (args[1] !== undefined && !args[1].startsWith('--') ? args[1] : 'qemu-7.2') as StaleMode;
if (!Number.isSafeInteger(seed) || !(mode in STALE_MODES)) {
  process.stderr.write(`usage: node --import tsx scripts/stale-trace.ts SEED [${Object.keys(STALE_MODES).join('|')}] [--no-init-on-alloc] [--all]\n`);
  process.exit(2);
}
const trace: string[] = [];
const result = runStaleWorld(seed, STALE_MODES[mode], { hinting: true, initOnAlloc: !args.includes('--no-init-on-alloc'), trace });
console.log(`seed ${seed} ${mode}: ${JSON.stringify(result)}`);
const stalePages = new Set(trace.flatMap((l) => /STALE p(\d+)/.exec(l)?.[1] ?? []));
// Blocks are 8 pages after 32 kernel pages (stale-world.ts).
const staleBlocks = new Set([...stalePages].map((p) => String(Math.floor((Number(p) - 32) / 8))));
for (const line of trace) {
  const page = /\bp(\d+)\b/.exec(line)?.[1];
  const block = /block (\d+)/.exec(line)?.[1];
  const wanted = args.includes('--all') || / sync |CLEAR_DIRTY_LOG/.test(` ${line}`) ||
    (page !== undefined && stalePages.has(page)) || (block !== undefined && staleBlocks.has(block));
  if (wanted) console.log(line);
}
