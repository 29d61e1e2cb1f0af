// End-of-WAL scanner and record walker over PostgreSQL WAL bytes.
//
// A resumable state machine: the host feeds WAL bytes in LSN order, in chunks
// of any size, and the scanner validates them the way PostgreSQL 15's
// xlogreader does (page headers, record headers, continuation pages, CRC).
// The end of WAL is MAXALIGN(end of the last valid record), or the next
// segment start after an XLOG_SWITCH. All state lives in one unmanaged
// struct per scanner, so several scans can run side by side.
//
// The plain-TS twin in src/hot/xlog-ts.ts follows this file step by step;
// change both together.
import { crc32cUpdate } from "./crc32c";

const BLCKSZ: u64 = 8192;
const SHORT_PHD: u32 = 24;
const LONG_PHD: u32 = 40;
const REC_HDR: u32 = 24;
// PG 15 has no reader limit; later majors refuse to insert records above
// 1020 MiB. Anything above 1 GiB is garbage.
const MAX_REC_LEN: u32 = 1 << 30;

const XLP_FIRST_IS_CONTRECORD: u32 = 0x0001;
const XLP_LONG_HEADER: u32 = 0x0002;
const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u32 = 0x0008;
const XLP_ALL_FLAGS: u32 = 0x000f;

const RM_XLOG_ID: u32 = 0;
const XLOG_SWITCH: u32 = 0x40;
const RM_MAX_BUILTIN_ID: u32 = 21;
const RM_MIN_CUSTOM_ID: u32 = 128;

/** Why a scan stopped; Running means it wants more bytes. Mirrored in src/hot/xlog.ts. */
const STOP_RUNNING: u32 = 0;
const STOP_ZERO_LENGTH: u32 = 1;
const STOP_BAD_LENGTH: u32 = 2;
const STOP_BAD_MAGIC: u32 = 3;
const STOP_BAD_INFO_BITS: u32 = 4;
const STOP_BAD_LONG_HEADER: u32 = 5;
const STOP_BAD_PAGEADDR: u32 = 6;
const STOP_BAD_TIMELINE: u32 = 7;
const STOP_NO_CONTRECORD: u32 = 8;
const STOP_BAD_CONTRECORD_LENGTH: u32 = 9;
const STOP_CONTRECORD_REQUESTED: u32 = 10;
const STOP_BAD_RMID: u32 = 11;
const STOP_BAD_PREV: u32 = 12;
const STOP_BAD_CRC: u32 = 13;
const STOP_BAD_RECORD_OFFSET: u32 = 14;

// What the bytes at `pos` are.
const PHASE_FIND_FIRST: u32 = 0; // skipping a page's continuation data to find the first record
const PHASE_PAD: u32 = 1; // skipping to `next` (alignment padding, or the rest of a segment after SWITCH)
const PHASE_REC_HEADER: u32 = 2; // gathering the 24-byte record header
const PHASE_REC_BODY: u32 = 3; // streaming the record body through the CRC
const PHASE_DONE: u32 = 4;

/** Start kinds for xlogScannerNew. */
const START_PAGE: u32 = 0; // a page start: skip continuation data, take the first record found
const START_RECORD: u32 = 1; // a known record start (prev = its predecessor, 0 if unknown)

/** One walker output entry. */
const RECORD_ENTRY_SIZE: u32 = 32;

@unmanaged
class Scanner {
  segSize: u64 = 0;
  pos: u64 = 0; // LSN of the next byte fed
  next: u64 = 0; // where the next record is expected (before any page header)
  recStart: u64 = 0; // start of the record being read
  prev: u64 = 0; // start of the last valid record (the expected xl_prev)
  end: u64 = 0; // end of WAL so far
  lastRec: u64 = 0; // start of the last valid record, 0 = none yet
  pageStart: u64 = 0; // LSN of the page whose header is being read
  sysid: u64 = 0;
  count: u64 = 0; // valid records seen
  // The record header (24 bytes) and the page header (up to 40), kept here
  // because either may arrive split across chunks or pages.
  hdr0: u64 = 0;
  hdr1: u64 = 0;
  hdr2: u64 = 0;
  ph0: u64 = 0;
  ph1: u64 = 0;
  ph2: u64 = 0;
  ph3: u64 = 0;
  ph4: u64 = 0;
  out: usize = 0;
  totLen: u32 = 0; // 0 until the first 4 header bytes are in
  got: u32 = 0; // record bytes so far, header included, page headers excluded
  crc: u32 = 0;
  phase: u32 = 0;
  status: u32 = 0;
  inPage: u32 = 0;
  phGot: u32 = 0;
  phLen: u32 = 0;
  pageInfo: u32 = 0;
  pageRem: u32 = 0;
  lastTli: u32 = 0;
  magic: u32 = 0;
  prevKnown: u32 = 0;
  outCap: u32 = 0;
  outCount: u32 = 0;
}

