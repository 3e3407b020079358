import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isZeroRangeJs } from '../lib/zero-range.ts';
import { nativeIsZeroRange } from './native-zero.ts';

test('nativeIsZeroRange agrees with the portable test on ranges inside and across its 1 MiB chunks', () => {
  const bytes = new Uint8Array(3 * 1024 * 1024 + 4096);
  const view = bytes.subarray(8); // an offset view: byteOffset must be honoured
  const marks = [0, 4095, 1024 * 1024, 2 * 1024 * 1024 + 17, view.length - 1];
  for (const mark of marks) {
    view[mark] = 1;
    for (const [start, end] of [[0, view.length], [mark, mark + 1], [mark + 1, view.length], [0, mark], [Math.max(0, mark - 5000), Math.min(view.length, mark + 5000)]]) {
      assert.equal(nativeIsZeroRange(view, start, end), isZeroRangeJs(view, start, end), `mark ${mark}, range [${start}, ${end})`);
    }
    view[mark] = 0;
  }
  assert.equal(nativeIsZeroRange(view, 0, view.length), true);
});
