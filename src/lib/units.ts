/** Sizes and times, with the unit in the name. Times inside the core are integer nanoseconds. */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

export const NS_PER_US = 1_000;
export const NS_PER_MS = 1_000_000;
export const NS_PER_S = 1_000_000_000;

/** QEMU's target page size on x86_64 (TARGET_PAGE_SIZE). */
export const TARGET_PAGE_SIZE = 4096;
export const TARGET_PAGE_BITS = 12;

/**
 * Parses a size the way QEMU's command line and HMP do: a number with an optional suffix
 * K, M, G, T (binary multiples; "B" is bytes). `defaultSuffix` applies to a bare number
 * ("-m 512" means MiB). Returns null on a malformed size.
 */
export function parseSizeBytes(text: string, defaultSuffix: 'B' | 'K' | 'M' | 'G' = 'B'): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([BKMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (m === null) return null;
  const value = Number(m[1]);
  const suffix = (m[2] === '' ? defaultSuffix : m[2]).toUpperCase();
  const scale = { B: 1, K: KiB, M: MiB, G: GiB, T: TiB }[suffix as 'B' | 'K' | 'M' | 'G' | 'T'];
  const bytes = Math.round(value * scale);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** Formats a byte count for humans: 1.50 GiB, 300 MiB, 12 KiB, 7 B. */
export function formatBytes(bytes: number): string {
  const units: Array<[number, string]> = [[TiB, 'TiB'], [GiB, 'GiB'], [MiB, 'MiB'], [KiB, 'KiB']];
  for (const [size, name] of units) {
    if (Math.abs(bytes) >= size) {
      const v = bytes / size;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${name}`;
    }
  }
  return `${bytes} B`;
}
