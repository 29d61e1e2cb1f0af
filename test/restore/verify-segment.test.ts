// The checks restore-wal makes before handing a file to PostgreSQL: a
// segment's size and first page against its name, a history file's syntax.
import t from 'tap';
import { verifyWalFile } from '../../src/archive/fetch.js';
import { segmentFileName } from '../../src/lsn.js';
import { verifySegment, walFileKind, WalFileCheckError } from '../../src/wal/verify-segment.js';

const SEG = 1 << 20;

/** A segment whose first page has a PostgreSQL 15 long header. */
function segment(o: { tli?: number; segno?: bigint; size?: number; magic?: number; info?: number; pageAddr?: bigint; declared?: number; blcksz?: number } = {}): { name: string; bytes: Buffer } {
  const tli = o.tli ?? 1;
  const segno = o.segno ?? 5n;
  const b = Buffer.alloc(o.size ?? SEG);
  b.writeUInt16LE(o.magic ?? 0xd110, 0);
  b.writeUInt16LE(o.info ?? 0x0002, 2);
  b.writeUInt32LE(tli, 4);
  b.writeBigUInt64LE(o.pageAddr ?? segno * BigInt(SEG), 8);
  b.writeBigUInt64LE(7313n, 24);
  b.writeUInt32LE(o.declared ?? SEG, 32);
  b.writeUInt32LE(o.blcksz ?? 8192, 36);
  return { name: segmentFileName(tli, segno, SEG), bytes: b };
}

t.test('file kinds', async (t) => {
  t.equal(walFileKind('000000010000000000000005'), 'segment');
  t.equal(walFileKind('0000000A.history'), 'history');
  for (const bad of ['000000010000000000000005.partial', '00000001000000000000000a', '../000000010000000000000005', '0000000a.history', '00000001.backup', '']) {
    t.equal(walFileKind(bad), null, `"${bad}" is neither`);
  }
});

t.test('segments', async (t) => {
  const good = segment();
  t.doesNotThrow(() => verifySegment(good.name, good.bytes), 'a good segment passes');
  const parentTli = segment({ tli: 1 });
  t.doesNotThrow(() => verifySegment(segmentFileName(2, 5n, SEG), parentTli.bytes), "a new timeline's first segment may carry the parent's TLI");
  const cases: Array<[string, string, Buffer, RegExp]> = [
    ['truncated', good.name, good.bytes.subarray(0, SEG - 8192), /holds 1040384 bytes/],
    ['no magic', good.name, segment({ magic: 0x1234 }).bytes, /no WAL page magic/],
    ['short header', good.name, segment({ info: 0 }).bytes, /no long header/],
    ['wrong page address', good.name, segment({ pageAddr: 6n * BigInt(SEG) }).bytes, /first page is for LSN 0\/600000, the name says 0\/500000/],
    ['newer timeline than named', good.name, segment({ tli: 3 }).bytes, /timeline 3, the name says 1/],
    ['invalid declared size', good.name, segment({ declared: 12345 }).bytes, /invalid segment size 12345/],
    ['other block size', good.name, segment({ blcksz: 4096 }).bytes, /block size 4096/],
    ['another segment', segmentFileName(1, 6n, SEG), good.bytes, /the name says 0\/600000/],
    ['tiny', good.name, Buffer.alloc(10), /less than a page header/],
  ];
  for (const [what, name, bytes, message] of cases) {
    t.throws(() => verifySegment(name, bytes), WalFileCheckError, what);
    t.throws(() => verifySegment(name, bytes), { message }, `${what}: says why`);
  }
});

t.test('history files', async (t) => {
  t.doesNotThrow(() => verifyWalFile('00000003.history', Buffer.from('1\t0/3000000\tno recovery target specified\n2\t0/5000000\tat xid 900\n')));
  t.throws(() => verifyWalFile('00000003.history', Buffer.from('garbage\n')), WalFileCheckError, 'bad syntax');
  t.throws(() => verifyWalFile('00000002.history', Buffer.from('1\t0/3000000\tx\n2\t0/5000000\ty\n')), { message: /lists timeline 2, not older than 2/ });
  t.throws(() => verifyWalFile('00000002.partial', Buffer.alloc(0)), WalFileCheckError, 'not a WAL file name');
});
