import t, { type Test } from 'tap';
import {
  ProtocolError,
  compareNodeId,
  decodeNodeId,
  decodeRequestVote,
  decodeSafeKeeperInfo,
  decodeSafeKeeperRequest,
  decodeSafeKeeperResponse,
  decodeServerInfo,
  encodeNodeId,
  encodeRequestVote,
  encodeSafeKeeperInfo,
  encodeSafeKeeperRequest,
  encodeSafeKeeperRequestHeader,
  encodeSafeKeeperResponse,
  encodeServerInfo,
  isEndOfStream,
  type SafeKeeperRequest,
} from '../../src/protocol/index.js';
import { NODE_ID, NODE_ID_BYTES, SAFEKEEPER_INFO, SAFEKEEPER_INFO_BYTES, SERVER_INFO, SERVER_INFO_BYTES, hex } from './fixtures.js';

function throwsProtocol(t: Test, fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
    t.fail(`expected ProtocolError ${code}`);
  } catch (e) {
    t.ok(e instanceof ProtocolError, 'a ProtocolError');
    t.equal((e as ProtocolError).code, code);
    t.match((e as Error).message, message);
  }
}

t.test('NodeId: 24 bytes, term then uuid', (t) => {
  t.equal(NODE_ID_BYTES.length, 24);
  t.same(encodeNodeId(NODE_ID), NODE_ID_BYTES);
  t.same(decodeNodeId(NODE_ID_BYTES), NODE_ID);
  // trailing bytes are ignored
  t.same(decodeNodeId(Buffer.concat([NODE_ID_BYTES, hex('ffff')])), NODE_ID);
  throwsProtocol(t, () => decodeNodeId(NODE_ID_BYTES.subarray(0, 23)), 'too-short', /NodeId: invalid length: expected at least 24 bytes, got 23/);
  throwsProtocol(t, () => encodeNodeId({ term: 1n, uuid: new Uint8Array(15) }), 'bad-field', /node_id\.uuid: expected 16 bytes, got 15 bytes/);
  throwsProtocol(t, () => encodeNodeId({ term: -1n, uuid: new Uint8Array(16) }), 'bad-field', /node_id\.term/);
  t.end();
});

t.test('compareNodeId orders by term, then uuid bytes', (t) => {
  const id = (term: bigint, ...u: number[]) => ({ term, uuid: Uint8Array.from({ length: 16 }, (_, i) => u[i] ?? 0) });
  t.ok(compareNodeId(id(1n, 0xff), id(2n, 0x00)) < 0, 'lower term first, whatever the uuid');
  t.ok(compareNodeId(id(2n, 0x00), id(1n, 0xff)) > 0);
  t.ok(compareNodeId(id(5n, 1, 2), id(5n, 1, 3)) < 0, 'same term: uuid bytes lexicographically');
  t.ok(compareNodeId(id(5n, 0x80), id(5n, 0x7f)) > 0, 'bytes compare unsigned');
  t.equal(compareNodeId(id(5n, 9, 9), id(5n, 9, 9)), 0);
  t.ok(compareNodeId(id(1n << 63n), id((1n << 63n) - 1n)) > 0, 'terms compare as u64');
  t.end();
});

t.test('ServerInfo: exactly 88 bytes at fixed offsets', (t) => {
  t.equal(SERVER_INFO_BYTES.length, 88);
  const enc = encodeServerInfo(SERVER_INFO);
  t.same(enc, SERVER_INFO_BYTES);
  t.equal(enc.readUInt32LE(0), 1, 'protocol_version @0');
  t.equal(enc.readUInt32LE(4), 150004, 'pg_version @4');
  t.equal(enc.readBigUInt64LE(8), NODE_ID.term, 'node_id.term @8');
  t.equal(enc.readBigUInt64LE(32), 0x1122334455667788n, 'system_id @32');
  t.equal(enc[40], 0xa0, 'timeline_id @40');
  t.equal(enc.readBigUInt64LE(56), 0x16b3748n, 'wal_end @56');
  t.equal(enc.readUInt32LE(64), 1, 'timeline @64');
  t.equal(enc.readUInt32LE(68), 16 << 20, 'wal_seg_size @68');
  t.equal(enc[72], 0xb0, 'tenant_id @72');
  t.same(decodeServerInfo(SERVER_INFO_BYTES), SERVER_INFO);
  throwsProtocol(t, () => decodeServerInfo(SERVER_INFO_BYTES.subarray(0, 87)), 'wrong-length', /ServerInfo: invalid length: expected exactly 88 bytes, got 87/);
  throwsProtocol(t, () => decodeServerInfo(Buffer.concat([SERVER_INFO_BYTES, hex('00')])), 'wrong-length', /expected exactly 88 bytes, got 89/);
  throwsProtocol(t, () => decodeServerInfo(new Uint8Array(0)), 'wrong-length', /got 0/);
  throwsProtocol(t, () => encodeServerInfo({ ...SERVER_INFO, tenantId: new Uint8Array(4) }), 'bad-field', /tenant_id: expected 16 bytes, got 4 bytes/);
  throwsProtocol(t, () => encodeServerInfo({ ...SERVER_INFO, walSegSize: 2 ** 32 }), 'bad-field', /wal_seg_size: expected a u32/);
  t.end();
});

