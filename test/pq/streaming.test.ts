// Byte fixtures: every message the replication side sends or reads,
// compared with bytes observed between real PostgreSQL 15 peers.
import t from 'tap';
import { parseLsn } from '../../src/lsn.js';
import { handleReplicationQuery } from '../../src/replication/handler.js';
import {
  allocXLogData,
  decodeClientCopyData,
  decodeServerCopyData,
  encodeKeepalive,
  encodeLegacyHsFeedback,
  encodePgHsFeedback,
  encodeStatusUpdate,
  encodeXLogData,
  feedbackFromLegacy,
  feedbackFromPg,
  fullXid,
  keepaliveMessage,
  pgNow,
  pgTimeToDate,
  dateToPgTime,
  StreamMessageError,
  XLOGDATA_WAL_OFFSET,
} from '../../src/pq/streaming.js';
import {
  commandComplete,
  copyBothResponse,
  copyData,
  copyDone,
  dataRow,
  errorResponse,
  int8Field,
  readyForQuery,
  rowDescription,
  textField,
} from '../../src/pq/backend.js';
import { U64_MAX } from '../../src/protocol/layout.js';
import { FakeConn, fx, MemWalSource } from '../replication/helpers.js';

// Observed on the wire from PostgreSQL 15.18 (docs/protocol.md §11.1, §11.4).
const IDENTIFY_T =
  '54 0000006f 0004' +
  ' "systemid\\0" 00000000 0000 00000019 ffff ffffffff 0000' +
  ' "timeline\\0" 00000000 0000 00000017 0004 ffffffff 0000' +
  ' "xlogpos\\0" 00000000 0000 00000019 ffff ffffffff 0000' +
  ' "dbname\\0" 00000000 0000 00000019 ffff ffffffff 0000';
const IDENTIFY_D = '44 00000033 0004 00000013 "7711737127714501519" 00000001 "1" 00000009 "0/15007C8" ffffffff';
const IDENTIFY_C = '43 00000014 "IDENTIFY_SYSTEM\\0"';
const Z_IDLE = '5a 00000005 49';
const SHOW_SEGSIZE_T = '54 00000029 0001 "wal_segment_size\\0" 00000000 0000 00000019 ffff ffffffff 0000';
const SHOW_SEGSIZE_D = '44 0000000e 0001 00000004 "16MB"';
const SHOW_C = '43 00000009 "SHOW\\0"';
const READ_SLOT_T =
  '54 0000005e 0003' +
  ' "slot_type\\0" 00000000 0000 00000019 ffff ffffffff 0000' +
  ' "restart_lsn\\0" 00000000 0000 00000019 ffff ffffffff 0000' +
  ' "restart_tli\\0" 00000000 0000 00000014 0008 ffffffff 0000';
const READ_SLOT_D_PHYSICAL = '44 0000001a 0003 00000008 "physical" ffffffff ffffffff';
const HISTORY_T =
  '54 0000003b 0002 "filename\\0" 00000000 0000 00000019 ffff 00000000 0000 "content\\0" 00000000 0000 00000019 ffff 00000000 0000';
const HISTORY_CONTENT = '1\t0/F92A808\tno recovery target specified\n';
const HISTORY_D = '44 00000047 0002 00000010 "00000002.history" 00000029 "1\\t0/F92A808\\tno recovery target specified\\n"';
const NEXT_TLI_T =
  '54 00000045 0002 "next_tli\\0" 00000000 0000 00000014 0008 ffffffff 0000 "next_tli_startpos\\0" 00000000 0000 00000019 ffff ffffffff 0000';

t.test('fixture helper', async (t) => {
  t.same(fx('5a 00000005 49'), Buffer.from([0x5a, 0, 0, 0, 5, 0x49]));
  t.same(fx('"a\\0b" 00'), Buffer.from([0x61, 0, 0x62, 0]));
  t.throws(() => fx('5'));
});

t.test('result-set builders match the observed bytes', async (t) => {
  t.same(
    rowDescription([textField('systemid'), { name: 'timeline', typeOid: 23, typeLen: 4, typeMod: -1 }, textField('xlogpos'), textField('dbname')]),
    fx(IDENTIFY_T),
  );
  t.same(dataRow(['7711737127714501519', '1', '0/15007C8', null]), fx(IDENTIFY_D));
  t.same(commandComplete('IDENTIFY_SYSTEM'), fx(IDENTIFY_C));
  t.same(readyForQuery(), fx(Z_IDLE));
  t.same(rowDescription([textField('wal_segment_size')]), fx(SHOW_SEGSIZE_T));
  t.same(dataRow(['16MB']), fx(SHOW_SEGSIZE_D));
  t.same(commandComplete('SHOW'), fx(SHOW_C));
  t.same(rowDescription([textField('slot_type'), textField('restart_lsn'), int8Field('restart_tli')]), fx(READ_SLOT_T));
  t.same(dataRow([null, null, null]), fx('44 00000012 0003 ffffffff ffffffff ffffffff'));
  t.same(dataRow(['physical', null, null]), fx(READ_SLOT_D_PHYSICAL));
  t.same(rowDescription([textField('filename', 0), textField('content', 0)]), fx(HISTORY_T));
  t.same(dataRow(['00000002.history', Buffer.from(HISTORY_CONTENT)]), fx(HISTORY_D));
  t.same(rowDescription([int8Field('next_tli'), textField('next_tli_startpos')]), fx(NEXT_TLI_T));
});

