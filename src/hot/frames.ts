// PostgreSQL v3 message framing (after start-up): 1 tag byte, a big-endian
// int32 length counting itself but not the tag, then length-4 body bytes.
//
// Two layers, each with a wasm version and a plain-TS twin:
// * scanFramesAt / scanFramesTs: the scan itself, writing records into an
//   output area (Uint32Array layout shared with assembly/frames.ts);
// * MessageFramer / MessageFramerTs: the streaming framer the pq server
//   uses: push(socket bytes), next() → message | null, FrameError on bad
//   lengths. They share the buffering logic (FramerBase) and differ only in
//   where the bytes live and which scanner runs over them.
// frameMessages / frameMessagesTs are one-shot helpers for tests and bench.
import { describeTag } from '../pq/tags.js';
import { WasmBuffer, wasm, type WasmExports } from './wasm.js';

/**
 * A framer's limit on a message's length field when none is given: 1 MiB +
 * 1 KiB, room for any message either side of walkeeper sends (a WAL push
 * CopyData carries ≤128 KiB). The listener sets its own, MAX_CLIENT_MESSAGE.
 */
export const DEFAULT_MAX_FRAME_LENGTH = (1 << 20) + 1024;

/** The largest length field the int32 wire format can carry. */
const MAX_INT32 = 0x7fffffff;

// Scan status codes and output-area layout (same numbers as assembly/frames.ts).
export const FRAME_OK = 0;
export const FRAME_OUT_FULL = 1;
export const FRAME_LENGTH_TOO_SMALL = 2;
export const FRAME_LENGTH_TOO_LARGE = 3;
/** Word indices of the output-area header; records start at word OUT_HEADER_WORDS. */
export const OUT_STATUS = 0;
export const OUT_STOP = 1;
export const OUT_BAD_LENGTH = 2;
export const OUT_COUNT = 3;
export const OUT_HEADER_WORDS = 4;
export const OUT_RECORD_WORDS = 3;

/** Words an output area needs to hold `cap` records. */
export function outWords(cap: number): number {
  return OUT_HEADER_WORDS + OUT_RECORD_WORDS * cap;
}

export type FrameErrorCode = 'length-too-small' | 'length-too-large';

function errorCode(status: number): FrameErrorCode {
  return status === FRAME_LENGTH_TOO_SMALL ? 'length-too-small' : 'length-too-large';
}

/** A message whose length field is out of range. The connection cannot be resynchronised after it. */
export class FrameError extends Error {
  override readonly name = 'FrameError';

  constructor(
    readonly code: FrameErrorCode,
    /** The message's tag byte. */
    readonly tag: number,
    /** The length field as read (a signed int32). */
    readonly length: number,
    /** Byte offset of the message's tag in the stream. */
    readonly offset: number,
    /** The configured maximum of the length field. */
    readonly maxMessage: number,
  ) {
    const why = code === 'length-too-small' ? 'less than 4' : `more than the maximum of ${maxMessage}`;
    super(`invalid message length ${length} for message type ${describeTag(tag, 'quoted-with-code')} at stream offset ${offset}: ${why}`);
  }
}

function clampMax(maxLen: number): number {
  if (!(maxLen >= 0)) return 0;
  return Math.min(MAX_INT32, Math.floor(maxLen));
}

// ---- the scan ----

interface FrameExports extends WasmExports {
  frameScan(ptr: number, len: number, maxLen: number, out: number, outCap: number): number;
}

/**
 * Scan `len` bytes at `ptr` in wasm memory; records go to the output area at
 * `outPtr` (4-byte aligned, outWords(outCap) words). Returns the record count.
 */
export function scanFramesAt(ptr: number, len: number, maxLen: number, outPtr: number, outCap: number): number {
  return wasm<FrameExports>().frameScan(ptr, len, clampMax(maxLen), outPtr, outCap) >>> 0;
}

/**
 * Plain-TS twin of scanFramesAt over bytes[start, end); offsets in the
 * records are relative to `start`.
 */
