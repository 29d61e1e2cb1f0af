// CRC-32C: wasm (slicing-by-16) against the plain-TS slicing-by-8 twin, on
// the same bytes in the same process.
import { crc32c, crc32cAt, crc32cTs } from '../src/hot/crc32c.js';
import { WasmBuffer } from '../src/hot/wasm.js';
import { interleaved, mbPerSec, type BenchRow } from './lib.js';

/**
 * Run `fn` for `ms` before timing it: V8 first runs wasm (and JS) in a
 * baseline tier and swaps in optimized code later, in the background.
 */
function warmUp(fn: () => unknown, ms = 300): void {
  const end = performance.now() + ms;
  while (performance.now() < end) fn();
}


const BIG = 16 << 20;
const CHUNK = 8 << 10;

function mbps(value: number): string {
  return `${Math.round(value).toLocaleString('en-US')} MB/s`;
}

function row(name: string, wasmMbps: number, tsMbps: number, subject = 'wasm'): BenchRow {
  return { name, subject, subjectValue: mbps(wasmMbps), baseline: 'TS slicing-by-8', baselineValue: mbps(tsMbps), ratio: wasmMbps / tsMbps };
}

export async function crcRows(): Promise<BenchRow[]> {
  const data = new Uint8Array(BIG);
  // Cheap pseudo-random bytes (xorshift): CRC speed does not depend on content, but keep it non-trivial.
  let x = 0x9e3779b9;
  for (let i = 0; i < BIG; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x;
    data[i + 1] = x >>> 8;
    data[i + 2] = x >>> 16;
    data[i + 3] = x >>> 24;
  }
  const inWasm = new WasmBuffer(BIG);
  inWasm.view().set(data);
  const ptr = inWasm.ptr;
  if (crc32cAt(ptr, BIG) !== crc32cTs(data)) throw new Error('CRC bench: wasm and TS disagree');

  warmUp(() => crc32cAt(ptr, CHUNK));
  warmUp(() => crc32cTs(data.subarray(0, CHUNK)));
  const [whole, copied, wholeTs] = await interleaved([() => crc32cAt(ptr, BIG), () => crc32c(data), () => crc32cTs(data)], 9, 120);
  const [chunks, chunksTs] = await interleaved(
    [
      () => {
        for (let off = 0; off < BIG; off += CHUNK) crc32cAt(ptr + off, CHUNK);
      },
      () => {
        for (let off = 0; off < BIG; off += CHUNK) crc32cTs(data.subarray(off, off + CHUNK));
      },
    ],
    9,
    120,
  );
  inWasm.dispose();

  const tsBig = mbPerSec(BIG, wholeTs);
  return [
    row('CRC-32C, 16 MiB buffer (data in wasm memory)', mbPerSec(BIG, whole), tsBig),
    row('CRC-32C, 16 MiB buffer, copied into wasm first', mbPerSec(BIG, copied), tsBig, 'wasm + copy'),
    row('CRC-32C, 8 KiB chunks (independent CRCs)', mbPerSec(BIG, chunks), mbPerSec(BIG, chunksTs)),
  ];
}
