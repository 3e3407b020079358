// Tests of the rate limiter (facts §4.4): budget = max-bandwidth / 10 per ≥ 100 ms window,
// QEMU's "blocked once used exceeds the budget" rule, 0 = unlimited, urgent sends bypass, and
// the throughput over a simulated second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  XFER_LIMIT_RATIO,
  budgetLeftBytes,
  checkRate,
  createRateLimiter,
  isOverBudget,
  rateDecision,
  rateLimitBytesPerWindow,
  recordSent,
  resetRateWindow,
  rollRateWindow,
  setRateLimit,
  setUnlimited,
  type RateLimiter,
} from './rate-limiter.ts';

const MS = 1_000_000;
const PAGE = 4096;

test('the budget per window is max-bandwidth / 10', () => {
  assert.equal(XFER_LIMIT_RATIO, 10);
  assert.equal(rateLimitBytesPerWindow(134217728), 13421772);
  assert.equal(rateLimitBytesPerWindow(0), 0);
  assert.equal(rateLimitBytesPerWindow(9), 0); // QEMU quirk: below 10 B/s is unlimited
  assert.equal(rateLimitBytesPerWindow(Infinity), 0);
});

test('pages go out until the count exceeds the budget, then the sender waits for the window end', () => {
  let limiter = createRateLimiter(134217728, 5 * MS);
  let pages = 0;
  while (rateDecision(limiter, false).kind === 'send') {
    limiter = recordSent(limiter, PAGE);
    pages++;
  }
  // 3276 pages = 13418496 ≤ 13421772, so page 3277 still goes and crosses the budget.
  assert.equal(pages, 3277);
  assert.ok(isOverBudget(limiter));
  assert.deepEqual(rateDecision(limiter, false), { kind: 'wait', untilNs: 105 * MS });
  assert.equal(budgetLeftBytes(limiter), 0);
  // Not due at 104.999 ms; a new window at 105 ms.
  assert.equal(checkRate(limiter, 105 * MS - 1, false).decision.kind, 'wait');
  const rolled = checkRate(limiter, 105 * MS, false);
  assert.equal(rolled.decision.kind, 'send');
  assert.deepEqual(rolled.limiter, { maxBytesPerWindow: 13421772, windowStartMs: 105, usedBytes: 0 });
});

test('urgent sends bypass the limit and still count', () => {
  let limiter: RateLimiter = { maxBytesPerWindow: 1000, windowStartMs: 0, usedBytes: 5000 };
  assert.equal(rateDecision(limiter, false).kind, 'wait');
  assert.equal(rateDecision(limiter, true).kind, 'send');
  limiter = recordSent(limiter, PAGE);
  assert.equal(limiter.usedBytes, 5000 + PAGE);
});

test('a limit of 0 never blocks', () => {
  let limiter = createRateLimiter(0, 0);
  for (let i = 0; i < 1000; i++) limiter = recordSent(limiter, 1 << 20);
  assert.equal(rateDecision(limiter, false).kind, 'send');
  assert.equal(budgetLeftBytes(limiter), Infinity);
  limiter = setRateLimit(limiter, 1000);
  assert.equal(rateDecision(limiter, false).kind, 'wait');
  assert.equal(rateDecision(setUnlimited(limiter), false).kind, 'send');
});

test('windows roll on the ms clock and can be reset with the bandwidth window', () => {
  const limiter: RateLimiter = { maxBytesPerWindow: 10, windowStartMs: 7, usedBytes: 99 };
  assert.equal(rollRateWindow(limiter, 106 * MS + 999_999), limiter);
  assert.deepEqual(rollRateWindow(limiter, 107 * MS), { maxBytesPerWindow: 10, windowStartMs: 107, usedBytes: 0 });
  assert.deepEqual(resetRateWindow(limiter, 50 * MS), { maxBytesPerWindow: 10, windowStartMs: 50, usedBytes: 0 });
});

test('over one second at 128 MiB/s the sender moves ten windows of 3277 pages', () => {
  let limiter = createRateLimiter(134217728, 0);
  let nowNs = 0;
  let pages = 0;
  while (nowNs < 1000 * MS) {
    const { limiter: next, decision } = checkRate(limiter, nowNs, false);
    limiter = next;
    if (decision.kind === 'wait') {
      nowNs = decision.untilNs;
      continue;
    }
    limiter = recordSent(limiter, PAGE);
    pages++;
  }
  assert.equal(pages, 10 * 3277);
});
