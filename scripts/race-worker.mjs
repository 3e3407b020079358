// A worker thread of the race explorer (src/sim/races): registers the TypeScript loader (tsx,
// an installed dependency), runs sweepRaces (with `stale: true` sweepStaleRaces, with `stale: 'full'`
// sweepStaleRacesFull) over the
// seed range it is given and posts the tally back. Used by scripts/soak-races.mjs and by src/sim/races/races.test.ts, which split a
// sweep across cores this way (the simulator itself is single-threaded and pure).
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
if (workerData.stale === 'full') {
  const { sweepStaleRacesFull } = await import('../src/sim/races/stale-full.ts');
  parentPort.postMessage(sweepStaleRacesFull(workerData));
} else if (workerData.stale === true) {
  const { sweepStaleRaces } = await import('../src/sim/races/stale-races.ts');
  parentPort.postMessage(sweepStaleRaces(workerData));
} else {
  const { sweepRaces } = await import('../src/sim/races/race-sweep.ts');
  parentPort.postMessage(sweepRaces(workerData));
}
