import t from 'tap';
import { crc32c, crc32cAt, crc32cTs } from '../../src/hot/crc32c.js';
import { WasmBuffer } from '../../src/hot/wasm.js';
import { mulberry32 } from '../helpers/support.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s, 'latin1');

// RFC 3720 / PostgreSQL-checked vectors (CRC-32C as PostgreSQL computes it: docs/protocol.md §9).
const VECTORS: Array<[string, Uint8Array, number]> = [
  ['123456789', ascii('123456789'), 0xe3069283],
  ['empty', new Uint8Array(0), 0x00000000],
  ['a', ascii('a'), 0xc1d04330],
  ['abc', ascii('abc'), 0x364b3fb7],
  ['32 x 0x00', new Uint8Array(32), 0x8a9136aa],
  ['32 x 0xFF', new Uint8Array(32).fill(0xff), 0x62a8ab43],
  ['bytes 0..31', Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
  ['quick brown fox', ascii('The quick brown fox jumps over the lazy dog'), 0x22620404],
];

/** Place bytes at ptr+offset of a wasm buffer and return that address. */
function place(buf: WasmBuffer, data: Uint8Array, offset: number): number {
  buf.view().set(data, offset);
  return buf.ptr + offset;
}

t.test('test vectors: wasm (in place and copied) and the TS twin', async (t) => {
  const buf = new WasmBuffer(256);
  t.teardown(() => buf.dispose());
  for (const [name, data, want] of VECTORS) {
    t.equal(crc32c(data), want, `wasm copy: ${name}`);
    t.equal(crc32cAt(place(buf, data, 3), data.length), want, `wasm in place: ${name}`);
    t.equal(crc32cTs(data), want, `TS twin: ${name}`);
  }
});

t.test('real PostgreSQL 15 records', async (t) => {
  // XLOG_SWITCH at 0/F9802B0: no body, CRC over the 20 header bytes before xl_crc.
  const switchHeader = hex('18000000 00000000 7802980f00000000 40 00 0000');
  t.equal(switchHeader.length, 20);
  t.equal(crc32c(switchHeader), 0xf6480ec3, 'XLOG_SWITCH (wasm)');
  t.equal(crc32cTs(switchHeader), 0xf6480ec3, 'XLOG_SWITCH (TS)');
  t.equal(hex('c30e48f6').readUInt32LE(0), 0xf6480ec3, 'matches the stored little-endian xl_crc');

  // COMMIT at 0/100000A0: body first, then the header, as one running CRC.
  const commitHeader = hex('22000000 905a0000 6000001000000000 00 01 0000');
  const commitBody = hex('ff08f321a71405040300');
  t.equal(crc32c(commitHeader, crc32c(commitBody)), 0xf94201be, 'COMMIT (wasm, incremental)');
  t.equal(crc32cTs(commitHeader, crc32cTs(commitBody)), 0xf94201be, 'COMMIT (TS, incremental)');
  t.equal(crc32c(Buffer.concat([commitBody, commitHeader])), 0xf94201be, 'COMMIT (wasm, one call)');
  t.not(crc32c(Buffer.concat([commitHeader, commitBody])), 0xf94201be, 'header-then-body is not the record CRC');
});

t.test('incremental: splitting at every position equals one call', async (t) => {
  const data = new Uint8Array(333);
  const next = mulberry32(7);
  for (let i = 0; i < data.length; i++) data[i] = (next() * 256) | 0;
  const buf = new WasmBuffer(data.length + 16);
  t.teardown(() => buf.dispose());
  const ptr = place(buf, data, 5);
  const whole = crc32cAt(ptr, data.length);
  t.equal(crc32cTs(data), whole, 'wasm and TS agree on the whole buffer');
  let bad = 0;
  for (let i = 0; i <= data.length; i++) {
    if (crc32cAt(ptr + i, data.length - i, crc32cAt(ptr, i)) !== whole) bad++;
    if (crc32cTs(data.subarray(i), crc32cTs(data.subarray(0, i))) !== whole) bad++;
    if (crc32c(data.subarray(i), crc32c(data.subarray(0, i))) !== whole) bad++;
  }
  t.equal(bad, 0, 'every two-way split gives the one-shot CRC');
  // Three pieces whose boundaries fall inside and across 16-byte blocks.
  let bad3 = 0;
  for (let i = 0; i <= 40; i++) {
    for (let j = i; j <= 70; j++) {
      const c = crc32cAt(ptr + j, data.length - j, crc32cAt(ptr + i, j - i, crc32cAt(ptr, i)));
      if (c !== whole) bad3++;
    }
  }
  t.equal(bad3, 0, 'every three-way split gives the one-shot CRC');
});

t.test('a large buffer crossing the 1 MiB copy chunk of crc32c()', async (t) => {
  const next = mulberry32(11);
  const data = new Uint8Array((1 << 20) * 2 + 12345);
  for (let i = 0; i < data.length; i++) data[i] = (next() * 256) | 0;
  t.equal(crc32c(data), crc32cTs(data));
});

t.test('wasm and the TS twin agree on 10,000 random inputs', async (t) => {
  const seed = 20261124;
  const next = mulberry32(seed);
  const pool = new Uint8Array(1 << 16);
  for (let i = 0; i < pool.length; i++) pool[i] = (next() * 256) | 0;
  const MAX = 20000;
  const buf = new WasmBuffer(MAX + 64);
  t.teardown(() => buf.dispose());
  // Random bytes around every input: a read past either end changes the result.
  buf.view().set(pool.subarray(0, MAX + 64));
  let mismatches = 0;
  let firstMismatch = '';
  for (let n = 0; n < 10_000; n++) {
    const len = Math.floor(next() * (MAX + 1));
    const from = Math.floor(next() * (pool.length - len));
    const data = pool.subarray(from, from + len);
    const seedCrc = next() < 0.5 ? 0 : Math.floor(next() * 2 ** 32);
    const offset = Math.floor(next() * 48);
    const want = crc32cTs(data, seedCrc);
    const ptr = place(buf, data, offset);
    const inPlace = crc32cAt(ptr, len, seedCrc);
    const copied = crc32c(data, seedCrc);
    if (inPlace !== want || copied !== want) {
      mismatches++;
      firstMismatch ||= `case ${n}: len ${len} offset ${offset} seed crc ${seedCrc}: TS ${want}, wasm ${inPlace}/${copied}`;
    }
  }
  t.equal(mismatches, 0, firstMismatch || `all agree (seed ${seed})`);
});
