// CRC-32C: the wasm implementation and its plain-TypeScript twin.
// Both are incremental: crc32c(b, crc32c(a)) === crc32c(a ++ b).
import { WasmBuffer, wasm, type WasmExports } from './wasm.js';

interface CrcExports extends WasmExports {
  crc32cUpdate(crc: number, ptr: number, len: number): number;
}

/** CRC of bytes already in wasm memory (no copy). */
export function crc32cAt(ptr: number, len: number, crc = 0): number {
  return wasm<CrcExports>().crc32cUpdate(crc, ptr, len) >>> 0;
}

let scratch: WasmBuffer | undefined;
const SCRATCH_CHUNK = 1 << 20;

/** CRC of a JS byte array (copied into wasm memory in chunks). */
export function crc32c(data: Uint8Array, crc = 0): number {
  scratch ??= new WasmBuffer(SCRATCH_CHUNK);
  let c = crc;
  for (let off = 0; off < data.length; off += SCRATCH_CHUNK) {
    const piece = data.subarray(off, Math.min(data.length, off + SCRATCH_CHUNK));
    scratch.view().set(piece);
    c = crc32cAt(scratch.ptr, piece.length, c);
  }
  return c >>> 0;
}

// ---- plain-TypeScript twin (test oracle and benchmark baseline) ----

const TS_TABLES = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let s = 1; s < 8; s++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(s - 1) * 256 + i];
      t[s * 256 + i] = ((prev >>> 8) ^ t[prev & 0xff]) >>> 0;
    }
  }
  return t;
})();

/** Slicing-by-8 CRC-32C in plain TypeScript. */
export function crc32cTs(data: Uint8Array, crc = 0): number {
  const t = TS_TABLES;
  let c = ~crc >>> 0;
  let i = 0;
  const n = data.length;
  for (; i + 8 <= n; i += 8) {
    const lo = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) ^ c;
    const hi = data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
    c =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + (hi & 0xff)] ^
      t[512 + ((hi >>> 8) & 0xff)] ^
      t[256 + ((hi >>> 16) & 0xff)] ^
      t[hi >>> 24];
  }
  for (; i < n; i++) c = (c >>> 8) ^ t[(c ^ data[i]) & 0xff];
  return ~c >>> 0;
}
