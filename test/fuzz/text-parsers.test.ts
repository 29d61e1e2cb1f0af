// The text decoders against generated input: the replication command
// grammar, libpq connection strings and URIs, LSNs, --remote-storage
// locations, timeline history files. Valid text parses to what it was made from;
// arbitrary and mutated text gives the parser's typed error (PgError,
// ConnStringError, ArchiveLocationError, HistoryParseError, LsnError),
// nothing else.
import t from 'tap';
import { deepStrictEqual } from 'node:assert/strict';
import fc from 'fast-check';
import { ArchiveLocationError, parseArchiveLocation } from '../../src/archive/location.js';
import { formatLsn, LsnError, parseLsn } from '../../src/lsn.js';
import { PgError } from '../../src/pq/errors.js';
import { ConnStringError, parseConnString, resolveConnString } from '../../src/proposer/connstr.js';
import { parseReplicationCommand, type ReplicationCommand } from '../../src/replication/commands.js';
import { HistoryParseError, parseHistory } from '../../src/wal/history.js';
import { announceFuzz, checkProperty, decodesOrRefuses } from '../helpers/fuzz.js';
import { u64 } from './arbitraries.js';

announceFuzz(t);

/** Text with a few edits: characters replaced, inserted or removed. */
function mutatedText(valid: fc.Arbitrary<string>, alphabet: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit = fc.tuple(fc.nat(), fc.constantFrom('replace', 'insert', 'delete'), alphabet).map(([at, kind, ch]) => (s: string) => {
    const i = s.length === 0 ? 0 : at % s.length;
    if (kind === 'insert') return s.slice(0, i) + ch + s.slice(i);
    if (kind === 'delete') return s.slice(0, i) + s.slice(i + 1);
    return s.slice(0, i) + ch + s.slice(i + 1);
  });
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([s, es]) => es.reduce((acc, e) => e(acc), s));
}

/** Text parsers may copy their input a few times, never more. */
const TEXT_ALLOC_BOUND = 4096;

const hostileText = (valid: fc.Arbitrary<string>, alphabet: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: alphabet, maxLength: 60 }), mutatedText(valid, alphabet));

// ---- replication commands ----

const space = fc.constantFrom(' ', '  ', '\t', '\n', ' \r\n ');
/** A quoted identifier (verbatim up to 63 bytes, no '"' inside) or a bare lower-case one. */
const identifier = fc.oneof(
  fc.stringMatching(/^[a-z_][a-z0-9_$]{0,20}$/).map((v) => ({ v, text: v })),
  fc.string({ unit: fc.constantFrom('a', 'B', ' ', '.', "'", 'é', '0'), minLength: 1, maxLength: 20 }).map((v) => ({ v, text: `"${v}"` })),
);
const timeline = fc.integer({ min: 1, max: 0xffffffff });
const lsn = u64;
const lsnText = (l: bigint): string => formatLsn(l);

const commandText: fc.Arbitrary<{ cmd: ReplicationCommand; words: string[] }> = fc.oneof(
  fc.constant({ cmd: { type: 'IDENTIFY_SYSTEM' } as ReplicationCommand, words: ['IDENTIFY_SYSTEM'] as string[] }),
  fc.array(identifier, { minLength: 1, maxLength: 3 }).map((parts) => ({
    cmd: { type: 'SHOW', name: parts.map((p) => p.v).join('.') } as ReplicationCommand,
    words: ['SHOW', parts.map((p) => p.text).join('.')],
  })),
  identifier.map((id) => ({ cmd: { type: 'READ_REPLICATION_SLOT', slotName: id.v } as ReplicationCommand, words: ['READ_REPLICATION_SLOT', id.text] })),
  timeline.map((n) => ({ cmd: { type: 'TIMELINE_HISTORY', timeline: n } as ReplicationCommand, words: ['TIMELINE_HISTORY', String(n)] })),
  fc
    .record({ slot: fc.option(identifier), physical: fc.boolean(), start: lsn, stop: fc.option(lsn), tli: fc.option(timeline) })
    .map(({ slot, physical, start, stop, tli }) => ({
      cmd: { type: 'START_REPLICATION', kind: 'physical', slotName: slot?.v ?? null, startLsn: start, stopLsn: stop, timeline: tli } as ReplicationCommand,
      words: [
        'START_REPLICATION',
        ...(slot ? ['SLOT', slot.text] : []),
        ...(physical ? ['PHYSICAL'] : []),
        lsnText(start),
        ...(stop !== null ? [lsnText(stop)] : []),
        ...(tli !== null ? ['TIMELINE', String(tli)] : []),
      ],
    })),
  fc.tuple(identifier, fc.boolean()).map(([id, wait]) => ({
    cmd: { type: 'DROP_REPLICATION_SLOT', slotName: id.v, wait } as ReplicationCommand,
    words: ['DROP_REPLICATION_SLOT', id.text, ...(wait ? ['WAIT'] : [])],
  })),
  fc.tuple(identifier, fc.boolean(), fc.boolean()).map(([id, temporary, reserve]) => ({
    cmd: { type: 'CREATE_REPLICATION_SLOT', slotName: id.v, temporary, kind: 'physical', plugin: null, options: reserve ? [{ name: 'reserve_wal', value: 'true' }] : [] } as ReplicationCommand,
    words: ['CREATE_REPLICATION_SLOT', id.text, ...(temporary ? ['TEMPORARY'] : []), 'PHYSICAL', ...(reserve ? ['RESERVE_WAL'] : [])],
  })),
);
const commandString = fc
  .tuple(commandText, fc.array(space, { minLength: 12, maxLength: 12 }), fc.boolean())
  .map(([c, gaps, semi]) => ({ cmd: c.cmd, text: gaps[0].trimStart() + c.words.map((w, i) => w + gaps[i + 1]).join('') + (semi ? ';' : '') }));
