import t from 'tap';
import { crc32cTs } from '../../src/hot/crc32c.js';
import { ProtocolError, decodeControlFile, decodeControlFileContents, encodeControlFile } from '../../src/protocol/index.js';
import { SAFEKEEPER_INFO, SAFEKEEPER_INFO_BYTES } from './fixtures.js';

const FILE = '/data/t/tl/safekeeper.control';

function v2Fixture(): Buffer {
  // 128 bytes with format_version 2, then CRC-32C (little-endian) of those bytes.
  const body = Buffer.from(SAFEKEEPER_INFO_BYTES);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32cTs(body));
  return Buffer.concat([body, crc]);
}

function v3Fixture(backupLsn: bigint): Buffer {
  // 128 bytes with format_version 3, backup_lsn (u64 LE), CRC-32C (LE) of the 136 bytes.
  const body = Buffer.from(SAFEKEEPER_INFO_BYTES);
  body.writeUInt32LE(3, 4);
  const lsn = Buffer.alloc(8);
  lsn.writeBigUInt64LE(backupLsn);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32cTs(Buffer.concat([body, lsn])));
  return Buffer.concat([body, lsn, crc]);
}

function v1Fixture(): Buffer {
  const body = Buffer.from(SAFEKEEPER_INFO_BYTES);
  body.writeUInt32LE(1, 4); // @4 format_version 1
  return body;
}

function refuses(t: import('tap').Test, bytes: Uint8Array, code: string, message: RegExp): void {
  try {
    decodeControlFile(bytes, FILE);
    t.fail('expected a refusal');
  } catch (e) {
    t.ok(e instanceof ProtocolError);
    t.equal((e as ProtocolError).code, code);
    t.match((e as Error).message, message);
    t.match((e as Error).message, FILE, 'names the file');
  }
}

t.test('format 3: 128 bytes + backup_lsn + CRC-32C, 140 in all; read back with the wire format_version 2', (t) => {
  const bytes = v3Fixture(0x1_0300_0000n);
  t.equal(bytes.length, 140);
  t.same(encodeControlFile(SAFEKEEPER_INFO, 0x1_0300_0000n), bytes);
  const dec = decodeControlFileContents(bytes, FILE);
  t.same(dec.state, SAFEKEEPER_INFO);
  t.equal(dec.state.formatVersion, 2, 'the state keeps the format_version the greeting sends');
  t.equal(dec.backupLsn, 0x1_0300_0000n);
  t.equal(dec.format, 3);
  t.end();
});

t.test('format 2: 128 bytes + CRC-32C, 132 in all, still read (backup_lsn 0)', (t) => {
  const bytes = v2Fixture();
  t.equal(bytes.length, 132);
  t.same(decodeControlFile(bytes, FILE), SAFEKEEPER_INFO);
  const dec = decodeControlFileContents(bytes, FILE);
  t.equal(dec.backupLsn, 0n);
  t.equal(dec.format, 2);
  t.end();
});

t.test('format 1 and 2 states are written as format 3', (t) => {
  t.same(encodeControlFile({ ...SAFEKEEPER_INFO, formatVersion: 1 }), v3Fixture(0n));
  t.same(encodeControlFile(SAFEKEEPER_INFO), v3Fixture(0n));
  t.end();
});

t.test('format 1: the bare 128 bytes are read', (t) => {
  const dec = decodeControlFile(v1Fixture(), FILE);
  t.same(dec, { ...SAFEKEEPER_INFO, formatVersion: 1 });
  t.end();
});

t.test('refusals name the file and say what was wrong', (t) => {
  const badCrc = v2Fixture();
  badCrc[50] ^= 0x01;
  refuses(t, badCrc, 'bad-checksum', /invalid CRC-32C: expected 0x[0-9A-F]{8}, got 0x[0-9A-F]{8}/);

  const badStoredCrc = v2Fixture();
  badStoredCrc[131] ^= 0x80;
  refuses(t, badStoredCrc, 'bad-checksum', /CRC-32C/);

  const badMagic = v2Fixture();
  badMagic.writeUInt32LE(0xdeadbeef, 0);
  refuses(t, badMagic, 'bad-magic', /invalid magic: expected 0xCAFECEEF, got 0xDEADBEEF/);

  const v4 = v2Fixture();
  v4.writeUInt32LE(4, 4);
  refuses(t, v4, 'unknown-version', /invalid format_version: expected 1, 2 or 3, got 4/);
  const badV3 = v3Fixture(0x1000n);
  badV3[130] ^= 0x01;
  refuses(t, badV3, 'bad-checksum', /CRC-32C/);
  refuses(t, v3Fixture(0n).subarray(0, 132), 'wrong-length', /expected 140 bytes for format 3, got 132 bytes/);

  refuses(t, v2Fixture().subarray(0, 131), 'wrong-length', /expected 132 bytes for format 2, got 131 bytes/);
  refuses(t, Buffer.concat([v2Fixture(), Buffer.alloc(1)]), 'wrong-length', /got 133 bytes/);
  refuses(t, Buffer.concat([v1Fixture(), Buffer.alloc(4)]), 'wrong-length', /expected 128 bytes for format 1, got 132 bytes/);
  refuses(t, v1Fixture().subarray(0, 100), 'wrong-length', /got 100 bytes/);
  refuses(t, Buffer.alloc(0), 'wrong-length', /got 0 bytes/);
  refuses(t, Buffer.alloc(132), 'bad-magic', /got 0x00000000/);
  t.end();
});

t.test('the wasm CRC and its TS twin agree on the file', (t) => {
  const enc = encodeControlFile({ ...SAFEKEEPER_INFO, epoch: 123456789n, flushLsn: 0xabcdef0123n });
  t.equal(enc.readUInt32LE(136), crc32cTs(enc.subarray(0, 136)));
  t.end();
});
