/**
 * The text parsers behind HMP, as QEMU 7.2 has them (monitor/hmp.c, util/cutils.c,
 * qapi/string-input-visitor.c): the argument scanner driven by a command's args_type string
 * ("capability:s,state:b"), the `M` expression evaluator, qemu_strtosz and qemu_strtou64, and
 * the on/off spellings of qapi_bool_parse. Pure; errors are HmpArgError with QEMU's text.
 *
 * Deviations: get_str's 1024-byte truncation is not reproduced; `$register` operands of
 * expressions are refused with QEMU's "unknown register" since there is no CPU state here.
 */

/** A parse failure; `message` is the line QEMU prints. */
export class HmpArgError extends Error {
  override name = 'HmpArgError';
}

/** C isspace(). */
export function isCSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

/** A cursor over a command line. */
export class Cursor {
  constructor(
    readonly text: string,
    public pos = 0,
  ) {}

  get current(): string | undefined {
    return this.text[this.pos];
  }

  get atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  skipSpace(): void {
    while (isCSpace(this.current)) this.pos++;
  }
}

/** monitor/hmp.c get_str: a bare word, or a double-quoted string with \n \r \\ \' \" escapes. */
export function getStr(cursor: Cursor): string | null {
  cursor.skipSpace();
  if (cursor.atEnd) return null;
  let out = '';
  if (cursor.current === '"') {
    cursor.pos++;
    while (!cursor.atEnd && cursor.current !== '"') {
      if (cursor.current === '\\') {
        cursor.pos++;
        const c = cursor.current;
        cursor.pos++;
        if (c === 'n') out += '\n';
        else if (c === 'r') out += '\r';
        else if (c === '\\' || c === "'" || c === '"') out += c;
        else return null;
      } else {
        out += cursor.current;
        cursor.pos++;
      }
    }
    if (cursor.current !== '"') return null;
    cursor.pos++;
    return out;
  }
  while (!cursor.atEnd && !isCSpace(cursor.current)) {
    out += cursor.current;
    cursor.pos++;
  }
  return out;
}

const UINT64_MAX = (1n << 64n) - 1n;

/** Two's-complement wrap to int64, as C's int64_t arithmetic does. */
function wrap64(x: bigint): bigint {
  return BigInt.asIntN(64, x);
}

/** The `M`/`i`/`l` argument: QEMU's expression evaluator (get_expr) over int64. */
export function getExpr(cursor: Cursor): bigint {
  cursor.skipSpace();
  return new ExprParser(cursor).sum();
}

class ExprParser {
  constructor(private readonly c: Cursor) {}

  sum(): bigint {
    let value = this.logic();
    for (;;) {
      const op = this.c.current;
      if (op !== '+' && op !== '-') return value;
      this.next();
      const rhs = this.logic();
      value = wrap64(op === '+' ? value + rhs : value - rhs);
    }
  }

  private logic(): bigint {
    let value = this.prod();
    for (;;) {
      const op = this.c.current;
      if (op !== '&' && op !== '|' && op !== '^') return value;
      this.next();
      const rhs = this.prod();
      value = op === '&' ? value & rhs : op === '|' ? value | rhs : value ^ rhs;
    }
  }

  private prod(): bigint {
    let value = this.unary();
    for (;;) {
      const op = this.c.current;
      if (op !== '*' && op !== '/' && op !== '%') return value;
      this.next();
      const rhs = this.unary();
      if (op === '*') value = wrap64(value * rhs);
      else if (rhs === 0n) throw new HmpArgError('division by zero');
      else value = wrap64(op === '/' ? value / rhs : value % rhs);
    }
  }

  private unary(): bigint {
    const c = this.c.current;
    if (c === '+') {
      this.next();
      return this.unary();
    }
    if (c === '-') {
      this.next();
      return wrap64(-this.unary());
    }
    if (c === '~') {
      this.next();
      return ~this.unary();
    }
    if (c === '(') {
      this.next();
      const value = this.sum();
      if (this.c.current !== ')') throw new HmpArgError("')' expected");
      this.next();
      return value;
    }
    if (c === "'") {
      const ch = this.c.text[this.c.pos + 1];
      if (ch === undefined || this.c.text[this.c.pos + 2] !== "'") throw new HmpArgError('character constant expected');
      this.c.pos += 3;
      this.c.skipSpace();
      return BigInt(ch.charCodeAt(0));
    }
    if (c === '$') throw new HmpArgError('unknown register');
    if (c === undefined) throw new HmpArgError('unexpected end of expression');
    const value = strtou64Prefix(this.c);
    if (value === null) throw new HmpArgError(`invalid char '${c}' in expression`);
    this.c.skipSpace();
    return wrap64(value);
  }

  private next(): void {
    this.c.pos++;
    this.c.skipSpace();
  }
}

/** The value of C integer digits in base 0: 0x… hex, 0… octal, else decimal. */
function cIntegerValue(digits: string): bigint {
  if (/^0[xX]/.test(digits)) return BigInt(digits);
  if (digits.length > 1 && digits[0] === '0') return BigInt(`0o${digits.slice(1)}`);
  return BigInt(digits);
}

/** strtoull(p, &end, 0) on the cursor: hex, octal or decimal digits; ERANGE is an error. */
function strtou64Prefix(cursor: Cursor): bigint | null {
  const rest = cursor.text.slice(cursor.pos);
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)/.exec(rest);
  if (m === null) return null;
  const digits = m[0];
  const value = cIntegerValue(digits);
  if (value > UINT64_MAX) throw new HmpArgError('number too large');
  cursor.pos += digits.length;
  return value;
}

