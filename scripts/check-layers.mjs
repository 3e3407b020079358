// The layer rule of DESIGN §3, enforced: a module may import only from its own layer and the
// layers this table allows, and the pure layers may not touch node:*, timers, clocks,
// process or Math.random. Test files (*.test.ts) may use node:* (node:test, worker_threads,
// fs for fixtures) but still obey the import table. Exits 1 with one line per violation.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname, sep } from 'node:path';
import { builtinModules } from 'node:module';

const ALLOWED = {
  lib: [],
  format: ['lib'],
  memory: ['lib'],
  devices: ['lib', 'memory'],
  guest: ['lib', 'memory', 'devices'],
  core: ['lib', 'format', 'memory'],
  transport: ['lib'],
  sim: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'transport'],
  host: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim', 'transport'],
  harness: ['lib', 'format', 'memory', 'transport'],
  qmp: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim', 'transport', 'host'],
  web: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim', 'transport', 'host', 'qmp'],
  cli: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim', 'transport', 'host', 'qmp', 'web', 'harness', 'bench'],
  bench: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim', 'transport', 'host', 'qmp', 'harness'],
  testing: ['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim', 'transport', 'host', 'qmp', 'harness'],
};
const PURE = new Set(['lib', 'format', 'memory', 'devices', 'guest', 'core', 'sim']);
const BANNED_IN_PURE = [
  /\bMath\.random\b/, /\bDate\.now\b/, /\bnew Date\b/, /\bsetTimeout\b/, /\bsetInterval\b/,
  /\bsetImmediate\b/, /\bqueueMicrotask\b/, /\bperformance\./, /\bprocess\./, /\brequire\(/,
];
const builtins = new Set(builtinModules);

const root = resolve(new URL('..', import.meta.url).pathname);
const src = join(root, 'src');
const problems = [];

function layerOf(file) {
  const rel = relative(src, file);
  if (rel.startsWith('..')) return null;
  return rel.split(sep)[0];
}

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

function check(file) {
  const layer = layerOf(file);
  const isTest = file.endsWith('.test.ts');
  const text = stripComments(readFileSync(file, 'utf8'));
  if (!(layer in ALLOWED)) {
    problems.push(`${relative(root, file)}: folder '${layer}' is not a known layer (add it to scripts/check-layers.mjs)`);
    return;
  }
  const specRe = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(specRe)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec.startsWith('.')) {
      const target = layerOf(resolve(dirname(file), spec));
      if (target === null) {
        problems.push(`${relative(root, file)}: imports '${spec}' outside src/`);
      } else if (target !== layer && !ALLOWED[layer].includes(target) && !(isTest && (target === 'testing' || target === 'harness'))) {
        problems.push(`${relative(root, file)}: layer '${layer}' may not import layer '${target}' ('${spec}')`);
      }
    } else if (PURE.has(layer) && !isTest && (spec.startsWith('node:') || builtins.has(spec.split('/')[0]))) {
      problems.push(`${relative(root, file)}: pure layer '${layer}' imports '${spec}'`);
    }
  }
  if (PURE.has(layer) && !isTest) {
    for (const re of BANNED_IN_PURE) {
      if (re.test(text)) problems.push(`${relative(root, file)}: pure layer '${layer}' uses ${re.source.replace(/\\b|\\/g, '')}`);
    }
  }
}

(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.ts')) check(path);
  }
})(src);

if (problems.length > 0) {
  for (const p of problems) console.error(`check-layers: ${p}`);
  process.exit(1);
}
console.log('check-layers: ok');
