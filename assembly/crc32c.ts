// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing-by-16.
// Incremental: pass the previous result as `crc` (0 to start); the pre- and
// post-inversion happen inside, so crc32c(crc32c(0, a), b) == crc32c(0, a ++ b).
//
// Measured on the project machine (V8 in Node 20, data already in wasm
// memory), slicing-by-16 with the shapes below ran at about 2.7 GB/s against
// 2.4 GB/s for slicing-by-8. What mattered:
// * a balanced XOR tree, so the 16 lookups are independent, not one chain;
// * byte loads (`load<u8>(p, k)`) for the 12 bytes that do not depend on the
//   running CRC: one memory operand instead of a shift and a mask;
// * table addresses written as `TABLES + t*1024 + idx*4` (an explicit add).
//   Moving the table base into the load's immediate offset measured about
//   8 % slower under this V8, so it is not used.

// 16 tables of 256 u32 = 16 KiB at a fixed address: `TABLES + (t << 10)`
// folds to a constant after inlining.
const TABLES: usize = memory.data(16 * 1024, 64);
let ready = false;

function init(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  // Table t maps a byte to its CRC contribution when followed by t zero bytes.
  for (let t: usize = 1; t < 16; t++) {
    for (let i: usize = 0; i < 256; i++) {
      const prev = load<u32>(TABLES + ((t - 1) << 10) + (i << 2));
      store<u32>(TABLES + (t << 10) + (i << 2), (prev >>> 8) ^ load<u32>(TABLES + ((prev & 0xff) << 2)));
    }
  }
  ready = true;
}

// @ts-ignore: decorator
@inline function tab(t: usize, idx: u32): u32 {
  return load<u32>(TABLES + (t << 10) + (<usize>idx << 2));
}

/** Continue a CRC-32C over `len` bytes at `ptr`. */
export function crc32cUpdate(crc: u32, ptr: usize, len: usize): u32 {
  if (!ready) init();
  let c = ~crc;
  let p = ptr;
  const end16 = ptr + (len & ~(<usize>15));
  const end = ptr + len;
  while (p < end16) {
    // Only the first 4 bytes mix with the running CRC.
    const w = load<u32>(p) ^ c;
    c =
      (((tab(15, w & 0xff) ^ tab(14, (w >>> 8) & 0xff)) ^ (tab(13, (w >>> 16) & 0xff) ^ tab(12, w >>> 24))) ^
        ((tab(11, load<u8>(p, 4)) ^ tab(10, load<u8>(p, 5))) ^ (tab(9, load<u8>(p, 6)) ^ tab(8, load<u8>(p, 7))))) ^
      (((tab(7, load<u8>(p, 8)) ^ tab(6, load<u8>(p, 9))) ^ (tab(5, load<u8>(p, 10)) ^ tab(4, load<u8>(p, 11)))) ^
        ((tab(3, load<u8>(p, 12)) ^ tab(2, load<u8>(p, 13))) ^ (tab(1, load<u8>(p, 14)) ^ tab(0, load<u8>(p, 15)))));
    p += 16;
  }
  while (p < end) {
    c = (c >>> 8) ^ tab(0, (c ^ load<u8>(p)) & 0xff);
    p++;
  }
  return ~c;
}
