// The replication command parser: the forms PostgreSQL 15 clients send,
// and PostgreSQL's errors for everything else.
import t from 'tap';
import { parseLsn } from '../../src/lsn.js';
import { isReplicationCommand, parseReplicationCommand, SQL_NOT_SUPPORTED, tryParseReplicationCommand } from '../../src/replication/commands.js';
import { PgError } from '../../src/pq/errors.js';

function err(sql: string): { code: string; message: string } {
  const r = tryParseReplicationCommand(sql);
  if (r.ok) throw new Error(`expected an error for ${JSON.stringify(sql)}, got ${JSON.stringify(r.command, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  return { code: r.error.code, message: r.error.message };
}

const SQL = { code: '0A000', message: SQL_NOT_SUPPORTED };
const SYNTAX = { code: '42601', message: 'syntax error' };

t.test('what clients send', async (t) => {
  t.same(parseReplicationCommand('IDENTIFY_SYSTEM'), { type: 'IDENTIFY_SYSTEM' });
  t.same(parseReplicationCommand('SHOW data_directory_mode'), { type: 'SHOW', name: 'data_directory_mode' });
  t.same(parseReplicationCommand('SHOW wal_segment_size'), { type: 'SHOW', name: 'wal_segment_size' });
  t.same(parseReplicationCommand('TIMELINE_HISTORY 2'), { type: 'TIMELINE_HISTORY', timeline: 2 });
  t.same(parseReplicationCommand('READ_REPLICATION_SLOT myslot'), { type: 'READ_REPLICATION_SLOT', slotName: 'myslot' });
  t.same(parseReplicationCommand('START_REPLICATION 0/1000000 TIMELINE 1'), {
    type: 'START_REPLICATION',
    kind: 'physical',
    slotName: null,
    startLsn: 0x1000000n,
    stopLsn: null,
    timeline: 1,
  });
  t.same(parseReplicationCommand('START_REPLICATION SLOT "myslot" 0/7000000 TIMELINE 1'), {
    type: 'START_REPLICATION',
    kind: 'physical',
    slotName: 'myslot',
    startLsn: 0x7000000n,
    stopLsn: null,
    timeline: 1,
  });
  t.same(parseReplicationCommand('CREATE_REPLICATION_SLOT "sb2x" PHYSICAL'), {
    type: 'CREATE_REPLICATION_SLOT',
    slotName: 'sb2x',
    temporary: false,
    kind: 'physical',
    plugin: null,
    options: [],
  });
  t.same(parseReplicationCommand('CREATE_REPLICATION_SLOT "pg_walreceiver_0" TEMPORARY PHYSICAL (RESERVE_WAL)'), {
    type: 'CREATE_REPLICATION_SLOT',
    slotName: 'pg_walreceiver_0',
    temporary: true,
    kind: 'physical',
    plugin: null,
    options: [{ name: 'reserve_wal', value: null }],
  });
  t.same(parseReplicationCommand('DROP_REPLICATION_SLOT "sb2x"'), { type: 'DROP_REPLICATION_SLOT', slotName: 'sb2x', wait: false });
  t.same(parseReplicationCommand('DROP_REPLICATION_SLOT sb2x WAIT'), { type: 'DROP_REPLICATION_SLOT', slotName: 'sb2x', wait: true });
});

t.test('the full START_REPLICATION grammar', async (t) => {
  const start = (sql: string) => {
    const c = parseReplicationCommand(sql);
    if (c.type !== 'START_REPLICATION' || c.kind !== 'physical') throw new Error('not physical START_REPLICATION');
    return c;
  };
  t.same(start('START_REPLICATION 0/0'), { type: 'START_REPLICATION', kind: 'physical', slotName: null, startLsn: 0n, stopLsn: null, timeline: null });
  t.equal(start('START_REPLICATION PHYSICAL 1/F').startLsn, parseLsn('1/F'));
  t.equal(start('START_REPLICATION SLOT s PHYSICAL 0/10 TIMELINE 7').timeline, 7);
  t.equal(start('START_REPLICATION ffffffff/FFFFFFFF').startLsn, 0xffff_ffff_ffff_ffffn);
  t.equal(start('START_REPLICATION 0000000A/0000000B').startLsn, parseLsn('A/B'), 'zero-padded and mixed case');
  // Walkeeper extension: a stop position after the start.
  const s = start('START_REPLICATION PHYSICAL 0/1000000 0/2000000 TIMELINE 1');
  t.equal(s.stopLsn, 0x2000000n);
  t.equal(s.timeline, 1);
  t.equal(start('START_REPLICATION 0/1 0/2').stopLsn, 2n);
  // Logical replication is parsed (and refused by the handler).
  t.same(parseReplicationCommand("START_REPLICATION SLOT sub LOGICAL 0/0 (proto_version '1', publication_names 'p')"), {
    type: 'START_REPLICATION',
    kind: 'logical',
    slotName: 'sub',
    startLsn: 0n,
    options: [
      { name: 'proto_version', value: '1' },
      { name: 'publication_names', value: 'p' },
    ],
  });
});

t.test('identifiers: bare ones are folded, quoted ones kept', async (t) => {
  const slot = (sql: string): string | null => {
    const c = parseReplicationCommand(sql);
    return c.type === 'START_REPLICATION' ? c.slotName : null;
  };
  t.equal(slot('START_REPLICATION SLOT MySlot 0/0'), 'myslot');
  t.equal(slot('START_REPLICATION SLOT "MySlot" 0/0'), 'MySlot');
  t.equal(slot('START_REPLICATION SLOT "with space" 0/0'), 'with space');
  t.equal(slot('START_REPLICATION SLOT "ÄÖü" 0/0'), 'ÄÖü', 'non-ASCII kept verbatim');
  t.equal(slot('START_REPLICATION SLOT Ärger 0/0'), 'Ärger', 'only ASCII letters are folded');
  t.equal(slot('START_REPLICATION SLOT a$1_ 0/0'), 'a$1_');
  t.equal(slot(`START_REPLICATION SLOT ${'x'.repeat(70)} 0/0`), 'x'.repeat(63), 'truncated to 63 bytes');
  t.equal(slot(`START_REPLICATION SLOT "${'é'.repeat(40)}" 0/0`), 'é'.repeat(31), 'truncated on a character boundary');
  t.same(parseReplicationCommand('SHOW "WAL_SEGMENT_SIZE"'), { type: 'SHOW', name: 'WAL_SEGMENT_SIZE' });
  t.same(parseReplicationCommand('SHOW a.b.c'), { type: 'SHOW', name: 'a.b.c' });
  t.same(parseReplicationCommand('SHOW wal_segment_size;'), { type: 'SHOW', name: 'wal_segment_size' });
  // A lower-case word is an identifier, never a keyword.
  t.same(parseReplicationCommand('READ_REPLICATION_SLOT slot'), { type: 'READ_REPLICATION_SLOT', slotName: 'slot' });
  t.same(err('READ_REPLICATION_SLOT SLOT'), SYNTAX, 'an upper-case keyword is not an identifier');
});

t.test('one optional trailing semicolon, any whitespace', async (t) => {
  t.same(parseReplicationCommand('IDENTIFY_SYSTEM;'), { type: 'IDENTIFY_SYSTEM' });
  t.same(parseReplicationCommand(' \t\r\n\fIDENTIFY_SYSTEM \v; \n'), { type: 'IDENTIFY_SYSTEM' });
  t.same(parseReplicationCommand('START_REPLICATION\n0/1000000\tTIMELINE\r1;'), {
    type: 'START_REPLICATION',
    kind: 'physical',
    slotName: null,
    startLsn: 0x1000000n,
    stopLsn: null,
    timeline: 1,
  });
  t.same(err('IDENTIFY_SYSTEM;;'), SYNTAX);
  t.same(err('IDENTIFY_SYSTEM extra'), SYNTAX);
  t.same(err('IDENTIFY_SYSTEM; IDENTIFY_SYSTEM'), SYNTAX);
});

t.test('SQL and unknown commands: 0A000, as on a physical walsender', async (t) => {
  for (const sql of [
    'SELECT 1',
    'select 1',
    'BOGUS',
    'identify_system',
    'start_replication 0/0',
    'Identify_System',
    'IDENTIFY_SYSTEMX',
    'START_WAL_PUSH',
    '',
    '   ',
    ';',
    '"IDENTIFY_SYSTEM"',
    "'x'",
    '0/0',
    '42',
    'TIMELINE 1',
    'SLOT x',
  ]) {
    t.same(err(sql), SQL, JSON.stringify(sql));
    t.equal(isReplicationCommand(sql), false, JSON.stringify(sql));
  }
  t.equal(isReplicationCommand('IDENTIFY_SYSTEM'), true);
  t.equal(isReplicationCommand('START_REPLICATION garbage'), true, 'decided by the first token');
});

t.test('syntax errors: 42601 with PostgreSQL messages', async (t) => {
  t.same(err('START_REPLICATION 0/0 TIMELINE 0'), { code: '42601', message: 'invalid timeline 0' });
  t.same(err('TIMELINE_HISTORY 0'), { code: '42601', message: 'invalid timeline 0' });
  t.same(err('START_REPLICATION'), SYNTAX);
  t.same(err('START_REPLICATION 0/XYZ'), SYNTAX, 'not an LSN: 0, "/", XYZ');
  t.same(err('START_REPLICATION 0/'), SYNTAX);
  t.same(err('START_REPLICATION 12345'), SYNTAX);
  t.same(err('START_REPLICATION 0/0 TIMELINE'), SYNTAX);
  t.same(err('START_REPLICATION 0/0 TIMELINE -1'), SYNTAX);
  t.same(err('START_REPLICATION 0/0 TIMELINE x'), SYNTAX);
  t.same(err('START_REPLICATION 0/0 TIMELINE 99999999999'), SYNTAX);
  t.same(err('START_REPLICATION 123456789/0'), { code: '42601', message: 'invalid streaming start location' });
  t.same(err('START_REPLICATION 0/123456789'), { code: '42601', message: 'invalid streaming start location' });
  t.same(err('START_REPLICATION SLOT 0/0'), SYNTAX);
  t.same(err('START_REPLICATION SLOT "unterminated 0/0'), { code: '42601', message: 'unterminated quoted string' });
  t.same(err('"unterminated'), { code: '42601', message: 'unterminated quoted string' }, 'a scanner error on the first token wins');
  t.same(err('START_REPLICATION 0/0 TIMELINE 1 0/0'), SYNTAX);
  t.same(err('start_replication 0/0 TIMELINE 0'), SQL);
  t.same(err('TIMELINE_HISTORY'), SYNTAX);
  t.same(err('TIMELINE_HISTORY x'), SYNTAX);
  t.same(err('SHOW'), SYNTAX);
  t.same(err('SHOW 1'), SYNTAX);
  t.same(err('SHOW a.'), SYNTAX);
  t.same(err('READ_REPLICATION_SLOT'), SYNTAX);
  t.same(err('CREATE_REPLICATION_SLOT x'), SYNTAX);
  t.same(err('CREATE_REPLICATION_SLOT x LOGICAL'), SYNTAX);
  t.same(err('CREATE_REPLICATION_SLOT x PHYSICAL (RESERVE_WAL'), SYNTAX);
  t.same(err('DROP_REPLICATION_SLOT'), SYNTAX);
  t.same(err('DROP_REPLICATION_SLOT x NOWAIT'), SYNTAX);
  t.same(err('BASE_BACKUP LABEL x'), SYNTAX);
  const thrown = t.throws(() => parseReplicationCommand('SHOW')) as unknown;
  t.ok(thrown instanceof PgError);
});

t.test('slot options: parenthesised and the old words', async (t) => {
  const opts = (sql: string) => {
    const c = parseReplicationCommand(sql);
    return c.type === 'CREATE_REPLICATION_SLOT' ? c.options : null;
  };
  t.same(opts('CREATE_REPLICATION_SLOT s PHYSICAL RESERVE_WAL'), [{ name: 'reserve_wal', value: 'true' }]);
  t.same(opts("CREATE_REPLICATION_SLOT s PHYSICAL (RESERVE_WAL 'false', two_phase 1, snapshot nothing)"), [
    { name: 'reserve_wal', value: 'false' },
    { name: 'two_phase', value: 1 },
    { name: 'snapshot', value: 'nothing' },
  ]);
  t.same(opts("CREATE_REPLICATION_SLOT s LOGICAL pgoutput (SNAPSHOT 'it''s')"), [{ name: 'snapshot', value: "it's" }]);
  t.same(opts('CREATE_REPLICATION_SLOT s LOGICAL pgoutput EXPORT_SNAPSHOT TWO_PHASE'), [
    { name: 'snapshot', value: 'export' },
    { name: 'two_phase', value: 'true' },
  ]);
  t.same(parseReplicationCommand('BASE_BACKUP'), { type: 'BASE_BACKUP', options: [] });
  t.same(parseReplicationCommand("BASE_BACKUP (LABEL 'x', PROGRESS)"), {
    type: 'BASE_BACKUP',
    options: [
      { name: 'label', value: 'x' },
      { name: 'progress', value: null },
    ],
  });
});
