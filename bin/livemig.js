#!/usr/bin/env node
// Entry point: registers the TypeScript loader (tsx, an installed dependency; nothing is
// downloaded) and hands over to the CLI. Worker threads get the same loader via execArgv.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
