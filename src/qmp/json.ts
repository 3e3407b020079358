/**
 * QMP's JSON dialect, as QEMU 7.2's qobject JSON parser reads it and its qobject JSON writer
 * prints it. Pure: strings in, values out.
 *
 * Reading (parseQmpJson) differs from JSON.parse where QEMU does, with QEMU's error texts:
 * - integers keep their exact value: a safe integer is a number, a larger one within
 *   int64/uint64 is a bigint (QEMU's QNum int/uint), anything beyond is a double;
 * - a number written with a fraction or an exponent is a QmpFloat even when integral, because
 *   QEMU's integer visitors refuse `1.0` ("expected: integer") while JSON.parse cannot tell;
 * - single-quoted strings are accepted, duplicate keys are refused ("duplicate key"), a lone
 *   surrogate escape is refused, nesting deeper than 1024 is refused ("JSON nesting depth limit
 *   exceeded", without the "JSON parse error, " prefix, as QEMU prints it);
 * - objects have a null prototype, so a `__proto__` key is plain data.
 *
 * Writing (encodeQmpJson) uses QEMU's separators (`": "`, `", "`), escapes every non-ASCII
 * character as an upper-case `\uXXXX` (surrogate pairs above U+FFFF), prints doubles with
 * C's `%.17g`, and orders object members as QEMU's QDict iterates them: by bucket of
 * tdb_hash(key) % 512, and within a bucket the member inserted last first. Objects built in
 * QAPI member order (the order QEMU's output visitor inserts) therefore print byte for byte
 * as QEMU prints them.
 *
 * What it deliberately doesn't do: QEMU's streaming split of the input (one value may span lines
 * there; qmp/protocol.ts frames by line instead), or `%`-interpolation (internal to QEMU).
 */

/** A number the input wrote with a fraction or an exponent (a QEMU double). */
export class QmpFloat {
  constructor(readonly value: number) {}
}

/** A value of QMP's JSON: objects are null-prototype records. */
export type QmpJson = null | boolean | number | bigint | string | QmpFloat | QmpJson[] | QmpJsonObject;

/** A JSON object as parsed here (null prototype). */
export interface QmpJsonObject {
  [key: string]: QmpJson;
}

/** QEMU's MAX_NESTING: brackets plus braces open at once. */
export const MAX_JSON_NESTING = 1024;

/** The outcome of parseQmpJson: the value, or QEMU's error text. */
export type QmpJsonResult = { readonly ok: true; readonly value: QmpJson } | { readonly ok: false; readonly desc: string };

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;
const TWO_64 = 2 ** 64;

/** Thrown inside the parser and turned into a result; never escapes this module. */
class JsonSyntaxError extends Error {}