/**
 * qemu_strtou64(text, NULL, 0): the whole string must be a (whitespace-led, optionally signed)
 * C integer; a leading '-' negates modulo 2^64 as strtoull does. Null when malformed.
 */
export function qemuStrtou64(text: string): bigint | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (m === null) return null;
  const digits = m[2];
  let value = cIntegerValue(digits);
  if (value > UINT64_MAX) return UINT64_MAX;
  if (m[1] === '-') value = BigInt.asUintN(64, -value);
  return value;
}

const SIZE_SUFFIXES: Readonly<Record<string, bigint>> = { b: 0n, k: 1n, m: 2n, g: 3n, t: 4n, p: 5n, e: 6n };

/**
 * qemu_strtosz: a decimal size with an optional fraction and a binary suffix (B, K, M, G, T, P,
 * E, any case); `defaultSuffix` scales a bare number ('B' for sizes, 'M' for max-bandwidth and
 * balloon). Hex is allowed without fraction or suffix. Null when malformed or ≥ 2^64.
 */
export function qemuStrtosz(text: string, defaultSuffix: 'B' | 'M' = 'B'): bigint | null {
  const m = /^[ \t\n\v\f\r]*(?:(0[xX][0-9a-fA-F]+)|([0-9]+)(\.[0-9]*)?)([a-zA-Z]?)$/.exec(text);
  if (m === null) return null;
  const [, hex, whole, fraction, suffixText] = m;
  if (hex !== undefined) {
    if (suffixText !== '') return null;
    const value = BigInt(hex);
    return value > UINT64_MAX ? null : value;
  }
  const suffix = suffixText === '' ? defaultSuffix.toLowerCase() : suffixText.toLowerCase();
  const power = SIZE_SUFFIXES[suffix];
  if (power === undefined) return null;
  const multiplier = 1024n ** power;
  const digits = fraction === undefined ? '' : fraction.slice(1);
  const fractionValue = digits === '' ? 0n : BigInt(digits);
  if (multiplier === 1n && fractionValue !== 0n) return null;
  // Exact fixed point: whole × mul + round-half-up(fraction × mul).
  const scale = 10n ** BigInt(digits.length);
  const value = BigInt(whole) * multiplier + (fractionValue * multiplier * 2n + scale) / (2n * scale);
  return value > UINT64_MAX ? null : value;
}

/** qapi_bool_parse: on/yes/true/y and off/no/false/n, case-sensitive. */
export function parseQapiBool(text: string): boolean | null {
  if (['on', 'yes', 'true', 'y'].includes(text)) return true;
  if (['off', 'no', 'false', 'n'].includes(text)) return false;
  return null;
}

/** The parsed arguments of a command line: strings, booleans and integers by key. */
export type HmpArgs = Record<string, string | boolean | bigint | undefined>;

/**
 * monitor_parse_arguments for the types our commands use: `s` (string), `b` (on|off), `M`
 * (expression × MiB, positive), `-x` (a flag, QEMU's in-order option matching).
 * `commandName` is the table entry's name as QEMU prints it ("stop|s").
 */
export function parseHmpArguments(cursor: Cursor, argsType: string, commandName: string): HmpArgs {
  const args: HmpArgs = {};
  const specs = argsType === '' ? [] : argsType.split(',');
  for (let i = 0; i < specs.length; i++) {
    const [key, type] = specs[i].split(':');
    if (type === 's') {
      const value = getStr(cursor);
      if (value === null) throw new HmpArgError(`${commandName}: string expected`);
      args[key] = value;
    } else if (type === 'b') {
      cursor.skipSpace();
      const start = cursor.pos;
      while (!cursor.atEnd && !isCSpace(cursor.current)) cursor.pos++;
      const word = cursor.text.slice(start, cursor.pos);
      if (word !== 'on' && word !== 'off') throw new HmpArgError("Expected 'on' or 'off'");
      args[key] = word === 'on';
    } else if (type === 'M') {
      const value = getExpr(cursor);
      if (value < 0n) throw new HmpArgError('enter a positive value');
      args[key] = wrap64(value * 1024n * 1024n);
    } else if (type.startsWith('-')) {
      parseFlag(cursor, key, type[1], specs.slice(i + 1).join(','), commandName, args);
    } else {
      throw new HmpArgError(`${commandName}: unknown type '${type}'`);
    }
  }
  cursor.skipSpace();
  if (!cursor.atEnd) throw new HmpArgError(`${commandName}: extraneous characters at the end of line`);
  return args;
}

function parseFlag(cursor: Cursor, key: string, letter: string, laterTypes: string, commandName: string, args: HmpArgs): void {
  const saved = cursor.pos;
  cursor.skipSpace();
  if (cursor.current !== '-') return;
  cursor.pos++;
  const given = cursor.current;
  if (given === letter) {
    cursor.pos++;
    args[key] = true;
    return;
  }
  // QEMU looks the option up in the later types with strstr, so a bare '-' matches any flag.
  if (!laterTypes.includes(`-${given ?? ''}`)) {
    throw new HmpArgError(`${commandName}: unsupported option -${given ?? ''}`);
  }
  // A later flag: leave it for its own key.
  cursor.pos = saved;
}