// @ts-ignore: decorator
@inline function hdrBuf(s: Scanner): usize {
  return changetype<usize>(s) + offsetof<Scanner>("hdr0");
}

// @ts-ignore: decorator
@inline function phBuf(s: Scanner): usize {
  return changetype<usize>(s) + offsetof<Scanner>("ph0");
}

function isKnownMagic(m: u32): bool {
  // PG 13 .. 17
  return m == 0xd106 || m == 0xd10d || m == 0xd110 || m == 0xd113 || m == 0xd116;
}

function stop(s: Scanner, reason: u32): void {
  s.status = reason;
  s.phase = PHASE_DONE;
}

function beginRecordAt(s: Scanner, lsn: u64): void {
  s.recStart = lsn;
  s.got = 0;
  s.totLen = 0;
  s.phase = PHASE_REC_HEADER;
}

/** Does the page starting at `s.pos` have to be read (and so validated)? */
function needsPage(s: Scanner): bool {
  const ph = s.phase;
  if (ph == PHASE_DONE) return false;
  if (ph == PHASE_PAD) return s.next < s.pos + BLCKSZ;
  return true;
}

/** Magic and info bits, checked as soon as the short header is in. */
function checkShortHeader(s: Scanner): bool {
  const b = phBuf(s);
  const magic = <u32>load<u16>(b);
  const info = <u32>load<u16>(b, 2);
  if (s.magic == 0 ? !isKnownMagic(magic) : magic != s.magic) {
    stop(s, STOP_BAD_MAGIC);
    return false;
  }
  if ((info & ~XLP_ALL_FLAGS) != 0) {
    stop(s, STOP_BAD_INFO_BITS);
    return false;
  }
  if (info & XLP_LONG_HEADER) s.phLen = LONG_PHD;
  return true;
}

/** The rest of PG's page header checks, in its order. */
function checkFullHeader(s: Scanner): bool {
  const b = phBuf(s);
  const info = <u32>load<u16>(b, 2);
  if (info & XLP_LONG_HEADER) {
    if (<u64>load<u32>(b, 32) != s.segSize || load<u32>(b, 36) != <u32>BLCKSZ) {
      stop(s, STOP_BAD_LONG_HEADER);
      return false;
    }
    if (s.sysid == 0) s.sysid = load<u64>(b, 24);
  } else if ((s.pageStart & (s.segSize - 1)) == 0) {
    // a segment's first page must carry the long header
    stop(s, STOP_BAD_INFO_BITS);
    return false;
  }
  if (load<u64>(b, 8) != s.pageStart) {
    stop(s, STOP_BAD_PAGEADDR);
    return false;
  }
  const tli = load<u32>(b, 4);
  if (tli < s.lastTli) {
    stop(s, STOP_BAD_TIMELINE);
    return false;
  }
  s.lastTli = tli;
  if (s.magic == 0) s.magic = <u32>load<u16>(b);
  s.pageInfo = info;
  s.pageRem = load<u32>(b, 16);
  return true;
}

/** A record must not start where a page begins with continuation data. */
function startRecordAfterHeader(s: Scanner): void {
  if (s.pageInfo & XLP_FIRST_IS_CONTRECORD) stop(s, STOP_CONTRECORD_REQUESTED);
  else beginRecordAt(s, s.pos);
}

/** What entering a validated page means for the current phase. */
function enterPage(s: Scanner): void {
  const info = s.pageInfo;
  const rem = s.pageRem;
  const ph = s.phase;
  if (ph == PHASE_FIND_FIRST) {
    if (info & XLP_FIRST_IS_CONTRECORD) {
      const skip = (<u64>rem + 7) & ~(<u64>7);
      // continuation filling the page: no record starts here, try the next page
      if (skip >= BLCKSZ - <u64>s.phLen) return;
      s.next = s.pos + skip;
      s.end = s.next;
      s.phase = PHASE_PAD;
    } else {
      s.next = s.pageStart;
      s.end = s.next;
      beginRecordAt(s, s.pos);
    }
  } else if (ph == PHASE_PAD) {
    if (s.next == s.pageStart) startRecordAfterHeader(s);
    else if (s.next < s.pos) stop(s, STOP_BAD_RECORD_OFFSET);
  } else {
    // a record continues onto this page
    if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
      // the partial record was abandoned; a new one starts on this page
      s.next = s.pageStart;
      startRecordAfterHeader(s);
    } else if ((info & XLP_FIRST_IS_CONTRECORD) == 0) {
      stop(s, STOP_NO_CONTRECORD);
    } else if (rem == 0 || rem != s.totLen - s.got) {
      stop(s, STOP_BAD_CONTRECORD_LENGTH);
    }
  }
}

