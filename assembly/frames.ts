// PostgreSQL v3 message framing (after start-up): each message is one tag
// byte, then a big-endian int32 length that counts itself but not the tag,
// then length-4 body bytes.
//
// frameScan walks a buffer and records every complete message into an
// output area the host owns. Bad lengths are reported as values, never as a
// trap, and no byte outside [ptr, ptr+len) is read.
//
// Output area (little-endian u32 words at `out`, 4-byte aligned):
//   [0] status  FRAME_OK | FRAME_OUT_FULL | FRAME_LENGTH_TOO_SMALL | FRAME_LENGTH_TOO_LARGE
//   [1] stop    offset (from ptr) where the scan stopped: the incomplete tail
//               (OK), the next unrecorded complete message (OUT_FULL), or
//               the bad message (errors)
//   [2] length  the bad message's length field as an i32 (errors), else 0
//   [3] count   number of records written (also the return value)
//   then `count` records of 3 words: tag, body offset (from ptr), body length.
// The host keeps the same numbers in src/hot/frames.ts.

const FRAME_OK: u32 = 0;
const FRAME_OUT_FULL: u32 = 1;
const FRAME_LENGTH_TOO_SMALL: u32 = 2;
const FRAME_LENGTH_TOO_LARGE: u32 = 3;

const HEADER_BYTES: usize = 16;
const RECORD_BYTES: usize = 12;

/**
 * Record the complete messages in `len` bytes at `ptr`, at most `outCap` of
 * them, into the area at `out` (16 + 12*outCap bytes). A length field below
 * 4 or above `maxLen` stops the scan with an error status; the messages
 * before it are still recorded. Returns the number of records.
 */
export function frameScan(ptr: usize, len: usize, maxLen: i32, out: usize, outCap: u32): u32 {
  let status = FRAME_OK;
  let badLength: i32 = 0;
  let count: u32 = 0;
  let p: usize = 0;
  // The header (5 bytes) is checked as soon as it is here, so a bad length
  // is caught before its body would have to be buffered.
  while (len - p >= 5) {
    const msgLen = <i32>bswap<u32>(load<u32>(ptr + p, 1));
    if (msgLen < 4) {
      status = FRAME_LENGTH_TOO_SMALL;
      badLength = msgLen;
      break;
    }
    if (msgLen > maxLen) {
      status = FRAME_LENGTH_TOO_LARGE;
      badLength = msgLen;
      break;
    }
    const total = <usize>msgLen + 1;
    if (total > len - p) break; // incomplete tail
    if (count == outCap) {
      status = FRAME_OUT_FULL;
      break;
    }
    const rec = out + HEADER_BYTES + <usize>count * RECORD_BYTES;
    store<u32>(rec, load<u8>(ptr + p));
    store<u32>(rec, <u32>(p + 5), 4);
    store<u32>(rec, <u32>msgLen - 4, 8);
    count++;
    p += total;
  }
  store<u32>(out, status);
  store<u32>(out, <u32>p, 4);
  store<i32>(out, badLength, 8);
  store<u32>(out, count, 12);
  return count;
}
