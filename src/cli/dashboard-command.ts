/**
 * `livemig dashboard [--port N] [--trace FILE] [--scenarios DIR]`: serves the dashboard on
 * 127.0.0.1 (docs/dashboard.md) and prints its URL, which carries a random token; requests
 * without the token are refused. From the page: run a scenario of DIR (default `scenarios/`)
 * in the server, with its progress, page-state map and charts streamed as it goes, or replay
 * a trace recorded by `livemig sim --trace` (FILE, or one picked in the page). Runs until
 * interrupted (Ctrl-C).
 *
 * Exit codes: 0 after an interrupt; 2 a usage error (bad port, missing trace, port in use).
 */
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import type { DashboardServer } from '../web/server.ts';
import { EXIT_OK, UsageError } from './io.ts';
import type { CliIo } from './io.ts';

export interface DashboardCommandOptions {
  readonly port?: string;
  readonly trace?: string;
  readonly scenarios?: string;
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return 0;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: '${text}' is not a port number (0..65535; 0 picks a free one)`);
  return port;
}

/** Starts the server; resolves with it (the caller decides when to close it). */
export async function startDashboard(options: DashboardCommandOptions, io: CliIo): Promise<DashboardServer> {
  const port = parsePort(options.port);
  const scenariosDir = options.scenarios ?? 'scenarios';
  if (!existsSync(scenariosDir) || !statSync(scenariosDir).isDirectory()) throw new UsageError(`--scenarios: ${scenariosDir} is not a directory`);
  if (options.trace !== undefined && !existsSync(options.trace)) throw new UsageError(`--trace: cannot read ${options.trace}`);
  // Loaded here, so other commands do not load the server (ws, http).
  const { DashboardServer } = await import('../web/server.ts');
  let server: DashboardServer;
  try {
    server = await DashboardServer.start({ port, scenariosDir, traceFile: options.trace ?? null });
  } catch (error) {
    throw new UsageError(`cannot listen on 127.0.0.1:${port}: ${(error as Error).message}`);
  }
  io.out(`livemig dashboard: ${server.url}\n`);
  io.out('  open this URL (it carries the access token); Ctrl-C stops the server\n');
  return server;
}

/** Runs `livemig dashboard` until SIGINT or SIGTERM. */
export async function runDashboard(options: DashboardCommandOptions, io: CliIo): Promise<number> {
  const server = await startDashboard(options, io);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  io.out('livemig dashboard: stopped\n');
  return EXIT_OK;
}

/** Adds the `dashboard` command (main.ts calls this once). */
export function registerDashboardCommand(program: Command, io: CliIo, setCode: (code: number) => void): void {
  program
    .command('dashboard')
    .description('serve a local dashboard (127.0.0.1, token-protected): live simulated runs and trace replays')
    .option('--port <n>', 'TCP port on 127.0.0.1 (default: a free one)')
    .option('--trace <file>', 'offer this trace (livemig sim --trace) for replay')
    .option('--scenarios <dir>', 'directory of scenarios to run (default: scenarios)')
    .action(async (options: DashboardCommandOptions) => setCode(await runDashboard(options, io)));
}
