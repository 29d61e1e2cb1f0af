// Cursor-style readers and writers for wire messages. PostgreSQL protocol
// integers are big-endian; the WAL push protocol's are little-endian, so
// both reader and writer take the byte order at construction.

export class ReadError extends Error {}

export class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly littleEndian = false,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new ReadError(`message too short: ${what} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  i16(what = 'int16'): number {
    this.need(2, what);
    const v = this.view.getInt16(this.pos, this.littleEndian);
    this.pos += 2;
    return v;
  }

  i32(what = 'int32'): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, this.littleEndian);
    this.pos += 4;
    return v;
  }

  u32(what = 'uint32'): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, this.littleEndian);
    this.pos += 4;
    return v;
  }

  u64(what = 'uint64'): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, this.littleEndian);
    this.pos += 8;
    return v;
  }

  i64(what = 'int64'): bigint {
    this.need(8, what);
    const v = this.view.getBigInt64(this.pos, this.littleEndian);
    this.pos += 8;
    return v;
  }

  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A NUL-terminated string (UTF-8). */
  cstring(what = 'string'): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new ReadError(`message malformed: ${what} at offset ${this.pos} is not NUL-terminated`);
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, end - this.pos).toString('utf8');
    this.pos = end + 1;
    return s;
  }

  rest(): Uint8Array {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }
}

export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(
    private readonly littleEndian = false,
    initial = 256,
  ) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  get length(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.pos++] = v;
    return this;
  }

  i16(v: number): this {
    this.room(2);
    if (this.littleEndian) this.buf.writeInt16LE(v, this.pos);
    else this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  i32(v: number): this {
    this.room(4);
    if (this.littleEndian) this.buf.writeInt32LE(v, this.pos);
    else this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    if (this.littleEndian) this.buf.writeUInt32LE(v >>> 0, this.pos);
    else this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  u64(v: bigint): this {
    this.room(8);
    if (this.littleEndian) this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.pos);
    else this.buf.writeBigUInt64BE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
    return this;
  }

  i64(v: bigint): this {
    this.room(8);
    if (this.littleEndian) this.buf.writeBigInt64LE(BigInt.asIntN(64, v), this.pos);
    else this.buf.writeBigInt64BE(BigInt.asIntN(64, v), this.pos);
    this.pos += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  cstring(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.room(b.length + 1);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    this.buf[this.pos++] = 0;
    return this;
  }

  /** Patch a big/little-endian int32 at `offset` (e.g. a length word). */
  patchI32(offset: number, v: number): this {
    if (this.littleEndian) this.buf.writeInt32LE(v, offset);
    else this.buf.writeInt32BE(v, offset);
    return this;
  }

  /** The written bytes (a copy-free slice; do not reuse the writer after). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * One tagged PostgreSQL message: tag byte, int32 length (counting itself),
 * then whatever `fill` writes.
 */
export function message(tag: number, fill: (w: Writer) => void): Buffer {
  const w = new Writer(false);
  w.u8(tag).i32(0);
  fill(w);
  w.patchI32(1, w.length - 1);
  return w.finish();
}
