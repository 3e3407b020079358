/**
 * Seeded pseudo-random numbers (sfc32, seeded through splitmix32). Every random choice in the
 * core, the guest and the simulator comes from one of these, so a seed reproduces a run.
 * Math.random is banned in the pure layers.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Only the low 32 bits of `seed` count (it is taken as `seed >>> 0`). */
  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /**
   * An integer in [min, max] (inclusive), for spans up to 2^53. Both bounds must be safe
   * integers with min <= max (a RangeError otherwise: a caller bug, such as picking from an
   * empty list, must not silently return a value outside the range).
   */
  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max < min) {
      throw new RangeError(`Prng.int: bad range [${min}, ${max}]`);
    }
    const span = max - min + 1;
    if (span > 9007199254740992) throw new RangeError(`Prng.int: span of [${min}, ${max}] exceeds 2^53`);
    if (span <= 4294967296) return min + Math.floor(this.float() * span);
    // 53 random bits make a fraction in [0, 1) exactly. The earlier 64-bit version,
    // (hi * 2^32 + lo) / 2^64, rounded up to 1.0 for the largest draws and returned max + 1.
    const fraction = ((this.u32() >>> 11) * 4294967296 + this.u32()) / 9007199254740992;
    return min + Math.floor(fraction * span);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** A child generator whose sequence depends only on this one's state now. */
  fork(): Prng {
    return new Prng(this.u32() ^ Math.imul(this.u32(), 0x27d4eb2d));
  }

  /** A uniformly chosen element; a RangeError for an empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
}
