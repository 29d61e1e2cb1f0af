// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing-by-8.
// Incremental: pass the previous result as `crc` (0 to start); the pre- and
// post-inversion happen inside, so crc32c(crc32c(0, a), b) == crc32c(0, a ++ b).

// 8 tables of 256 u32 = 8 KiB, at a fixed address so loads can use constant offsets.
const TABLES: usize = memory.data(8 * 1024, 64);
let ready = false;

function init(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let t: usize = 1; t < 8; t++) {
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
  let n = len;
  while (n >= 8) {
    const lo = load<u32>(p) ^ c;
    const hi = load<u32>(p, 4);
    c =
      ((tab(7, lo & 0xff) ^ tab(6, (lo >>> 8) & 0xff)) ^ (tab(5, (lo >>> 16) & 0xff) ^ tab(4, lo >>> 24))) ^
      ((tab(3, hi & 0xff) ^ tab(2, (hi >>> 8) & 0xff)) ^ (tab(1, (hi >>> 16) & 0xff) ^ tab(0, hi >>> 24)));
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >>> 8) ^ tab(0, (c ^ load<u8>(p)) & 0xff);
    p++;
    n--;
  }
  return ~c;
}