t.test('SafeKeeperInfo: 128 bytes at fixed offsets', (t) => {
  t.equal(SAFEKEEPER_INFO_BYTES.length, 128);
  const enc = encodeSafeKeeperInfo(SAFEKEEPER_INFO);
  t.same(enc, SAFEKEEPER_INFO_BYTES);
  t.equal(enc.readUInt32LE(0), 0xcafeceef, 'magic @0');
  t.equal(enc.readUInt32LE(4), 2, 'format_version @4');
  t.equal(enc.readBigUInt64LE(8), 10n, 'epoch @8');
  t.same(enc.subarray(16, 104), SERVER_INFO_BYTES, 'server @16');
  t.equal(enc.readBigUInt64LE(104), 0x100n, 'commit_lsn @104');
  t.equal(enc.readBigUInt64LE(112), 0x200n, 'flush_lsn @112');
  t.equal(enc.readBigUInt64LE(120), 0x80n, 'restart_lsn @120');
  t.same(decodeSafeKeeperInfo(SAFEKEEPER_INFO_BYTES), SAFEKEEPER_INFO);
  t.same(decodeSafeKeeperInfo(Buffer.concat([SAFEKEEPER_INFO_BYTES, hex('0102')])), SAFEKEEPER_INFO, 'trailing bytes ignored');
  throwsProtocol(t, () => decodeSafeKeeperInfo(SAFEKEEPER_INFO_BYTES.subarray(0, 127)), 'too-short', /SafeKeeperInfo: invalid length: expected at least 128 bytes, got 127/);
  const badMagic = Buffer.from(SAFEKEEPER_INFO_BYTES);
  badMagic[0] = 0xee;
  throwsProtocol(t, () => decodeSafeKeeperInfo(badMagic), 'bad-magic', /invalid magic: expected 0xCAFECEEF, got 0xCAFECEEE/);
  t.end();
});

t.test('RequestVote: 40 bytes', (t) => {
  const bytes = Buffer.concat([
    NODE_ID_BYTES, //                      @0  node_id
    hex(`
    0000000201000000                  | @24 vcl 1/2000000
    0700000000000000                  | @32 epoch 7
    `),
  ]);
  const vote = { nodeId: NODE_ID, vcl: 0x102000000n, epoch: 7n };
  t.equal(bytes.length, 40);
  t.same(encodeRequestVote(vote), bytes);
  t.same(decodeRequestVote(bytes), vote);
  t.same(decodeRequestVote(Buffer.concat([bytes, hex('aa')])), vote, 'trailing bytes ignored');
  throwsProtocol(t, () => decodeRequestVote(bytes.subarray(0, 39)), 'too-short', /RequestVote: invalid length: expected at least 40 bytes, got 39/);
  t.end();
});

