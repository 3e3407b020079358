// Design rule of issue [10]: the memory-equality checker covers every page that was ever in use.
// Only pages hinted AND free in the guest at the switchover (or unplugged) may differ: a hinted
// page the guest took back and wrote, a page freed but never hinted, and a page never free are
// all compared, so a write lost to any hinting race shows as a violation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactBacking } from '../memory/compact-backing.ts';
import { checkMemoryEquality } from './checkers/memory-equality.ts';
import { MemoryAudit } from './memory-audit.ts';

const PAGES = 64;

test('only pages hinted and free at the switchover may differ; every page ever in use is compared', () => {
  const audit = new MemoryAudit(PAGES);
  audit.startSourceAudit((visit) => visit(16, 16)); // pages 16..31 free when the migration starts
  audit.onHint(16, 8); // 16..23 hinted
  audit.onHint(40, 4); // 40..43 hinted while in use (a racy hint): the guest keeps using them
  audit.onSourceWrite(18, 18); // the guest took page 18 back and wrote it (shrinker reuse)
  audit.onGuestFree(50, 2); // freed, never hinted
  const freeNow = new Set([16, 17, 18, 19, 20, 21, 22, 23, 50, 51]);
  audit.snapshotAtSwitch((p) => freeNow.has(p) && p !== 18);
  const allowed = Array.from({ length: PAGES }, (_, p) => p).filter((p) => audit.allowedToDiffer.has(p));
  assert.deepEqual(allowed, [16, 17, 19, 20, 21, 22, 23], 'hinted and free; 18 was written again, 40..43 in use, 50..51 never hinted');

  // A destination that lost the write to 18 and to 41 (both hinted once) fails the checker.
  const source = new CompactBacking(PAGES);
  const destination = new CompactBacking(PAGES);
  for (let p = 0; p < PAGES; p++) {
    source.bumpPage(p);
    destination.bumpPage(p);
  }
  source.bumpPage(18);
  source.bumpPage(41);
  source.bumpPage(20); // differs too, but hinted and free: allowed
  const verdict = checkMemoryEquality({ notApplicableReason: null, source, destination, writtenAfterResume: null, firstWriteMismatch: null, allowedToDiffer: audit.allowedToDiffer });
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /^2 destination pages differ from the source at switchover \(18, 41\)/);
});
