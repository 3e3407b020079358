/**
 * The received-pages bitmap of postcopy recovery (facts §3.2, §3.11). The source asks with
 * MIG_CMD_RECV_BITMAP; the destination answers with an RP RECV_BITMAP message followed by raw
 * bytes: be64 size, `size` bytes of bitmap, be64 end marker 0x0123456789ABCDEF. The bitmap is
 * an array of little-endian u64 words in which bit i (byte i >> 3, bit i & 7) says target
 * page i was received; its size is ceil(bits / 8) rounded up to a multiple of 8.
 *
 * lib's Bitmap keeps bit i in 32-bit word i >>> 5 at bit i & 31, which in little-endian byte
 * order is the same layout, so conversion is a byte-wise copy.
 */
import { Bitmap } from '../lib/bitmap.ts';
import { FormatError } from './errors.ts';

export const MIG_ERR_RP_BITMAP_SIZE = 'MIG_ERR_RP_BITMAP_SIZE';

/** The end marker after a RECV_BITMAP's bitmap (RAMBLOCK_RECV_BITMAP_ENDING). */
export const RECV_BITMAP_END_MARK = 0x0123456789abcdefn;
export const RECV_BITMAP_END_MARK_HIGH = 0x01234567;
export const RECV_BITMAP_END_MARK_LOW = 0x89abcdef;

/** Size in bytes of the bitmap for `bitCount` pages: whole u64 words. */
export function recvBitmapSizeBytes(bitCount: number): number {
  return Math.ceil(bitCount / 64) * 8;
}

/** The raw follow-on bytes of an RP RECV_BITMAP message: be64 size, bitmap, end marker. */
export function encodeRecvBitmapData(bitmap: Uint8Array): Uint8Array {
  if (bitmap.length % 8 !== 0) {
    throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bitmap size ${bitmap.length} is not a multiple of 8`, 0);
  }
  const out = new Uint8Array(16 + bitmap.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(bitmap.length / 4294967296));
  view.setUint32(4, bitmap.length >>> 0);
  out.set(bitmap, 8);
  view.setUint32(8 + bitmap.length, RECV_BITMAP_END_MARK_HIGH);
  view.setUint32(12 + bitmap.length, RECV_BITMAP_END_MARK_LOW);
  return out;
}

/**
 * Builds the wire bitmap for the first `bitCount` bits of `bitmap` (bit set = page received).
 * Padding bits past `bitCount` are zero.
 */
export function recvBitmapFromBitmap(bitmap: Bitmap, bitCount: number = bitmap.sizeBits): Uint8Array {
  if (bitCount > bitmap.sizeBits) {
    throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bit count ${bitCount} exceeds the bitmap's ${bitmap.sizeBits} bits`, 0);
  }
  const out = new Uint8Array(recvBitmapSizeBytes(bitCount));
  const fullBytes = bitCount >>> 3;
  const words = bitmap.words;
  for (let i = 0; i < fullBytes; i++) out[i] = (words[i >>> 2] >>> ((i & 3) * 8)) & 0xff;
  const tailBits = bitCount & 7;
  if (tailBits !== 0) {
    const byte = (words[fullBytes >>> 2] >>> ((fullBytes & 3) * 8)) & 0xff;
    out[fullBytes] = byte & ((1 << tailBits) - 1);
  }
  return out;
}

/**
 * Parses a wire bitmap for `bitCount` pages into a Bitmap. Its size must be exactly
 * recvBitmapSizeBytes(bitCount), as the QEMU source requires; padding bits are ignored.
 */
export function bitmapFromRecvBitmap(data: Uint8Array, bitCount: number): Bitmap {
  const want = recvBitmapSizeBytes(bitCount);
  if (data.length !== want) {
    throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bitmap size mismatch: ${data.length} byte(s), expected ${want} for ${bitCount} bit(s)`, 0);
  }
  const bitmap = new Bitmap(bitCount);
  const words = bitmap.words;
  const fullBytes = bitCount >>> 3;
  for (let i = 0; i < fullBytes; i++) words[i >>> 2] |= data[i] << ((i & 3) * 8);
  const tailBits = bitCount & 7;
  if (tailBits !== 0) words[fullBytes >>> 2] |= (data[fullBytes] & ((1 << tailBits) - 1)) << ((fullBytes & 3) * 8);
  return bitmap;
}

/**
 * The wire bitmap of bits [startBit, startBit + bitCount) of `bitmap`: one RAM block's pages of
 * a guest-wide received map (the destination's answer to MIG_CMD_RECV_BITMAP). Padding bits
 * past `bitCount` are zero.
 */
export function recvBitmapFromRange(bitmap: Bitmap, startBit: number, bitCount: number): Uint8Array {
  if (!(Number.isInteger(startBit) && startBit >= 0 && Number.isInteger(bitCount) && bitCount >= 0 && startBit + bitCount <= bitmap.sizeBits)) {
    throw new FormatError(MIG_ERR_RP_BITMAP_SIZE, `bits [${startBit}, ${startBit + bitCount}) outside the bitmap's ${bitmap.sizeBits} bits`, 0);
  }
  const out = new Uint8Array(recvBitmapSizeBytes(bitCount));
  const words = bitmap.words;
  const fullBytes = bitCount >>> 3;
  for (let i = 0; i < fullBytes; i++) out[i] = bitsAt(words, startBit + i * 8);
  const tailBits = bitCount & 7;
  if (tailBits !== 0) out[fullBytes] = bitsAt(words, startBit + fullBytes * 8) & ((1 << tailBits) - 1);
  return out;
}

/** The 8 bits of `words` starting at bit `at` (bits past the end read as zero). */
function bitsAt(words: Uint32Array, at: number): number {
  const w = at >>> 5;
  const shift = at & 31;
  let value = words[w] >>> shift;
  if (shift > 24 && w + 1 < words.length) value |= words[w + 1] << (32 - shift);
  return value & 0xff;
}