function parseError(message: string): JsonSyntaxError {
  return new JsonSyntaxError(`JSON parse error, ${message}`);
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const KEYWORD_RE = /[a-zA-Z]+/y;

/** True when `value` is a parsed JSON object (not an array, not a QmpFloat). */
export function isQmpJsonObject(value: unknown): value is QmpJsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof QmpFloat);
}

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly text: string) {}

  parseDocument(): QmpJson {
    this.skipSpace();
    const value = this.parseValue();
    this.skipSpace();
    if (this.pos < this.text.length) {
      // QEMU would read the rest as another request; we take one request per line.
      throw parseError('only one JSON value per line is supported');
    }
    return value;
  }

  private skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  private enter(): void {
    this.depth++;
    if (this.depth > MAX_JSON_NESTING) throw new JsonSyntaxError('JSON nesting depth limit exceeded');
  }

  private parseValue(): QmpJson {
    const t = this.text;
    if (this.pos >= t.length) throw parseError('premature EOI');
    const c = t[this.pos];
    if (c === '{') return this.parseObject();
    if (c === '[') return this.parseArray();
    if (c === '"' || c === "'") return this.parseString();
    if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return this.parseKeyword();
    if (c === '}' || c === ']' || c === ',' || c === ':') throw parseError('expecting value');
    throw parseError(`stray '${this.strayText()}'`);
  }

  /** The lexer's view of a bad character: it and what follows up to a delimiter. */
  private strayText(): string {
    const rest = this.text.slice(this.pos);
    const m = /^[^\s{}[\],:]*/.exec(rest);
    return m !== null && m[0] !== '' ? m[0] : rest.slice(0, 1);
  }

  private parseKeyword(): QmpJson {
    KEYWORD_RE.lastIndex = this.pos;
    const m = KEYWORD_RE.exec(this.text);
    const word = m === null ? '' : m[0];
    this.pos += word.length;
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (word === 'null') return null;
    throw parseError(`invalid keyword '${word}'`);
  }

  private parseNumber(): QmpJson {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (m === null) throw parseError(`stray '${this.strayText()}'`);
    const end = this.pos + m[0].length;
    // A digit or letter right after the number ("01", "1x") is one bad token for QEMU's lexer.
    if (end < this.text.length && /[0-9a-zA-Z.]/.test(this.text[end])) throw parseError(`stray '${this.strayText()}'`);
    this.pos = end;
    const token = m[0];
    if (m[1] !== undefined || m[2] !== undefined) return new QmpFloat(Number(token));
    const exact = BigInt(token);
    if (exact >= BigInt(Number.MIN_SAFE_INTEGER) && exact <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(exact);
    if (exact >= INT64_MIN && exact <= UINT64_MAX) return exact;
    // Out of int64 and uint64 range: QEMU falls back to a double.
    return new QmpFloat(Number(token));
  }

  private parseString(): string {
    const t = this.text;
    const quote = t[this.pos];
    const start = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= t.length) throw parseError(`stray '${t.slice(start)}'`);
      const c = t[this.pos];
      const code = t.charCodeAt(this.pos);
      if (c === quote) {
        this.pos++;
        return out;
      }
      if (code < 0x20) throw parseError(`stray '${t.slice(start, this.pos + 1)}'`);
      if (c !== '\\') {
        out += c;
        this.pos++;
        continue;
      }
      const escape = t[this.pos + 1];
      const simple: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (escape !== undefined && escape in simple) {
        out += simple[escape];
        this.pos += 2;
        continue;
      }
      if (escape !== 'u') throw parseError('invalid escape sequence in string');
      out += this.parseUnicodeEscape();
    }
  }

  private hex4(at: number): number | null {
    const digits = this.text.slice(at, at + 4);
    return /^[0-9a-fA-F]{4}$/.test(digits) ? parseInt(digits, 16) : null;
  }

  private parseUnicodeEscape(): string {
    const begin = this.pos;
    const first = this.hex4(begin + 2);
    if (first === null) throw parseError('invalid escape sequence in string');
    this.pos += 6;
    let cp = first;
    if (first >= 0xd800 && first <= 0xdbff && this.text.startsWith('\\u', this.pos)) {
      const trailing = this.hex4(this.pos + 2);
      if (trailing !== null && trailing >= 0xdc00 && trailing <= 0xdfff) {
        cp = 0x10000 + ((first & 0x3ff) << 10) + (trailing & 0x3ff);
        this.pos += 6;
      } else {
        cp = -1;
      }
    }
    if (cp < 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
      throw parseError(`${this.text.slice(begin, this.pos)} is not a valid Unicode character`);
    }
    return String.fromCodePoint(cp);
  }

  private parseArray(): QmpJson[] {
    this.enter();
    this.pos++;
    const out: QmpJson[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.skipSpace();
      out.push(this.parseValue());
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === undefined) throw parseError('premature EOI');
      this.pos++;
      if (c === ']') break;
      if (c !== ',') throw parseError('expected separator in list');
    }
    this.depth--;
    return out;
  }

  private parseObject(): QmpJsonObject {
    this.enter();
    this.pos++;
    const out = Object.create(null) as QmpJsonObject;
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      this.depth--;
      return out;
    }
    for (;;) {
      this.skipSpace();
      const key = this.parseValue();
      if (typeof key !== 'string') throw parseError('key is not a string in object');
      this.skipSpace();
      const colon = this.text[this.pos];
      if (colon === undefined) throw parseError('premature EOI');
      if (colon !== ':') throw parseError('missing : in object pair');
      this.pos++;
      this.skipSpace();
      const value = this.parseValue();
      if (Object.hasOwn(out, key)) throw parseError('duplicate key');
      out[key] = value;
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === undefined) throw parseError('premature EOI');
      this.pos++;
      if (c === '}') break;
      if (c !== ',') throw parseError('expected separator in dict');
    }
    this.depth--;
    return out;
  }
}