const grammarAlphabet = fc.constantFrom(' ', '"', "'", '/', ';', '(', ')', ',', '.', 'A', 'F', '0', '9', 'x', '_', 'S', 'T', 'é', '\0');

t.test('replication commands: parse(format(cmd)) = cmd; anything else is a PgError', async (t) => {
  checkProperty(
    t,
    'round trip',
    fc.property(commandString, ({ cmd, text }) => deepStrictEqual(parseReplicationCommand(text), cmd)),
  );
  checkProperty(
    t,
    'arbitrary and mutated commands',
    fc.property(hostileText(commandString.map((c) => c.text), grammarAlphabet), (s) => decodesOrRefuses(() => parseReplicationCommand(s), [PgError], TEXT_ALLOC_BOUND)),
  );
});

// ---- connection strings ----

const CONN_KEYS = ['host', 'port', 'user', 'dbname', 'password', 'application_name', 'options', 'connect_timeout', 'sslmode', 'target_session_attrs'] as const;
const connValue = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', "'", '\\', '=', '/', '@', ':', '?', '&', '%', 'é', '-'), maxLength: 16 });
const connPairs = fc.uniqueArray(fc.tuple(fc.constantFrom(...CONN_KEYS), connValue), { selector: ([k]) => k, maxLength: 6 });
const quote = (v: string): string => `'${v.replace(/[\\']/g, (c) => '\\' + c)}'`;
const connAlphabet = fc.constantFrom(' ', '=', "'", '\\', '%', '@', ':', '/', '?', '&', '[', ']', 'h', 'p', '0', 'é');

t.test('connection strings: key=value and URIs parse to what they were made from; bad ones are a ConnStringError', async (t) => {
  checkProperty(
    t,
    "key='value' pairs",
    fc.property(connPairs, space, (pairs, sep) => deepStrictEqual(parseConnString(pairs.map(([k, v]) => `${k}=${quote(v)}`).join(sep)), Object.fromEntries(pairs))),
  );
  const word = fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '_', ' ', '@', ':', '/', '%', 'é', '?', '#'), minLength: 1, maxLength: 12 });
  checkProperty(
    t,
    'postgres:// URIs with percent-encoded parts',
    fc.property(word, word, fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), fc.integer({ min: 1, max: 65535 }), word, (user, password, host, port, db) => {
      const e = encodeURIComponent;
      deepStrictEqual(parseConnString(`postgres://${e(user)}:${e(password)}@${host}:${port}/${e(db)}?sslmode=disable`), {
        user,
        password,
        host,
        port: String(port),
        dbname: db,
        sslmode: 'disable',
      });
    }),
  );
  const validConn = fc.oneof(
    connPairs.map((ps) => ps.map(([k, v]) => `${k}=${quote(v)}`).join(' ')),
    fc.tuple(connValue, connValue).map(([u, d]) => `postgresql://${u}@h:5432/${d}`),
  );
  checkProperty(t, 'arbitrary and mutated strings', fc.property(hostileText(validConn, connAlphabet), (s) => decodesOrRefuses(() => parseConnString(s), [ConnStringError], TEXT_ALLOC_BOUND)));
  checkProperty(
    t,
    'resolved to a target: the same strings',
    fc.property(hostileText(validConn, connAlphabet), (s) => decodesOrRefuses(() => resolveConnString(s, { PGUSER: 'u' }), [ConnStringError], TEXT_ALLOC_BOUND)),
  );
});