t.test('COPY BOTH framing and the ends of a stream', async (t) => {
  t.same(copyBothResponse(), fx('57 00000007 00 0000'));
  t.same(copyDone(), fx('63 00000004'));
  t.same(commandComplete('START_STREAMING'), fx('43 00000014 "START_STREAMING\\0"'));
  t.same(commandComplete('START_REPLICATION'), fx('43 00000016 "START_REPLICATION\\0"'));
  t.same(commandComplete('COPY 0'), fx('43 0000000b 434f50592030 00'));
  t.same(copyData(Buffer.from('ab')), fx('64 00000006 "ab"'));
});

t.test('ErrorResponse carries S, V, C, M (and D)', async (t) => {
  t.same(
    errorResponse({ code: '58P01', message: 'requested WAL segment 000000010000000000000000 has already been removed' }),
    fx('45 00000063 53 "ERROR\\0" 56 "ERROR\\0" 43 "58P01\\0" 4d "requested WAL segment 000000010000000000000000 has already been removed\\0" 00'),
  );
  const withDetail = errorResponse({ severity: 'FATAL', code: '08P01', message: 'm', detail: 'd' });
  t.same(withDetail, fx('45 00000020 53 "FATAL\\0" 56 "FATAL\\0" 43 "08P01\\0" 4d "m\\0" 44 "d\\0" 00'));
});

t.test("keepalive 'k' is exactly 18 bytes", async (t) => {
  const k = encodeKeepalive(parseLsn('0/73F8150'), 0x00030404e8482187n, false);
  t.equal(k.length, 18);
  t.same(k, fx('6b 00000000073f8150 00030404e8482187 00'));
  t.same(encodeKeepalive(1n, 2n, true).subarray(17), fx('01'));
  const msg = keepaliveMessage(parseLsn('0/73F8150'), 0x00030404e8482187n, true);
  t.same(msg, fx('64 00000016 6b 00000000073f8150 00030404e8482187 01'));
  t.same(decodeServerCopyData(k), { kind: 'keepalive', msg: { walEnd: parseLsn('0/73F8150'), sendTime: 0x00030404e8482187n, replyRequested: false } });
  t.throws(() => decodeServerCopyData(Buffer.concat([k, Buffer.from([0])])), StreamMessageError);
});

t.test("XLogData 'w': 25-byte header, in one CopyData", async (t) => {
  const wal = fx('10d1 0200 01000000 0000000100000000');
  const full = allocXLogData(parseLsn('0/1000000'), parseLsn('0/15007C8'), 0x00030404e8482187n, wal.length);
  wal.copy(full, XLOGDATA_WAL_OFFSET);
  t.same(full, fx('64 0000002d 77 0000000001000000 00000000015007c8 00030404e8482187 10d1 0200 01000000 0000000100000000'));
  // A full-size message: CopyData length 0x0002001D = 4 + 25 + 131072.
  const big = allocXLogData(parseLsn('0/1000000'), parseLsn('0/15007C8'), 0n, 131072);
  t.same(big.subarray(0, 6), fx('64 0002001d 77'));
  const payload = encodeXLogData(parseLsn('0/F980210'), 5n, 6n, Buffer.alloc(104));
  t.equal(payload.length, 25 + 104);
  const d = decodeServerCopyData(payload);
  t.equal(d.kind, 'xlogdata');
  if (d.kind === 'xlogdata') {
    t.equal(d.msg.dataStart, parseLsn('0/F980210'));
    t.equal(d.msg.walEnd, 5n);
    t.equal(d.msg.wal.length, 104);
  }
  t.throws(() => decodeServerCopyData(Buffer.from([0x77, 1, 2])), /streaming header too small: 3/);
  t.throws(() => decodeServerCopyData(Buffer.from('x')), /unrecognized streaming header: "x"/);
});

t.test("standby status update 'r' as the standby sends it", async (t) => {
  const observed = fx('72 00000000073f8150 00000000073f8150 00000000073f8150 00030404e8481fc7 01');
  const m = decodeClientCopyData(observed);
  t.same(m, {
    kind: 'status',
    msg: { writeLsn: 0x73f8150n, flushLsn: 0x73f8150n, applyLsn: 0x73f8150n, clientTime: 0x00030404e8481fc7n, replyRequested: true },
  });
  if (m.kind === 'status') t.same(encodeStatusUpdate(m.msg), observed);
  // pg_receivewal without a slot: flush = 0 means "not reported".
  const r = decodeClientCopyData(encodeStatusUpdate({ writeLsn: 0x1000000n, flushLsn: 0n, applyLsn: 0n, clientTime: 1n, replyRequested: false }));
  t.equal(r.kind === 'status' && r.msg.flushLsn, 0n);
  t.throws(() => decodeClientCopyData(observed.subarray(0, 33)), /too short/);
});