/** Parses one JSON value (the whole of `text`), the way QEMU 7.2's parser would. */
export function parseQmpJson(text: string): QmpJsonResult {
  try {
    return { ok: true, value: new Parser(text).parseDocument() };
  } catch (error) {
    if (error instanceof JsonSyntaxError) return { ok: false, desc: error.message };
    throw error;
  }
}

/** C's `%.17g`, which QEMU uses for doubles. Non-finite values become null (QEMU prints `inf`). */
export function formatDouble(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mantissa, expText] = x.toExponential(16).split('e');
  const exp = Number(expText);
  const strip = (s: string): string => (s.includes('.') ? s.replace(/\.?0+$/, '') : s);
  if (exp < -4 || exp >= 17) {
    const sign = exp < 0 ? '-' : '+';
    return `${strip(mantissa)}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return strip(x.toFixed(16 - exp));
}

/** QDict's bucket count (QDICT_BUCKET_MAX). */
const QDICT_BUCKETS = 512;

/** QEMU's tdb_hash over the UTF-8 bytes of a key, unsigned 32-bit. */
export function tdbHash(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let value = Math.imul(0x238f13af, bytes.length) >>> 0;
  for (let i = 0; i < bytes.length; i++) value = (value + ((bytes[i] << ((i * 5) % 24)) >>> 0)) >>> 0;
  return (Math.imul(1103515243, value) + 12345) >>> 0;
}

/** The order in which a QDict holding `keys` (inserted in this order) iterates them. */
export function qdictOrder(keys: readonly string[]): string[] {
  return keys
    .map((key, index) => ({ key, index, bucket: tdbHash(key) % QDICT_BUCKETS }))
    .sort((a, b) => a.bucket - b.bucket || b.index - a.index)
    .map((entry) => entry.key);
}

function formatNumber(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) <= TWO_64) {
    // Only a wrapped uint64 (max-bandwidth=-1 reads back as 2^64-1) rounds to 2^64 as a double.
    if (x === TWO_64) return UINT64_MAX.toString();
    return Math.abs(x) <= Number.MAX_SAFE_INTEGER ? String(x === 0 ? 0 : x) : BigInt(x).toString();
  }
  return formatDouble(x);
}

function encodeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20 || c >= 0x7f) out += `\\u${c.toString(16).toUpperCase().padStart(4, '0')}`;
    else out += s[i];
  }
  return `${out}"`;
}

/**
 * Prints `value` as QEMU would. Accepts parsed values and plain JavaScript data (records,
 * arrays, numbers, bigints); `undefined` members are skipped as JSON.stringify does.
 */
export function encodeQmpJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return formatNumber(value);
    case 'bigint':
      return value.toString();
    case 'string':
      return encodeString(value);
    case 'object': {
      if (value instanceof QmpFloat) return formatDouble(value.value);
      if (Array.isArray(value)) return `[${value.map((item) => encodeQmpJson(item)).join(', ')}]`;
      const record = value as Record<string, unknown>;
      const keys = qdictOrder(Object.keys(record).filter((key) => record[key] !== undefined));
      return `{${keys.map((key) => `${encodeString(key)}: ${encodeQmpJson(record[key])}`).join(', ')}}`;
    }
    default:
      return 'null';
  }
}
