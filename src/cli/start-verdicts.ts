/**
 * The verdicts `livemig start` prints after a live migration of a kernel-build guest (see
 * start-command.ts), read with both guests stopped:
 *
 *   memory-equality, kernel-build vCPU i   host/kernel-build-oracle.ts
 *   free-page-hinting   the balloon hinted pages, and the migration skipped them
 *   hint-done           the destination's balloon device loaded the hint status DONE (policy
 *                       track: the source's pre-save sets it so it travels in the device
 *                       section). The destination has no guest driver to act on it (see
 *                       host-devices.ts), so this is DONE reaching the device, not the guest.
 *   destination         the destination's incoming migration completed
 */
import { hintStatusName } from '../devices/balloon/free-page-hint.ts';
import { checkKernelBuildMigration, type OracleVerdict } from '../host/kernel-build-oracle.ts';
import type { LivemigVm } from '../host/vm.ts';

export type Verdict = OracleVerdict;

/** The verdicts (see the module comment); hintedPages is the source's skip count. */
export function kernelBuildVerdicts(source: LivemigVm, dest: LivemigVm, hintedPages: number): Verdict[] {
  const out = checkKernelBuildMigration(source, dest);
  out.push({ name: 'free-page-hinting', ok: hintedPages > 0, detail: `${hintedPages} pages hinted free and skipped by the source` });
  const status = dest.machine.devices.balloon?.device.hint.status;
  out.push({
    name: 'hint-done',
    ok: status !== undefined && hintStatusName(status) === 'DONE',
    detail: `destination balloon device hint status ${status === undefined ? 'none' : hintStatusName(status)} after the load`,
  });
  const destInfo = dest.queryMigrate();
  out.push({ name: 'destination', ok: destInfo.status === 'completed', detail: `incoming migration ${destInfo.status}` });
  return out;
}
