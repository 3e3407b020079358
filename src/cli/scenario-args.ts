/**
 * The scenario arguments `livemig sim` and `livemig compare` share: the scenario file, the
 * repeatable `--set key=value` overrides and `--seed`. Problems with any of them are usage
 * errors (exit 2), with the file named.
 */
import { readFileSync } from 'node:fs';
import { loadScenario, parseOverride, ScenarioError, type ScenarioOverride } from '../sim/scenario/scenario.ts';
import { UsageError } from './io.ts';

export type LoadedScenario = ReturnType<typeof loadScenario>;

/** `--seed`: an integer in 0..2^32-1, or undefined for the scenario's own seed. */
export function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed: '${text}' is not an integer in 0..4294967295`);
  return seed;
}

/** Reads the scenario file, parses `--set` items and validates the result. */
export function readScenarioArgs(file: string, sets: readonly string[] | undefined): { text: string; overrides: ScenarioOverride[]; scenario: LoadedScenario } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read scenario ${file}: ${(error as Error).message}`);
  }
  const overrides: ScenarioOverride[] = [];
  for (const item of sets ?? []) {
    const override = parseOverride(item);
    if (override === null) throw new UsageError(`--set: '${item}' is not key=value`);
    overrides.push(override);
  }
  try {
    return { text, overrides, scenario: loadScenario(text, overrides) };
  } catch (error) {
    if (error instanceof ScenarioError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
}

/** Commander accumulator for a repeatable option such as --set. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