export function scanFramesTs(bytes: Uint8Array, start: number, end: number, maxLen: number, out: Uint32Array, outCap: number): number {
  const max = clampMax(maxLen);
  let status = FRAME_OK;
  let badLength = 0;
  let count = 0;
  let p = start;
  let w = OUT_HEADER_WORDS;
  while (end - p >= 5) {
    // `|` yields a signed int32, as the wire field is.
    const msgLen = (bytes[p + 1] << 24) | (bytes[p + 2] << 16) | (bytes[p + 3] << 8) | bytes[p + 4];
    if (msgLen < 4) {
      status = FRAME_LENGTH_TOO_SMALL;
      badLength = msgLen;
      break;
    }
    if (msgLen > max) {
      status = FRAME_LENGTH_TOO_LARGE;
      badLength = msgLen;
      break;
    }
    if (msgLen + 1 > end - p) break; // incomplete tail
    if (count === outCap) {
      status = FRAME_OUT_FULL;
      break;
    }
    out[w] = bytes[p];
    out[w + 1] = p + 5 - start;
    out[w + 2] = msgLen - 4;
    w += OUT_RECORD_WORDS;
    count++;
    p += msgLen + 1;
  }
  out[OUT_STATUS] = status;
  out[OUT_STOP] = p - start;
  out[OUT_BAD_LENGTH] = badLength; // stored as the u32 bit pattern; read back with `| 0`
  out[OUT_COUNT] = count;
  return count;
}

/** A wasm output area with a Uint32Array view that follows memory growth. */
class WasmOutArea {
  readonly cap: number;
  private readonly buf: WasmBuffer;
  private cached: Uint32Array | undefined;

  constructor(cap: number) {
    this.cap = cap;
    this.buf = new WasmBuffer(outWords(cap) * 4);
  }

  get ptr(): number {
    return this.buf.ptr;
  }

  words(): Uint32Array {
    // Memory growth detaches the old buffer, which empties every view on it.
    if (!this.cached || this.cached.length === 0) this.cached = new Uint32Array(wasm().memory.buffer, this.buf.ptr, outWords(this.cap));
    return this.cached;
  }

  dispose(): void {
    this.buf.dispose();
    this.cached = undefined;
  }
}

// ---- one-shot helpers ----

export interface Frame {
  tag: number;
  /** Offset of the body (after the 5 header bytes) in the scanned buffer. */
  offset: number;
  /** Body length (length field − 4). */
  length: number;
}

export interface FrameScan {
  frames: Frame[];
  /** Where the unscanned rest begins: the incomplete tail, or the bad message on error. */
  tail: number;
  error?: { code: FrameErrorCode; offset: number; length: number };
}

const ONE_SHOT_CAP = 1024;

/** Append the records of one scan, with offsets made relative to the whole buffer. */
function collect(words: Uint32Array, base: number, into: Frame[]): void {
  const count = words[OUT_COUNT];
  for (let i = 0, w = OUT_HEADER_WORDS; i < count; i++, w += OUT_RECORD_WORDS) {
    into.push({ tag: words[w], offset: base + words[w + 1], length: words[w + 2] });
  }
}

function finish(words: Uint32Array, base: number, frames: Frame[]): FrameScan {
  const status = words[OUT_STATUS];
  const tail = base + words[OUT_STOP];
  if (status === FRAME_OK) return { frames, tail };
  return { frames, tail, error: { code: errorCode(status), offset: tail, length: words[OUT_BAD_LENGTH] | 0 } };
}

let oneShotInput: WasmBuffer | undefined;
let oneShotOut: WasmOutArea | undefined;

/** Frame a whole buffer with the wasm scanner (the bytes are copied into wasm memory first). */
export function frameMessages(buf: Uint8Array, maxLen = DEFAULT_MAX_FRAME_LENGTH): FrameScan {
  oneShotInput ??= new WasmBuffer(Math.max(64 * 1024, buf.length));
  oneShotInput.reserve(buf.length);
  oneShotInput.view().set(buf);
  return frameMessagesAt(oneShotInput.ptr, buf.length, maxLen);
}

/** Frame `len` bytes already in wasm memory at `ptr` (no copy). */
export function frameMessagesAt(ptr: number, len: number, maxLen = DEFAULT_MAX_FRAME_LENGTH): FrameScan {
  const out = (oneShotOut ??= new WasmOutArea(ONE_SHOT_CAP));
  const frames: Frame[] = [];
  let base = 0;
  for (;;) {
    scanFramesAt(ptr + base, len - base, maxLen, out.ptr, out.cap);
    const words = out.words();
    collect(words, base, frames);
    if (words[OUT_STATUS] !== FRAME_OUT_FULL) return finish(words, base, frames);
    base += words[OUT_STOP];
  }
}

