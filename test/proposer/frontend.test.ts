import t from 'tap';
import {
  BackendMessageError,
  copyData,
  copyDone,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeCopyResponse,
  decodeDataRow,
  decodeErrorFields,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  passwordMessage,
  query,
  sslRequest,
  startupMessage,
  terminate,
} from '../../src/pq/frontend.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const text = (s: string) => Buffer.from(s, 'latin1');

t.test('what a frontend sends', (t) => {
  // pg_receivewal's StartupMessage, as observed on the wire (92 bytes)
  t.same(
    startupMessage({ user: 'postgres', database: 'replication', replication: 'true', application_name: 'pg_receivewal' }),
    Buffer.concat([hex('0000005c 00030000'), text('user\0postgres\0database\0replication\0replication\0true\0application_name\0pg_receivewal\0\0')]),
  );
  t.same(sslRequest(), hex('00000008 04d2162f'));
  t.same(query('IDENTIFY_SYSTEM'), Buffer.concat([hex('51 00000014'), text('IDENTIFY_SYSTEM\0')]));
  t.same(copyData(hex('0102')), hex('64 00000006 0102'));
  t.same(copyDone(), hex('63 00000004'));
  t.same(terminate(), hex('58 00000004'));
  t.same(passwordMessage('pw'), Buffer.concat([hex('70 00000007'), text('pw\0')]));
  t.end();
});

t.test('Authentication', (t) => {
  t.same(decodeAuthentication(hex('00000000')), { kind: 'ok' });
  t.same(decodeAuthentication(hex('00000003')), { kind: 'cleartext-password' });
  t.same(decodeAuthentication(hex('00000005 a1b2c3d4')), { kind: 'md5-password', salt: Uint8Array.from([0xa1, 0xb2, 0xc3, 0xd4]) });
  t.same(decodeAuthentication(Buffer.concat([hex('0000000a'), text('SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0')])), { kind: 'sasl', mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'] });
  t.same(decodeAuthentication(hex('0000000b 6869')), { kind: 'sasl-continue', data: Uint8Array.from([0x68, 0x69]) });
  t.same(decodeAuthentication(hex('00000007 ff')), { kind: 'other', code: 7 });
  t.throws(() => decodeAuthentication(hex('0000')), BackendMessageError);
  t.throws(() => decodeAuthentication(hex('00000005 a1b2')), /malformed Authentication from the server: message too short/);
  t.throws(() => decodeAuthentication(hex('00000000 00')), /1 unexpected bytes after the last field/);
  t.end();
});

t.test('start-up messages', (t) => {
  t.same(decodeParameterStatus(text('server_version\x0015.18 (Debian 15.18-0+deb12u1)\0')), { name: 'server_version', value: '15.18 (Debian 15.18-0+deb12u1)' });
  t.throws(() => decodeParameterStatus(text('server_version\x0015')), /not NUL-terminated/);
  t.same(decodeBackendKeyData(hex('00003039 fffffffe')), { pid: 12345, secret: -2 });
  t.throws(() => decodeBackendKeyData(hex('00003039')), BackendMessageError);
  t.equal(decodeReadyForQuery(hex('49')), 'I');
  t.equal(decodeReadyForQuery(hex('54')), 'T');
  t.equal(decodeReadyForQuery(hex('45')), 'E');
  t.throws(() => decodeReadyForQuery(hex('58')), /unknown transaction status 'X'/);
  t.throws(() => decodeReadyForQuery(hex('4949')), /unexpected bytes/);
  t.end();
});

t.test('ErrorResponse fields', (t) => {
  // as observed from PostgreSQL 15 (docs/protocol.md §2.6)
  const body = text(
    'SERROR\0VERROR\0C58P01\0Mrequested WAL segment 000000010000000000000000 has already been removed\0Fwalsender.c\0L2741\0RWalSndSegmentOpen\0\0',
  );
  t.same(decodeErrorFields(body), {
    S: 'ERROR',
    V: 'ERROR',
    C: '58P01',
    M: 'requested WAL segment 000000010000000000000000 has already been removed',
    F: 'walsender.c',
    L: '2741',
    R: 'WalSndSegmentOpen',
  });
  t.same(decodeErrorFields(hex('00')), {});
  t.throws(() => decodeErrorFields(text('SERROR\0')), /malformed ErrorResponse/);
  t.throws(() => decodeErrorFields(text('SNOTICE'), 'NoticeResponse'), /malformed NoticeResponse/);
  t.end();
});

t.test('query results', (t) => {
  const field = (name: string, oid: string, size: string) => Buffer.concat([text(name + '\0'), hex(`00000000 0000 ${oid} ${size} ffffffff 0000`)]);
  const desc = Buffer.concat([hex('0002'), field('systemid', '00000019', 'ffff'), field('timeline', '00000017', '0004')]);
  t.same(decodeRowDescription(desc), [
    { name: 'systemid', tableOid: 0, column: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
    { name: 'timeline', tableOid: 0, column: 0, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
  ]);
  t.throws(() => decodeRowDescription(desc.subarray(0, desc.length - 1)), BackendMessageError);
  t.same(decodeDataRow(Buffer.concat([hex('0003 00000004'), text('7000'), hex('ffffffff 00000000')])), ['7000', null, '']);
  t.throws(() => decodeDataRow(hex('0001 00000005 6162')), /message too short/);
  t.throws(() => decodeDataRow(hex('0001 fffffffe')), /value length -2/);
  t.equal(decodeCommandComplete(text('IDENTIFY_SYSTEM\0')), 'IDENTIFY_SYSTEM');
  t.end();
});

t.test('CopyBothResponse', (t) => {
  t.same(decodeCopyResponse(hex('00 0000')), { format: 0, columnFormats: [] });
  t.same(decodeCopyResponse(hex('01 0002 0001 0000'), 'CopyOutResponse'), { format: 1, columnFormats: [1, 0] });
  t.throws(() => decodeCopyResponse(hex('00 00')), /malformed CopyBothResponse/);
  t.end();
});