t.test('SafeKeeperRequest: 56-byte header then the WAL', (t) => {
  const header = Buffer.concat([
    NODE_ID_BYTES, //                      @0  sender_id
    hex(`
    0000000100000000                  | @24 begin_lsn 0/1000000
    0500000100000000                  | @32 end_lsn   0/1000005
    0000800000000000                  | @40 restart_lsn 0/800000
    0000000100000000                  | @48 commit_lsn 0/1000000
    `),
  ]);
  const bytes = Buffer.concat([header, hex('0102030405')]);
  const req: SafeKeeperRequest = {
    senderId: NODE_ID,
    beginLsn: 0x1000000n,
    endLsn: 0x1000005n,
    restartLsn: 0x800000n,
    commitLsn: 0x1000000n,
    wal: Uint8Array.from([1, 2, 3, 4, 5]),
  };
  t.equal(header.length, 56);
  t.same(encodeSafeKeeperRequest(req), bytes);
  const dec = decodeSafeKeeperRequest(bytes);
  t.same({ ...dec, wal: Array.from(dec.wal) }, { ...req, wal: [1, 2, 3, 4, 5] });
  t.notOk(isEndOfStream(dec));

  // heartbeat: begin = end, no WAL
  const hb = Buffer.from(header);
  hb.writeBigUInt64LE(0x1000000n, 32);
  const hbDec = decodeSafeKeeperRequest(hb);
  t.equal(hbDec.wal.length, 0);
  t.equal(hbDec.endLsn, hbDec.beginLsn);

  // end of stream: begin 0; the rest is not looked at
  const eos = Buffer.alloc(56 + 3);
  const eosDec = decodeSafeKeeperRequest(eos);
  t.ok(isEndOfStream(eosDec));
  t.equal(eosDec.wal.length, 0);
  t.same(encodeSafeKeeperRequest({ ...req, beginLsn: 0n, endLsn: 0n, wal: new Uint8Array(0) }).subarray(24, 40), Buffer.alloc(16));

  throwsProtocol(t, () => decodeSafeKeeperRequest(header.subarray(0, 55)), 'too-short', /expected at least 56 bytes, got 55/);
  throwsProtocol(t, () => decodeSafeKeeperRequest(Buffer.concat([header, hex('01020304')])), 'wal-length-mismatch', /WAL byte count: expected 5 bytes \(end_lsn - begin_lsn\), got 4 bytes/);
  throwsProtocol(t, () => decodeSafeKeeperRequest(Buffer.concat([header, hex('010203040506')])), 'wal-length-mismatch', /expected 5 bytes .*got 6 bytes/);
  const backwards = Buffer.from(bytes);
  backwards.writeBigUInt64LE(0xfffffen, 32);
  throwsProtocol(t, () => decodeSafeKeeperRequest(backwards), 'end-before-begin', /end_lsn: expected >= begin_lsn 16777216, got 16777214/);
  const huge = Buffer.alloc(56 + 128 * 1024 + 1);
  header.copy(huge);
  huge.writeBigUInt64LE(0x1000000n + 128n * 1024n + 1n, 32);
  throwsProtocol(t, () => decodeSafeKeeperRequest(huge), 'wal-too-large', /expected at most 131072 bytes, got 131073 bytes/);
  // exactly the limit is fine
  const max = huge.subarray(0, 56 + 128 * 1024);
  max.writeBigUInt64LE(0x1000000n + 128n * 1024n, 32);
  t.equal(decodeSafeKeeperRequest(max).wal.length, 128 * 1024);

  throwsProtocol(t, () => encodeSafeKeeperRequest({ ...req, wal: new Uint8Array(4) }), 'wal-length-mismatch', /got 4 bytes/);
  throwsProtocol(t, () => encodeSafeKeeperRequest({ ...req, endLsn: 1n }), 'end-before-begin', /end_lsn/);

  // The header alone (a sender writes the WAL after it without copying): the same bytes and checks.
  t.same(encodeSafeKeeperRequestHeader(req), header);
  throwsProtocol(t, () => encodeSafeKeeperRequestHeader({ ...req, wal: new Uint8Array(4) }), 'wal-length-mismatch', /got 4 bytes/);
  t.end();
});

t.test('SafeKeeperResponse: 40 bytes', (t) => {
  const bytes = hex(`
    0300000000000000                  | @0  epoch 3
    0500000100000000                  | @8  flush_lsn 0/1000005
    feffffffffffffff                  | @16 hs_feedback.ts -2 (i64)
    ffffffffffffffff                  | @24 hs_feedback.xmin u64::MAX
    2a00000000000000                  | @32 hs_feedback.catalog_xmin 42
  `);
  const resp = { epoch: 3n, flushLsn: 0x1000005n, hsFeedback: { ts: -2n, xmin: 0xffffffffffffffffn, catalogXmin: 42n } };
  t.equal(bytes.length, 40);
  t.same(encodeSafeKeeperResponse(resp), bytes);
  t.same(decodeSafeKeeperResponse(bytes), resp);
  t.same(decodeSafeKeeperResponse(Buffer.concat([bytes, hex('00')])), resp, 'trailing bytes ignored');
  throwsProtocol(t, () => decodeSafeKeeperResponse(bytes.subarray(0, 39)), 'too-short', /SafeKeeperResponse: invalid length: expected at least 40 bytes, got 39/);
  throwsProtocol(t, () => encodeSafeKeeperResponse({ ...resp, hsFeedback: { ...resp.hsFeedback, ts: 1n << 63n } }), 'bad-field', /hs_feedback\.ts/);
  t.end();
});
