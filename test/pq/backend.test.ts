// Byte fixtures for the server → client messages. Expected bytes are the
// ones captured from PostgreSQL 15 on the wire (docs/protocol.md §2, §11.1).
import t from 'tap';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  commandComplete,
  copyBothResponse,
  copyData,
  copyDone,
  dataRow,
  emptyQueryResponse,
  errorResponse,
  negotiateProtocolVersion,
  NO_ENCRYPTION,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  rowDescription,
  textField,
  TypeOid,
} from '../../src/pq/backend.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

t.test('start-up messages', async (t) => {
  t.same(NO_ENCRYPTION, hex('4e'));
  t.same(authenticationOk(), hex('52 00000008 00000000'));
  t.same(authenticationCleartextPassword(), hex('52 00000008 00000003'));
  t.same(backendKeyData(1234, 0x01020304), hex('4b 0000000c 000004d2 01020304'));
  t.same(readyForQuery(), hex('5a 00000005 49'));
  t.same(readyForQuery('E'), hex('5a 00000005 45'));
  t.same(parameterStatus('integer_datetimes', 'on'), hex('53 00000019' + ascii('integer_datetimes\0on\0')));
  t.same(negotiateProtocolVersion(0, ['_pq_.x']), hex('76 00000013 00000000 00000001' + ascii('_pq_.x\0')));
});

t.test('ErrorResponse carries S, V, C, M and optional D, H', async (t) => {
  const e = errorResponse({ code: '0A000', message: 'cannot execute SQL commands in WAL sender for physical replication' });
  const body = ascii('SERROR\0VERROR\0C0A000\0Mcannot execute SQL commands in WAL sender for physical replication\0') + '00';
  t.same(e, hex('45' + (4 + body.length / 2).toString(16).padStart(8, '0') + body));
  const f = errorResponse({ severity: 'FATAL', code: '08P01', message: 'm', detail: 'd', hint: 'h' });
  t.same(f.subarray(5), hex(ascii('SFATAL\0VFATAL\0C08P01\0Mm\0Dd\0Hh\0') + '00'));
  const n = noticeResponse({ code: '00000', message: 'hi' });
  t.equal(n[0], 0x4e);
  t.same(n.subarray(5), hex(ascii('SNOTICE\0VNOTICE\0C00000\0Mhi\0') + '00'));
});

t.test('query results match the observed IDENTIFY_SYSTEM bytes', async (t) => {
  const desc = rowDescription([
    textField('systemid'),
    { name: 'timeline', typeOid: TypeOid.int4, typeLen: 4 },
    textField('xlogpos'),
    textField('dbname'),
  ]);
  const expected =
    '54 0000006f 0004' +
    ascii('systemid\0') + '00000000 0000 00000019 ffff ffffffff 0000' +
    ascii('timeline\0') + '00000000 0000 00000017 0004 ffffffff 0000' +
    ascii('xlogpos\0') + '00000000 0000 00000019 ffff ffffffff 0000' +
    ascii('dbname\0') + '00000000 0000 00000019 ffff ffffffff 0000';
  t.same(desc, hex(expected));
  const row = dataRow(['7711737127714501519', '1', '0/15007C8', null]);
  t.same(row, hex('44 00000033 0004 00000013' + ascii('7711737127714501519') + '00000001' + ascii('1') + '00000009' + ascii('0/15007C8') + 'ffffffff'));
  t.same(commandComplete('IDENTIFY_SYSTEM'), hex('43 00000014' + ascii('IDENTIFY_SYSTEM\0')));
  t.same(commandComplete('SHOW'), hex('43 00000009' + ascii('SHOW\0')));
  t.same(emptyQueryResponse(), hex('49 00000004'));
});

t.test('COPY messages', async (t) => {
  t.same(copyBothResponse(), hex('57 00000007 00 0000'));
  t.same(copyData(hex('0102')), hex('64 00000006 0102'));
  t.same(copyData(new Uint8Array(0)), hex('64 00000004'));
  t.same(copyDone(), hex('63 00000004'));
  const big = Buffer.alloc(131097, 7);
  const m = copyData(big);
  t.equal(m.readInt32BE(1), 0x0002001d, 'a full-size XLogData CopyData has length 4 + 131097');
  t.equal(m.length, 5 + 131097);
});