/** Plain-TS twin of frameMessages. */
export function frameMessagesTs(buf: Uint8Array, maxLen = DEFAULT_MAX_FRAME_LENGTH): FrameScan {
  const words = new Uint32Array(outWords(ONE_SHOT_CAP));
  const frames: Frame[] = [];
  let base = 0;
  for (;;) {
    scanFramesTs(buf, base, buf.length, maxLen, words, ONE_SHOT_CAP);
    collect(words, base, frames);
    if (words[OUT_STATUS] !== FRAME_OUT_FULL) return finish(words, base, frames);
    base += words[OUT_STOP];
  }
}

// ---- streaming framers ----

export interface Message {
  tag: number;
  /** A copy of the body: stays valid after further push()/next() calls. */
  body: Buffer;
}

export interface FramerOptions {
  /** Largest accepted length field (default DEFAULT_MAX_FRAME_LENGTH). */
  maxMessage?: number;
  /** Initial size of the accumulation buffer in bytes (default 64 KiB). */
  initialCapacity?: number;
  /** Messages recorded per scan (default 1024). */
  batch?: number;
}

/** What the pq server needs from a framer; MessageFramer and MessageFramerTs both provide it. */
export interface Framer {
  /** Append bytes read from the socket. Ignored once next() has thrown. */
  push(chunk: Uint8Array): void;
  /** The next complete message, or null until more bytes arrive. Throws FrameError on a bad length, and keeps throwing it. */
  next(): Message | null;
  /** Bytes received but not yet returned as messages. */
  readonly buffered: number;
  /** Release the buffers (wasm memory for MessageFramer). */
  dispose(): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Buffering shared by both framers. Bytes live in storage()[readPos, writePos);
 * a scan records up to `batch` messages from readPos, which next() hands out
 * one by one; the scan's status says what comes after them.
 */
abstract class FramerBase implements Framer {
  readonly maxMessage: number;
  protected readonly batch: number;
  protected capacity: number;
  private readonly initialCapacity: number;
  private readPos = 0;
  private writePos = 0;
  /** Stream offset of storage index 0, for error messages. */
  private streamBase = 0;
  /** Output area of the last scan (header + records), in plain JS memory for cheap reads. */
  private readonly records: Uint32Array;
  /** Index of the next record to hand out, and how many the last scan made. */
  private recIndex = 0;
  private recCount = 0;
  /** The last scan is still the truth: no push since, and it ended with OK or an error. */
  private scanFresh = false;
  private failure: FrameError | undefined;
  private disposed = false;

  constructor(opts: FramerOptions) {
    this.maxMessage = clampMax(opts.maxMessage ?? DEFAULT_MAX_FRAME_LENGTH);
    this.batch = Math.max(1, Math.floor(opts.batch ?? 1024));
    this.capacity = Math.max(16, Math.floor(opts.initialCapacity ?? 64 * 1024));
    this.initialCapacity = this.capacity;
    this.records = new Uint32Array(outWords(this.batch));
  }

  /** The accumulation buffer, `capacity` bytes long. */
  protected abstract storage(): Uint8Array;
  /** Replace storage by one of `capacity` bytes holding old[from, to) at index 0. */
  protected abstract regrow(capacity: number, from: number, to: number): void;
  /** Scan storage[from, to), leaving header and records in `records` (outWords(batch) words). */
  protected abstract scan(from: number, to: number, records: Uint32Array): void;

  get buffered(): number {
    return this.writePos - this.readPos;
  }

  push(chunk: Uint8Array): void {
    this.checkLive();
    if (this.failure || chunk.length === 0) return;
    if (this.readPos === this.writePos) {
      // Drained: restart at index 0, and give back the room one big message needed.
      if (this.capacity > 4 * this.initialCapacity && chunk.length <= this.initialCapacity) this.regrow(this.initialCapacity, 0, 0);
      this.moveTo0(this.readPos, 0);
    }
    if (this.writePos + chunk.length > this.capacity) {
      const live = this.writePos - this.readPos;
      if (live + chunk.length > this.capacity) {
        this.regrow(Math.max(this.capacity * 2, live + chunk.length), this.readPos, this.writePos);
        this.moveTo0(this.readPos, live);
      } else {
        this.storage().copyWithin(0, this.readPos, this.writePos);
        this.moveTo0(this.readPos, live);
      }
    }
    this.storage().set(chunk, this.writePos);
    this.writePos += chunk.length;
    this.scanFresh = false;
  }