t.test("hot standby feedback 'h' and the 24-byte form", async (t) => {
  const observed = fx('68 00030404e5f99721 000002e0 00000000 00000000 00000000');
  const m = decodeClientCopyData(observed);
  t.same(m, { kind: 'hs', msg: { clientTime: 0x00030404e5f99721n, xmin: 736, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 } });
  if (m.kind !== 'hs') return;
  t.same(encodePgHsFeedback(m.msg), observed);
  // xmin with epoch → full 64-bit xid; catalog_xmin 0 = none.
  t.same(feedbackFromPg(m.msg), { ts: 0x00030404e5f99721n, xmin: 736n, catalogXmin: U64_MAX });
  t.equal(fullXid(5, 2), (2n << 32n) | 5n);
  t.equal(fullXid(0xffffffff, 0xffffffff), 0xffff_ffff_ffff_ffffn);
  t.equal(fullXid(0, 3), U64_MAX);
  t.equal(fullXid(2, 3), U64_MAX, 'the frozen xid holds nothing back');

  // The 2021 feedback: ts i64, xmin u64, catalog_xmin u64, big-endian, no tag byte.
  const legacy = fx('00030404e5f99721 00000001000002e0 0000000000000000');
  t.equal(legacy.length, 24);
  const l = decodeClientCopyData(legacy);
  t.same(l, { kind: 'legacy-hs', msg: { ts: 0x00030404e5f99721n, xmin: (1n << 32n) | 736n, catalogXmin: 0n } });
  if (l.kind === 'legacy-hs') {
    t.same(encodeLegacyHsFeedback(l.msg), legacy);
    t.same(feedbackFromLegacy(l.msg), { ts: 0x00030404e5f99721n, xmin: (1n << 32n) | 736n, catalogXmin: U64_MAX });
  }
  // A 24-byte payload is the legacy form even if it starts with 'r' or 'h'.
  t.equal(decodeClientCopyData(Buffer.concat([Buffer.from('r'), Buffer.alloc(23)])).kind, 'legacy-hs');
  t.throws(() => decodeClientCopyData(Buffer.from('z')), /unexpected message type "z"/);
  t.throws(() => decodeClientCopyData(Buffer.alloc(0)), /unexpected message type/);
});

t.test('PostgreSQL timestamps', async (t) => {
  t.equal(dateToPgTime(new Date('2000-01-01T00:00:00Z')), 0n);
  t.equal(pgTimeToDate(86_400_000_000n).toISOString(), '2000-01-02T00:00:00.000Z');
  const now = pgNow();
  const wall = dateToPgTime(new Date());
  t.ok(now - wall < 50_000n && wall - now < 50_000n, 'pgNow agrees with the wall clock');
  // The observed keepalive time decodes to a date in 2025-2026.
  t.match(pgTimeToDate(0x00030404e8482187n).toISOString(), /^202[5-6]-/);
});

t.test('whole command results, as a client sees them', async (t) => {
  const source = new MemWalSource({ commit: parseLsn('0/15007C8'), walSegSize: 16 << 20, pgTimeline: 2, history: { 2: HISTORY_CONTENT } });
  const run = async (sql: string, params: Record<string, string> = {}): Promise<Buffer> => {
    const conn = new FakeConn(params);
    t.equal(await handleReplicationQuery(sql, conn, source), 'ready', sql);
    return conn.output;
  };
  const ident = new MemWalSource({ commit: parseLsn('0/15007C8') });
  const conn = new FakeConn();
  await handleReplicationQuery('IDENTIFY_SYSTEM', conn, ident);
  t.same(conn.output, fx(IDENTIFY_T + IDENTIFY_D + IDENTIFY_C + Z_IDLE), 'IDENTIFY_SYSTEM T D C Z');

  t.same(await run('SHOW wal_segment_size'), fx(SHOW_SEGSIZE_T + SHOW_SEGSIZE_D + SHOW_C + Z_IDLE), 'SHOW wal_segment_size');
  t.same(
    await run('SHOW data_directory_mode'),
    fx('54 0000002c 0001 "data_directory_mode\\0" 00000000 0000 00000019 ffff ffffffff 0000 44 0000000e 0001 00000004 "0700"' + SHOW_C + Z_IDLE),
  );
  t.same(await run('READ_REPLICATION_SLOT myslot'), fx(READ_SLOT_T + READ_SLOT_D_PHYSICAL + '43 0000001a "READ_REPLICATION_SLOT\\0"' + Z_IDLE));
  t.same(await run('TIMELINE_HISTORY 2'), fx(HISTORY_T + HISTORY_D + '43 00000015 "TIMELINE_HISTORY\\0"' + Z_IDLE));
  t.same(await run('DROP_REPLICATION_SLOT "sb2x"'), fx('43 0000001a "DROP_REPLICATION_SLOT\\0"' + Z_IDLE));
});
