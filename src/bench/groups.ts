/**
 * The benchmark groups, in the order they run. A new group (QEMU side by side, simulator
 * scale, ...) is one module exporting a BenchGroup, added to this list.
 */
import type { BenchGroup } from './registry.ts';
import { makeCodecGroup } from './codec-group.ts';
import { makeMemoryGroup } from './memory-group.ts';
import { makeLimitsGroup } from './limits-group.ts';
import { makeQemuGroup } from './qemu-group.ts';
import { makeLivemigGroup } from './livemig-group.ts';
import { makeSimGroup } from './sim-group.ts';
import { makeMultifdGroup } from './multifd-group.ts';
import { makePostcopyGroup } from './postcopy-group.ts';

export function benchGroups(): BenchGroup[] {
  return [makeCodecGroup(), makeMemoryGroup(), makeLimitsGroup(), makeQemuGroup(), makeLivemigGroup(), makePostcopyGroup(), makeMultifdGroup(), makeSimGroup()];
}