  next(): Message | null {
    this.checkLive();
    if (this.failure) throw this.failure;
    if (this.recIndex === this.recCount) {
      if (!this.scanFresh) this.rescan();
      if (this.recIndex === this.recCount) return this.afterRecords();
    }
    const w = OUT_HEADER_WORDS + this.recIndex * OUT_RECORD_WORDS;
    const tag = this.records[w];
    const length = this.records[w + 2];
    // Records are contiguous from readPos, so the body starts right after this header.
    const start = this.readPos + 5;
    this.recIndex++;
    this.readPos = start + length;
    if (length === 0) return { tag, body: EMPTY };
    const body = Buffer.allocUnsafe(length);
    body.set(this.storage().subarray(start, start + length));
    return { tag, body };
  }

  dispose(): void {
    this.disposed = true;
    this.readPos = this.writePos = 0;
    this.recIndex = this.recCount = 0;
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('framer used after dispose()');
  }

  /** Live bytes now start at storage index 0. Records of the last scan point at old offsets, so drop them. */
  private moveTo0(oldReadPos: number, live: number): void {
    this.streamBase += oldReadPos;
    this.readPos = 0;
    this.writePos = live;
    this.recIndex = this.recCount = 0;
    this.scanFresh = false;
  }

  private rescan(): void {
    const words = this.records;
    this.scan(this.readPos, this.writePos, words);
    this.recIndex = 0;
    this.recCount = words[OUT_COUNT];
    // OUT_FULL means more complete messages wait: scan again once these are handed out.
    this.scanFresh = words[OUT_STATUS] !== FRAME_OUT_FULL;
  }

  /** All records handed out: either wait for bytes or report the bad message the scan stopped at. */
  private afterRecords(): null {
    const words = this.records;
    const status = words[OUT_STATUS];
    if (status !== FRAME_LENGTH_TOO_SMALL && status !== FRAME_LENGTH_TOO_LARGE) return null;
    const tag = this.storage()[this.readPos];
    this.failure = new FrameError(errorCode(status), tag, words[OUT_BAD_LENGTH] | 0, this.streamBase + this.readPos, this.maxMessage);
    throw this.failure;
  }
}

// Frees a MessageFramer's wasm memory if it is dropped without dispose().
const wasmReleaser = new FinalizationRegistry<{ data: WasmBuffer; out: WasmOutArea }>((held) => {
  held.data.dispose();
  held.out.dispose();
});

/** Streaming framer whose accumulation buffer lives in wasm memory, scanned in place by frameScan. */
export class MessageFramer extends FramerBase {
  private data: WasmBuffer;
  private bytes: Uint8Array;
  private readonly out: WasmOutArea;
  private readonly held: { data: WasmBuffer; out: WasmOutArea };

  constructor(opts: FramerOptions = {}) {
    super(opts);
    this.data = new WasmBuffer(this.capacity);
    this.out = new WasmOutArea(this.batch);
    this.bytes = this.data.view();
    this.held = { data: this.data, out: this.out };
    wasmReleaser.register(this, this.held, this);
  }

  protected storage(): Uint8Array {
    // Memory growth detaches the old buffer, which empties every view on it.
    if (this.bytes.length === 0) this.bytes = this.data.view();
    return this.bytes;
  }

  protected regrow(capacity: number, from: number, to: number): void {
    const bigger = new WasmBuffer(capacity);
    // Take the old view only after the allocation: growing memory detaches it.
    bigger.view().set(this.data.view().subarray(from, to));
    this.data.dispose();
    this.data = bigger;
    this.held.data = bigger;
    this.bytes = bigger.view();
    this.capacity = capacity;
  }

  protected scan(from: number, to: number, records: Uint32Array): void {
    const count = scanFramesAt(this.data.ptr + from, to - from, this.maxMessage, this.out.ptr, this.out.cap);
    records.set(this.out.words().subarray(0, outWords(count)));
  }

  override dispose(): void {
    super.dispose();
    wasmReleaser.unregister(this);
    this.data.dispose();
    this.out.dispose();
  }
}

/** Plain-TS twin of MessageFramer: a Buffer for the bytes, scanFramesTs for the scan. */
export class MessageFramerTs extends FramerBase {
  private data: Uint8Array;

  constructor(opts: FramerOptions = {}) {
    super(opts);
    this.data = new Uint8Array(this.capacity);
  }

  protected storage(): Uint8Array {
    return this.data;
  }

  protected regrow(capacity: number, from: number, to: number): void {
    const bigger = new Uint8Array(capacity);
    bigger.set(this.data.subarray(from, to));
    this.data = bigger;
    this.capacity = capacity;
  }

  protected scan(from: number, to: number, records: Uint32Array): void {
    scanFramesTs(this.data, from, to, this.maxMessage, records, this.batch);
  }
}
