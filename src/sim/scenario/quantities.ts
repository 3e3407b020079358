/**
 * The quantities a scenario file spells by hand: sizes ("8G", "99MiB", 4096), rates
 * ("400MiB/s", "10Gbit/s", 1e9) and durations ("300ms", "1.5s", "50us", 2). Each parser
 * returns the value in the unit its name ends with, or null when the text is not one.
 *
 * Conventions, chosen to read like QEMU's command line and QMP:
 * - sizes are binary (K = 1024, as `-m 512M`); a bare number is bytes;
 * - rates are sizes per second ("400M" and "400M/s" are both 400 MiB/s); bit rates use decimal
 *   multiples as network people write them ("10Gbit/s" = 1.25e9 bytes/s); a bare number is
 *   bytes per second;
 * - durations take ns, us, ms or s; a bare number is milliseconds (QMP's downtime-limit unit).
 *
 * What it deliberately doesn't do: accept negative values or anything but whole nanoseconds
 * and whole bytes after conversion (fractions are rounded to the nearest unit).
 */
import { parseSizeBytes } from '../../lib/units.ts';

/** A size in bytes, or null. */
export function parseSizeValue(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value !== 'string') return null;
  return parseSizeBytes(value, 'B');
}

const BIT_RATE = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)bit\/s\s*$/;
const DECIMAL: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** A rate in bytes per second, or null. */
export function parseRateValue(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  if (typeof value !== 'string') return null;
  const bits = BIT_RATE.exec(value);
  if (bits !== null) return Math.round((Number(bits[1]) * DECIMAL[bits[2].toLowerCase()]) / 8);
  const text = value.replace(/\/s\s*$/, '');
  return parseSizeBytes(text, 'B');
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*$/;
const NS_PER_UNIT: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 };

/** A duration in integer nanoseconds, or null. A bare number is milliseconds. */
export function parseDurationValue(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1e6) : null;
  if (typeof value !== 'string') return null;
  const m = DURATION.exec(value);
  if (m === null) return null;
  const ns = Math.round(Number(m[1]) * NS_PER_UNIT[m[2]]);
  return Number.isSafeInteger(ns) ? ns : null;
}