/** tot_len as soon as its 4 bytes are in (PG checks it before the rest, even when split). */
function checkLength(s: Scanner): bool {
  const tot = load<u32>(hdrBuf(s));
  if (tot == 0) {
    stop(s, STOP_ZERO_LENGTH);
    return false;
  }
  if (tot < REC_HDR || tot > MAX_REC_LEN) {
    stop(s, STOP_BAD_LENGTH);
    return false;
  }
  s.totLen = tot;
  return true;
}

/** rmid and prev-link, once the whole header is in. */
function checkHeader(s: Scanner): bool {
  const rmid = <u32>load<u8>(hdrBuf(s), 17);
  if (rmid > RM_MAX_BUILTIN_ID && rmid < RM_MIN_CUSTOM_ID) {
    stop(s, STOP_BAD_RMID);
    return false;
  }
  const xlPrev = s.hdr1;
  // after a seek PG can only check that the link points backwards
  if (s.prevKnown ? xlPrev != s.prev : xlPrev >= s.recStart) {
    stop(s, STOP_BAD_PREV);
    return false;
  }
  return true;
}

/** The record's last byte is in: CRC, output, and where the next one starts. Returns true to pause. */
function finishRecord(s: Scanner): bool {
  const h = hdrBuf(s);
  const crc = crc32cUpdate(s.crc, h, 20);
  const ok = crc == load<u32>(h, 20);
  const rmid = <u32>load<u8>(h, 17);
  const info = <u32>load<u8>(h, 16);
  if (s.outCap > 0) {
    const e = s.out + <usize>s.outCount * RECORD_ENTRY_SIZE;
    store<u64>(e, s.recStart);
    store<u64>(e, s.hdr1, 8);
    store<u32>(e, s.totLen, 16);
    store<u32>(e, load<u32>(h, 4), 20);
    store<u8>(e, <u8>info, 24);
    store<u8>(e, <u8>rmid, 25);
    store<u8>(e, ok ? 1 : 0, 26);
    s.outCount++;
  }
  if (!ok) {
    stop(s, STOP_BAD_CRC);
    return false;
  }
  s.prev = s.recStart;
  s.prevKnown = 1;
  s.lastRec = s.recStart;
  s.count++;
  let next = (s.pos + 7) & ~(<u64>7);
  if (rmid == RM_XLOG_ID && (info & 0xf0) == XLOG_SWITCH) {
    // the rest of the segment is zeros; the next record is in the next segment
    next = (next + s.segSize - 1) & ~(s.segSize - 1);
  }
  s.next = next;
  s.end = next;
  s.phase = PHASE_PAD;
  return s.outCap > 0 && s.outCount == s.outCap;
}

/**
 * A new scanner, or 0 when the arguments are invalid: segSize must be a power
 * of two from 1 MiB to 1 GiB; a page start must be 8192-aligned, a record
 * start 8-aligned. Bytes are then fed from the page holding `start`.
 */
export function xlogScannerNew(segSize: u32, start: u64, prev: u64, kind: u32): usize {
  if (segSize < (1 << 20) || segSize > (1 << 30) || (segSize & (segSize - 1)) != 0) return 0;
  if (kind == START_PAGE) {
    if ((start & (BLCKSZ - 1)) != 0) return 0;
  } else if (kind == START_RECORD) {
    if ((start & 7) != 0) return 0;
  } else {
    return 0;
  }
  const s = changetype<Scanner>(heap.alloc(offsetof<Scanner>()));
  memory.fill(changetype<usize>(s), 0, offsetof<Scanner>());
  s.segSize = segSize;
  s.pos = start & ~(BLCKSZ - 1);
  s.end = start;
  if (kind == START_PAGE) {
    s.phase = PHASE_FIND_FIRST;
  } else {
    s.phase = PHASE_PAD;
    s.next = start;
    s.prev = prev;
    s.prevKnown = prev != 0 ? 1 : 0;
  }
  return changetype<usize>(s);
}

export function xlogScannerFree(s: usize): void {
  heap.free(s);
}

/** Walker mode: write an entry per record (up to `cap`) at `ptr`; resets the count. */
export function xlogScannerSetOutput(s: Scanner, ptr: usize, cap: u32): void {
  s.out = ptr;
  s.outCap = cap;
  s.outCount = 0;
}

/**
 * Feed the next `len` bytes (at `ptr` in this memory). Returns how many were
 * consumed: all of them unless the scan stopped or the output area filled.
 */
