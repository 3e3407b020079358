/**
 * Test-only: a lab scenario's text without QEMU's iterations (the `host.iteration` and
 * `host.iteration-pages` lab-scenario.ts writes), so the engine falls back to one chunk of up to
 * 16,384 pages per iteration. The balloon's hints then apply at once: without iterations there
 * is no bitmap_mutex held across pumps (a scenario may not ask for one, scenario.ts). Throws
 * when the text has no such line, so a changed generator cannot make the comparison vacuous.
 */
const QEMU_ITERATION_LINE = /,\n\s+iteration: 51ms, iteration-pages: 64 \}/;
const HINT_APPLY_LINE = /hint-apply: between-iterations/;

export function withoutQemuIterations(yaml: string): string {
  if (!QEMU_ITERATION_LINE.test(yaml)) throw new Error('the lab scenario has no QEMU iteration line');
  return yaml.replace(QEMU_ITERATION_LINE, ' }').replace(HINT_APPLY_LINE, 'hint-apply: immediate');
}
