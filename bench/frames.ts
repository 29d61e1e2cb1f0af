// Message framing over 1 million CopyData messages with 40–200 byte bodies:
// the scan alone (data in place) and the streaming framer as the pq server
// uses it (64 KiB socket chunks pushed, every message copied out by next()).
import {
  MessageFramer,
  MessageFramerTs,
  DEFAULT_MAX_FRAME_LENGTH,
  FRAME_OUT_FULL,
  OUT_STATUS,
  OUT_STOP,
  outWords,
  scanFramesAt,
  scanFramesTs,
  type Framer,
} from '../src/hot/frames.js';
import { WasmBuffer, wasm } from '../src/hot/wasm.js';
import { interleaved, type BenchRow } from './lib.js';

/**
 * Run `fn` for `ms` before timing it: V8 first runs wasm (and JS) in a
 * baseline tier and swaps in optimized code later, in the background.
 */
function warmUp(fn: () => unknown, ms = 300): void {
  const end = performance.now() + ms;
  while (performance.now() < end) fn();
}


const MESSAGES = 1_000_000;
const BATCH = 1024;
const SOCKET_CHUNK = 64 << 10;

/** 1M CopyData ('d') messages with body sizes 40..200, deterministic. */
function copyDataStream(): Buffer {
  const sizes = new Uint16Array(MESSAGES);
  let seed = 12345;
  let total = 0;
  for (let i = 0; i < MESSAGES; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    sizes[i] = 40 + (seed >>> 8) % 161;
    total += 5 + sizes[i];
  }
  const buf = Buffer.alloc(total, 0x5a);
  let at = 0;
  for (let i = 0; i < MESSAGES; i++) {
    buf[at] = 0x64;
    buf.writeInt32BE(sizes[i] + 4, at + 1);
    at += 5 + sizes[i];
  }
  return buf;
}

function rate(messages: number, ms: number): number {
  return messages / (ms / 1e3);
}

function fmt(perSec: number, bytesPerSec: number): string {
  return `${(perSec / 1e6).toFixed(2)} M msg/s (${Math.round(bytesPerSec / 1e6).toLocaleString('en-US')} MB/s)`;
}

/** Scan everything with the wasm scanner, resuming after each full batch; returns the message count. */
function scanAllWasm(ptr: number, len: number, out: WasmBuffer): number {
  let total = 0;
  let base = 0;
  for (;;) {
    total += scanFramesAt(ptr + base, len - base, DEFAULT_MAX_FRAME_LENGTH, out.ptr, BATCH);
    const words = new Uint32Array(wasm().memory.buffer, out.ptr, 4);
    if (words[OUT_STATUS] !== FRAME_OUT_FULL) return total;
    base += words[OUT_STOP];
  }
}

function scanAllTs(buf: Uint8Array, out: Uint32Array): number {
  let total = 0;
  let base = 0;
  for (;;) {
    total += scanFramesTs(buf, base, buf.length, DEFAULT_MAX_FRAME_LENGTH, out, BATCH);
    if (out[OUT_STATUS] !== FRAME_OUT_FULL) return total;
    base += out[OUT_STOP];
  }
}

/** Feed the stream in socket-sized chunks and take every message out; returns the count. */
function drainAll(framer: Framer, stream: Buffer): number {
  let count = 0;
  for (let off = 0; off < stream.length; off += SOCKET_CHUNK) {
    framer.push(stream.subarray(off, off + SOCKET_CHUNK));
    while (framer.next()) count++;
  }
  return count;
}

export async function frameRows(): Promise<BenchRow[]> {
  const stream = copyDataStream();
  const expect = (n: number) => {
    if (n !== MESSAGES) throw new Error(`framing bench: ${n} messages, expected ${MESSAGES}`);
  };

  // Scan only, bytes already where each scanner reads them.
  const inWasm = new WasmBuffer(stream.length);
  const outArea = new WasmBuffer(outWords(BATCH) * 4);
  inWasm.view().set(stream);
  const outTs = new Uint32Array(outWords(BATCH));
  expect(scanAllWasm(inWasm.ptr, stream.length, outArea));
  expect(scanAllTs(stream, outTs));
  warmUp(() => scanAllWasm(inWasm.ptr, stream.length, outArea));
  warmUp(() => scanAllTs(stream, outTs));
  const [scan, scanTs] = await interleaved([() => scanAllWasm(inWasm.ptr, stream.length, outArea), () => scanAllTs(stream, outTs)], 9, 100);
  inWasm.dispose();
  outArea.dispose();

  // The streaming framer: push socket chunks, next() copies each body out.
  const framer = new MessageFramer();
  const framerTs = new MessageFramerTs();
  expect(drainAll(framer, stream));
  expect(drainAll(framerTs, stream));
  warmUp(() => drainAll(framer, stream));
  warmUp(() => drainAll(framerTs, stream));
  const [streamed, streamedTs] = await interleaved([() => drainAll(framer, stream), () => drainAll(framerTs, stream)], 7, 100);
  framer.dispose();
  framerTs.dispose();

  const row = (name: string, subject: string, ms: number, baseMs: number): BenchRow => ({
    name,
    subject,
    subjectValue: fmt(rate(MESSAGES, ms), rate(stream.length, ms)),
    baseline: 'TS twin',
    baselineValue: fmt(rate(MESSAGES, baseMs), rate(stream.length, baseMs)),
    ratio: baseMs / ms,
  });
  return [
    row('framing 1M CopyData (40-200 B), scan only, data in place', 'wasm frameScan', scan, scanTs),
    row('framing 1M CopyData, MessageFramer push 64 KiB + next()', 'wasm framer', streamed, streamedTs),
  ];
}
