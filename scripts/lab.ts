/**
 * `npm run lab`: measure lab cases with a real guest under the local QEMU and compare them with
 * the simulator, print the fidelity table, or regenerate scenarios/lab (src/cli/lab-command.ts
 * has the options; docs/fidelity.md the background). Not part of npm test.
 */
import { resolve } from 'node:path';
import { runLabCommand } from '../src/cli/lab-command.ts';

const root = resolve(new URL('..', import.meta.url).pathname);
process.exitCode = await runLabCommand(process.argv.slice(2), { root });
