/**
 * The browser code, bundled at run time with esbuild's buildSync (installed with tsx; nothing is
 * downloaded): `client/dashboard.ts` for the dashboard, `client/report.ts` for reports, each
 * with uPlot inside, as one minified IIFE. Built once per process and kept. uPlot's CSS is read
 * from node_modules.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as Esbuild from 'esbuild';

export type ClientEntry = 'dashboard' | 'report';

const cache = new Map<ClientEntry, string>();

/** The bundled script of a page (synchronous: esbuild's buildSync, about 0.1 s the first time). */
export function clientBundle(entry: ClientEntry): string {
  let code = cache.get(entry);
  if (code === undefined) {
    code = bundle(entry);
    cache.set(entry, code);
  }
  return code;
}

function bundle(entry: ClientEntry): string {
  // Loaded on first use, so commands that make no page do not load esbuild.
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof Esbuild;
  const result = esbuild.buildSync({
    entryPoints: [fileURLToPath(new URL(`./client/${entry}.ts`, import.meta.url))],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (file === undefined) throw new Error(`esbuild produced nothing for ${entry}`);
  return file.text;
}

let css: string | null = null;

/** uPlot's stylesheet. */
export function uplotCss(): string {
  if (css === null) {
    const require = createRequire(import.meta.url);
    css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  }
  return css;
}
