/**
 * Test-only: a lab scenario's text without QEMU's iterations (the `host.iteration` and
 * `host.iteration-pages` lab-scenario.ts writes), so the engine falls back to one chunk of up to
 * 16,384 pages per iteration. Throws when the text has no such line, so a changed generator
 * cannot make the comparison vacuous.
 */
const QEMU_ITERATION_LINE = /,\n\s+iteration: 51ms, iteration-pages: 64 \}/;

export function withoutQemuIterations(yaml: string): string {
  if (!QEMU_ITERATION_LINE.test(yaml)) throw new Error('the lab scenario has no QEMU iteration line');
  return yaml.replace(QEMU_ITERATION_LINE, ' }');
}
