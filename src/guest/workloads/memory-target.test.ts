// Tests the GuestMemory adapter against the memory layer's two backings: the incrementer and a
// random writer run through it, the incrementer oracle passes on both, the backings agree
// page for page when used as oracle page readers, and a lost page is caught by both oracles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../../lib/prng.ts';
import { NS_PER_MS } from '../../lib/units.ts';
import { BytesBacking } from '../../memory/bytes-backing.ts';
import { CompactBacking } from '../../memory/compact-backing.ts';
import { checkIncrementer, comparePages } from '../oracle.ts';
import { createWorkload } from './index.ts';
import { GuestMemoryTarget } from './memory-target.ts';
import type { IncrementerWorkload } from './incrementer.ts';

const PAGES = 256;

test('incrementer through bytes and compact backings passes the oracles', () => {
  const makers = [() => new BytesBacking(PAGES * 4096), () => new CompactBacking(PAGES)];
  for (const make of makers) {
    const source = make();
    const target = new GuestMemoryTarget(source);
    assert.equal(target.pageCount, PAGES);
    const inc = createWorkload({ kind: 'incrementer', rateBytesPerS: 1000 * 4096 * 4096 }, { pageCount: PAGES, prng: new Prng(1) }) as IncrementerWorkload;
    for (let t = 0; t <= 100 * NS_PER_MS; t += 7 * NS_PER_MS) inc.step(t, target);
    const result = checkIncrementer((i) => source.readU8(inc.pages.pageAt(i) * 4096), PAGES, { expectedEdgeIndex: inc.cursor });
    assert.equal(result.ok, true, result.detail);

    // A "migration" that copies every page, then loses the latest write to page 17.
    const dest = make();
    const page = new Uint8Array(4096);
    for (let p = 0; p < PAGES; p++) {
      source.copyPageOut(p, page, 0);
      dest.writePageFrom(p, page, 0);
    }
    assert.equal(comparePages(source, dest).mismatchCount, 0);
    assert.equal(comparePages(source, dest, { pageEquals: (p) => source.pageEquals(dest, p) }).mismatchCount, 0);
    dest.writeU8(17 * 4096, (dest.readU8(17 * 4096) + 255) & 0xff);
    assert.deepEqual(comparePages(source, dest).mismatches, [17]);
    assert.equal(checkIncrementer((i) => dest.readU8(i * 4096), PAGES).ok, false);
  }
});
