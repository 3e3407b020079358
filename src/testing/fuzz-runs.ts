/**
 * The case count of the fuzz properties: 10,000 by default (npm test), or LIVEMIG_FUZZ_RUNS
 * (scripts/soak-fuzz.mjs sets 100,000), so the soak reuses exactly the properties of the tests.
 */
export const FUZZ_RUNS_ENV = 'LIVEMIG_FUZZ_RUNS';

/** Cases per fuzz property: LIVEMIG_FUZZ_RUNS when set (a positive integer), else `defaultRuns`. */
export function fuzzRuns(defaultRuns = 10_000): number {
  const text = process.env[FUZZ_RUNS_ENV];
  if (text === undefined || text === '') return defaultRuns;
  const runs = Number(text);
  if (!Number.isSafeInteger(runs) || runs <= 0) throw new Error(`${FUZZ_RUNS_ENV} must be a positive integer, got '${text}'`);
  return runs;
}