export function xlogScannerFeed(s: Scanner, ptr: usize, len: usize): usize {
  // a full record area must be drained before any further record is read
  if (s.outCap > 0 && s.outCount >= s.outCap) return 0;
  let p = ptr;
  let n = len;
  while (n > 0) {
    const phase = s.phase;
    if (phase == PHASE_DONE) break;
    if (s.inPage == 0 && (s.pos & (BLCKSZ - 1)) == 0 && needsPage(s)) {
      s.inPage = 1;
      s.phGot = 0;
      s.phLen = SHORT_PHD;
      s.pageStart = s.pos;
    }
    if (s.inPage) {
      const take = <u32>min<usize>(n, <usize>(s.phLen - s.phGot));
      memory.copy(phBuf(s) + s.phGot, p, take);
      s.phGot += take;
      s.pos += take;
      p += take;
      n -= take;
      if (s.phGot == SHORT_PHD && s.phLen == SHORT_PHD) {
        if (!checkShortHeader(s)) break;
      }
      if (s.phGot < s.phLen) continue;
      s.inPage = 0;
      if (!checkFullHeader(s)) break;
      enterPage(s);
      continue;
    }
    const pageLeft = BLCKSZ - (s.pos & (BLCKSZ - 1));
    if (phase == PHASE_REC_BODY) {
      const take = <usize>min<u64>(min<u64>(<u64>n, <u64>(s.totLen - s.got)), pageLeft);
      s.crc = crc32cUpdate(s.crc, p, take);
      s.got += <u32>take;
      s.pos += take;
      p += take;
      n -= take;
      if (s.got == s.totLen && finishRecord(s)) break;
    } else if (phase == PHASE_REC_HEADER) {
      const got = s.got;
      if (got == 0 && n >= <usize>REC_HDR && pageLeft >= <u64>REC_HDR) {
        // whole header at hand: the common case
        s.hdr0 = load<u64>(p);
        s.hdr1 = load<u64>(p, 8);
        s.hdr2 = load<u64>(p, 16);
        s.got = REC_HDR;
        s.pos += REC_HDR;
        p += REC_HDR;
        n -= REC_HDR;
      } else {
        const take = <u32>min<u64>(min<u64>(<u64>n, <u64>(REC_HDR - got)), pageLeft);
        memory.copy(hdrBuf(s) + got, p, take);
        s.got = got + take;
        s.pos += take;
        p += take;
        n -= take;
      }
      if (s.totLen == 0 && s.got >= 4 && !checkLength(s)) break;
      if (s.got == REC_HDR) {
        if (!checkHeader(s)) break;
        if (s.totLen == REC_HDR) {
          s.crc = 0;
          if (finishRecord(s)) break;
        } else {
          s.crc = 0;
          s.phase = PHASE_REC_BODY;
        }
      }
    } else if (phase == PHASE_PAD) {
      const dist = s.next - s.pos;
      if (dist == 0) {
        // mid-page: a page-start `next` is handled on entering the page
        beginRecordAt(s, s.pos);
        continue;
      }
      let take = min<u64>(<u64>n, dist);
      // stop at the page end when the next page must be validated
      if (take > pageLeft && s.next < s.pos + pageLeft + BLCKSZ) take = pageLeft;
      s.pos += take;
      p += <usize>take;
      n -= <usize>take;
    } else {
      // PHASE_FIND_FIRST: the rest of a page full of continuation data
      const take = min<u64>(<u64>n, pageLeft);
      s.pos += take;
      p += <usize>take;
      n -= <usize>take;
    }
  }
  return len - n;
}

export function xlogScannerStatus(s: Scanner): u32 {
  return s.status;
}

/** End of WAL so far: MAXALIGN(end of the last valid record), or the segment start after a SWITCH. */
export function xlogScannerEnd(s: Scanner): u64 {
  return s.end;
}

/** Start of the last valid record, 0 when none was found. */
export function xlogScannerLastRecord(s: Scanner): u64 {
  return s.lastRec;
}

/** LSN of the next byte the scanner expects. */
export function xlogScannerPosition(s: Scanner): u64 {
  return s.pos;
}

export function xlogScannerRecordCount(s: Scanner): u64 {
  return s.count;
}

export function xlogScannerOutputCount(s: Scanner): u32 {
  return s.outCount;
}

/** xlp_sysid of the first long page header seen (0 if none yet). */
export function xlogScannerSysid(s: Scanner): u64 {
  return s.sysid;
}

/** Page magic of the scan (0 until the first page), and the last page's xlp_tli. */
export function xlogScannerMagic(s: Scanner): u32 {
  return s.magic;
}

export function xlogScannerTimeline(s: Scanner): u32 {
  return s.lastTli;
}
