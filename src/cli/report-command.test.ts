// `livemig sim --report` writes a self-contained report and leaves the run as it was (same
// trace hash, same output after the report line); `livemig report TRACE` makes one from the
// trace (plain or gzip), `--svg DIR` writes the charts; usage errors exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { cli } from './cli.test-util.ts';

const dir = mkdtempSync(join(tmpdir(), 'livemig-report-'));
const scenarioFile = join(dir, 'tiny.yaml');
writeFileSync(scenarioFile, `
name: tiny
guest: { memory: 64M, reserved: 8M }
workload: { kind: incrementer, size: 16M, rate: 256M }
capabilities: { return-path: true }
parameters: { max-bandwidth: 128M }
migration: { start: 20ms }
settle: 20ms
`);

test('sim --report writes the report; the run and its trace are unchanged', async () => {
  const plain = await cli('sim', scenarioFile, '--trace', join(dir, 'plain.jsonl'));
  const report = join(dir, 'run.html');
  const watched = await cli('sim', scenarioFile, '--trace', join(dir, 'watched.jsonl'), '--report', report);
  assert.equal(watched.code, 0, watched.stderr);
  assert.match(watched.stdout, /^report: .*run\.html \(\d+ KiB\)\n/);
  assert.equal(watched.stdout.replace(/^report: .*\n/, ''), plain.stdout);
  assert.equal(readFileSync(join(dir, 'watched.jsonl'), 'utf8'), readFileSync(join(dir, 'plain.jsonl'), 'utf8'));
  const html = readFileSync(report, 'utf8');
  assert.match(html, /<title>livemig report: tiny, seed 1<\/title>/);
  assert.ok(statSync(report).size < 1024 * 1024);
  const json = await cli('sim', scenarioFile, '--json', '--report', join(dir, 'j.html'));
  assert.doesNotThrow(() => JSON.parse(json.stdout), 'with --json the report line goes to stderr');
  assert.match(json.stderr, /^report: /);
});

test('report TRACE: HTML next to the trace by default, -o, gzip traces, --svg', async () => {
  await cli('sim', scenarioFile, '--trace', join(dir, 't.jsonl'));
  const r = await cli('report', join(dir, 't.jsonl'));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 't.html')));
  writeFileSync(join(dir, 't.jsonl.gz'), gzipSync(readFileSync(join(dir, 't.jsonl'))));
  const gz = await cli('report', join(dir, 't.jsonl.gz'), '-o', join(dir, 'gz.html'), '--svg', join(dir, 'svg'), '--title', 'My run');
  assert.equal(gz.code, 0, gz.stderr);
  assert.match(readFileSync(join(dir, 'gz.html'), 'utf8'), /<title>My run<\/title>/);
  assert.deepEqual(readdirSync(join(dir, 'svg')).sort(), ['bandwidth.svg', 'dirty-rate.svg', 'latency.svg', 'page-map.svg', 'remaining.svg', 'timeline.svg']);
  assert.match(gz.stdout, /charts: 6 SVG files in /);
});

test('report: usage errors exit 2', async () => {
  assert.equal((await cli('report', join(dir, 'nope.jsonl'))).code, 2);
  writeFileSync(join(dir, 'bad.jsonl'), 'not a trace\n');
  const bad = await cli('report', join(dir, 'bad.jsonl'));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /not a livemig trace/);
});

test('report TRACE --json: one object on stdout (files written, run summary), file lines on stderr', async () => {
  const sim = await cli('sim', scenarioFile, '--trace', join(dir, 'j.jsonl'), '--json');
  const r = await cli('report', join(dir, 'j.jsonl'), '--json', '-o', join(dir, 'j.html'), '--svg', join(dir, 'j-svg'));
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { report: string; svg: string[]; skipped: string[]; scenario: string; seed: number; summary: { status: string; traceHash: string | null } | null };
  assert.equal(json.report, join(dir, 'j.html'));
  assert.ok(existsSync(json.report));
  assert.deepEqual([...json.svg].sort(), readdirSync(join(dir, 'j-svg')).map((f) => join(dir, 'j-svg', f)).sort());
  assert.deepEqual([json.scenario, json.seed, json.skipped], ['tiny', 1, []]);
  const simJson = JSON.parse(sim.stdout) as { status: string; 'trace-hash': string };
  assert.deepEqual([json.summary?.status, json.summary?.traceHash], [simJson.status, simJson['trace-hash']]);
  assert.match(r.stderr, /^report: .*j\.html/m);
});