// ---- LSNs ----

t.test('LSNs: parseLsn(formatLsn(x)) = x; bad text is an LsnError', async (t) => {
  checkProperty(t, 'round trip', fc.property(u64, (l) => deepStrictEqual(parseLsn(formatLsn(l)), l)));
  const lsnAlphabet = fc.constantFrom('0', '9', 'A', 'f', 'g', '/', ' ', 'x', '-', '+');
  checkProperty(t, 'arbitrary and mutated text', fc.property(hostileText(u64.map(formatLsn), lsnAlphabet), (s) => decodesOrRefuses(() => parseLsn(s), [LsnError], TEXT_ALLOC_BOUND)));
});

// ---- remote storage locations ----

const bucket = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]$/).filter((b) => !b.includes('..'));
const prefixPart = fc.stringMatching(/^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,10}$/).filter((p) => p !== '.' && p !== '..');
const dirPart = fc.stringMatching(/^[a-zA-Z0-9_-]{1,10}$/);
const locationAlphabet = fc.constantFrom(':', '/', '%', '.', '?', '#', '@', 's', '3', 'f', 'é', ' ');

t.test('remote storage locations: s3:// and file:// parse to their parts; bad ones are an ArchiveLocationError', async (t) => {
  checkProperty(
    t,
    's3://BUCKET[/PREFIX]',
    fc.property(bucket, fc.array(prefixPart, { maxLength: 3 }), fc.boolean(), (b, parts, slash) => {
      deepStrictEqual(parseArchiveLocation(`s3://${b}${parts.length ? '/' + parts.join('/') : ''}${slash ? '/' : ''}`), { kind: 's3', bucket: b, prefix: parts.join('/') });
    }),
  );
  checkProperty(
    t,
    'file:///DIR',
    fc.property(fc.array(dirPart, { minLength: 1, maxLength: 4 }), (parts) => {
      deepStrictEqual(parseArchiveLocation(`file:///${parts.join('/')}`), { kind: 'file', dir: '/' + parts.join('/') });
    }),
  );
  const valid = fc.oneof(
    fc.tuple(bucket, fc.array(prefixPart, { maxLength: 3 })).map(([b, ps]) => `s3://${b}/${ps.join('/')}`),
    fc.array(dirPart, { minLength: 1, maxLength: 3 }).map((ps) => `file:///${ps.join('/')}`),
  );
  checkProperty(t, 'arbitrary and mutated locations', fc.property(hostileText(valid, locationAlphabet), (s) => decodesOrRefuses(() => parseArchiveLocation(s), [ArchiveLocationError], TEXT_ALLOC_BOUND)));
});

// ---- timeline history files ----

const historyEntries = fc
  .uniqueArray(fc.integer({ min: 1, max: 0xfffffffe }), { maxLength: 6 })
  .chain((tlis) => fc.tuple(fc.constant([...tlis].sort((a, b) => a - b)), fc.array(u64, { minLength: tlis.length, maxLength: tlis.length })))
  .map(([tlis, lsns]) => tlis.map((timeline, i) => ({ timeline, switchpoint: lsns[i] })));
const historyAlphabet = fc.constantFrom('\t', ' ', '\n', '#', '/', '0', '9', 'A', 'f', 'g', '-', '\r');

t.test('history files: parse(format(entries)) = entries; bad ones are a HistoryParseError', async (t) => {
  const format = (es: Array<{ timeline: number; switchpoint: bigint }>, reason: string) => es.map((e) => `${e.timeline}\t${formatLsn(e.switchpoint)}\t${reason}\n`).join('');
  checkProperty(
    t,
    'round trip, with comments and blank lines',
    fc.property(historyEntries, fc.constantFrom('no recovery target specified', 'at restore point "x"', ''), (es, reason) => {
      deepStrictEqual(parseHistory('# comment\n\n' + format(es, reason)), es);
    }),
  );
  checkProperty(
    t,
    'arbitrary and mutated files',
    fc.property(hostileText(historyEntries.map((es) => format(es, 'r')), historyAlphabet), (s) => decodesOrRefuses(() => parseHistory(s), [HistoryParseError], TEXT_ALLOC_BOUND)),
  );
});
