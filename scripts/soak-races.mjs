// The race explorer's soak run: `npm run soak:races -- --seeds N [--first S] [--jobs J]
// [--policy P]... [--json] [--markdown]`. Sweeps seeds S..S+N-1 (default 1..1000) for every
// free-page-hint × postcopy policy (or the ones named), split over J worker threads (default:
// the CPU count), and prints one row per policy: runs, postcopy switches, hinted runs, runs
// with a fault on a hinted page, violations by invariant, the longest stall, the most hinted
// memory held after a run, and the first seeds of each failure kind to replay.
//
// Exit code: 0 when `track` (if swept) held every invariant on every seed, 1 otherwise, 2 on
// a usage error. The other policies' violations are the data this run exists to show.
//
// `--stale [--no-init-on-alloc]`: the stale-page races instead (src/sim/races/stale-races.ts),
// one row per race × mode (qemu-7.2, livemig); exit 1 when livemig mode had a stale page.
// `--stale-full`: the same races as scenario faults of the full simulator (stale-full.ts).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { mergeTallies } = await import('../src/sim/races/race-sweep.ts');
const { raceTableMarkdown, raceTableText } = await import('../src/sim/races/race-report.ts');
const { FREE_PAGE_HINT_POSTCOPY_POLICIES } = await import('../src/devices/balloon/postcopy-policy.ts');
const { mergeStaleTallies, staleRaceTableMarkdown, staleRaceTableText } = await import('../src/sim/races/stale-races.ts');

function usage(message) {
  process.stderr.write(`soak-races: ${message}\nusage: npm run soak:races -- [--seeds N] [--first S] [--jobs J] [--policy P]... [--stale [--no-init-on-alloc] | --stale-full] [--json] [--markdown]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const opts = { seeds: 1000, first: 1, jobs: availableParallelism(), policies: [], json: false, markdown: false, stale: false, initOnAlloc: true };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const value = () => (i + 1 < args.length ? args[++i] : usage(`${a} needs a value`));
  const int = (text, min) => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) usage(`${a}: '${text}' is not an integer >= ${min}`);
    return n;
  };
  if (a === '--seeds') opts.seeds = int(value(), 1);
  else if (a === '--first') opts.first = int(value(), 0);
  else if (a === '--jobs') opts.jobs = int(value(), 1);
  else if (a === '--policy') {
    const p = value();
    if (!FREE_PAGE_HINT_POSTCOPY_POLICIES.includes(p)) usage(`--policy: '${p}' is not one of ${FREE_PAGE_HINT_POSTCOPY_POLICIES.join(', ')}`);
    opts.policies.push(p);
  } else if (a === '--stale') opts.stale = true;
  else if (a === '--stale-full') opts.stale = 'full';
  else if (a === '--no-init-on-alloc') opts.initOnAlloc = false;
  else if (a === '--json') opts.json = true;
  else if (a === '--markdown') opts.markdown = true;
  else usage(`unknown option '${a}'`);
}
const policies = opts.policies.length > 0 ? opts.policies : [...FREE_PAGE_HINT_POSTCOPY_POLICIES];
const jobs = Math.min(opts.jobs, opts.seeds);
const started = process.hrtime.bigint();
const parts = [];
for (let j = 0; j < jobs; j++) {
  const from = opts.first + Math.floor((opts.seeds * j) / jobs);
  const to = opts.first + Math.floor((opts.seeds * (j + 1)) / jobs);
  parts.push(
    new Promise((resolve, reject) => {
      const range = { firstSeed: from, seedCount: to - from };
      const workerData = opts.stale === 'full' ? { ...range, stale: 'full' } : opts.stale ? { ...range, stale: true, initOnAlloc: opts.initOnAlloc } : { ...range, policies };
      const worker = new Worker(new URL('./race-worker.mjs', import.meta.url), { workerData });
      worker.once('message', resolve);
      worker.once('error', reject);
    }),
  );
}
const results = await Promise.all(parts);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
if (opts.stale) {
  const stale = mergeStaleTallies(results);
  if (opts.json) process.stdout.write(`${JSON.stringify({ ...stale, seconds }, null, 2)}\n`);
  else if (opts.markdown) process.stdout.write(staleRaceTableMarkdown(stale));
  else process.stdout.write(`${staleRaceTableText(stale)}${seconds.toFixed(1)} s on ${jobs} worker(s)\n`);
  const leaked = Object.entries(stale.cells).some(([key, c]) => key.endsWith('/livemig') && c.stale > 0);
  process.exit(leaked ? 1 : 0);
}
const tally = mergeTallies(results);
if (opts.json) process.stdout.write(`${JSON.stringify({ ...tally, seconds }, null, 2)}\n`);
else if (opts.markdown) process.stdout.write(raceTableMarkdown(tally));
else process.stdout.write(`${raceTableText(tally)}${seconds.toFixed(1)} s on ${jobs} worker(s)\n`);
const track = tally.policies.track;
process.exit(track !== undefined && (track.runsWithViolations > 0 || track.unexpectedEnd > 0) ? 1 : 0);
