// Pieces of the quorum proposer that need no server: connection strings,
// SCRAM, the WAL window, `walkeeper propose` argument parsing.
import t from 'tap';
import { parseProposeArgs } from '../../src/commands/propose.js';
import { UsageError } from '../../src/commands/errors.js';
import { ConnStringError, parseConnString, resolveConnString } from '../../src/proposer/connstr.js';
import { parseWalSegSize } from '../../src/proposer/primary.js';
import { ScramClient, ScramError } from '../../src/proposer/scram.js';
import { WalWindow } from '../../src/proposer/wal-window.js';

t.test('connection strings', async (t) => {
  t.same(parseConnString("host=127.0.0.1 port=5433 user=postgres password='a b\\'c' application_name=x"), {
    host: '127.0.0.1',
    port: '5433',
    user: 'postgres',
    password: "a b'c",
    application_name: 'x',
  });
  t.same(parseConnString('postgresql://me:s%40cret@db.example:6543/app?application_name=p'), {
    user: 'me',
    password: 's@cret',
    host: 'db.example',
    port: '6543',
    dbname: 'app',
    application_name: 'p',
  });
  const r = resolveConnString('port=5433', { PGHOST: '/run/pg', PGUSER: 'u', PGPASSWORD: 'pw' });
  t.same(r, { host: '/run/pg', port: 5433, user: 'u', database: 'u', password: 'pw', tls: { mode: 'prefer' } });
  t.throws(() => parseConnString('host'), ConnStringError);
  t.throws(() => parseConnString("host='x"), /unterminated/);
  t.throws(() => parseConnString('bogus=1'), /invalid connection option "bogus"/);
  t.throws(() => resolveConnString('sslmode=required', {}), /invalid sslmode value "required"/);
  t.throws(() => resolveConnString('host=a,b', {}), /several hosts/);
  t.throws(() => resolveConnString('port=0', {}), /invalid port/);
});

t.test('connection strings: what libpq does that pg-connection-string does not', async (t) => {
  t.same(parseConnString('host=/var/run/postgresql dbname=app'), { host: '/var/run/postgresql', dbname: 'app' }, 'key/value with a Unix-socket directory');
  t.same(parseConnString('postgres://h/my%2Fdb'), { host: 'h', dbname: 'my/db' }, 'every escape in the database name is decoded');
  t.same(parseConnString('postgres://h/my%252Fdb'), { host: 'h', dbname: 'my%2Fdb' }, 'once');
  t.same(parseConnString('postgres://%2Ftmp%2Fpg/db'), { host: '/tmp/pg', dbname: 'db' }, 'a percent-encoded socket directory as the host');
  t.same(parseConnString('postgres:///db?host=/run/pg'), { dbname: 'db', host: '/run/pg' }, 'the socket directory as a parameter');
  t.same(parseConnString('postgres://[::1]:5433/x'), { host: '::1', port: '5433', dbname: 'x' });
  t.same(parseConnString('postgres://h/db?sslcert=/nonexistent'), { host: 'h', dbname: 'db', sslcert: '/nonexistent' }, 'no file is read while parsing');
});

t.test('SCRAM-SHA-256 against the RFC 7677 example', async (t) => {
  const c = new ScramClient('pencil', 'rOprNGfwEbeRWgbNEkqO', 'user');
  t.equal(c.first(), 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
  const final = c.final('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
  t.equal(final, 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=');
  t.doesNotThrow(() => c.verify('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='));
  t.throws(() => c.verify('v=AAAArriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='), ScramError);
  t.throws(() => c.verify('e=invalid-proof'), /invalid-proof/);
  t.throws(() => new ScramClient('x', 'abc').final('r=xyz,s=AA==,i=1'), /does not extend/);
  t.throws(() => new ScramClient('x', 'abc').final('garbage'), /malformed/);
});

t.test('wal_segment_size as SHOW prints it', async (t) => {
  t.equal(parseWalSegSize('16MB'), 16 << 20);
  t.equal(parseWalSegSize('1GB'), 1 << 30);
  t.equal(parseWalSegSize('1024kB'), 1 << 20);
  t.throws(() => parseWalSegSize('15MB'));
  t.throws(() => parseWalSegSize('lots'));
});

t.test('the WAL window: contiguous, coalescing, bounded by eviction', async (t) => {
  const w = new WalWindow(1000n);
  const bytes = (n: number, v: number) => new Uint8Array(n).fill(v);
  w.push(1000n, bytes(100, 1));
  w.push(1100n, bytes(100, 2));
  t.equal(w.end, 1200n);
  t.equal(w.bytes, 200);
  // Small pieces share a chunk: one slice covers both.
  const s = w.slice(1000n, 1 << 20)!;
  t.equal(s.length, 200);
  t.same([s[0], s[99], s[100], s[199]], [1, 1, 2, 2]);
  t.equal(w.slice(1150n, 10)!.length, 10);
  t.equal(w.slice(999n, 10), null, 'below the window');
  t.equal(w.slice(1200n, 10), null, 'at the end');
  // A resent overlap is skipped; a gap is refused.
  w.push(1150n, bytes(100, 3));
  t.equal(w.end, 1250n);
  t.equal(w.slice(1199n, 2)![1], 3);
  t.throws(() => w.push(1300n, bytes(1, 0)), /gap/);
  // A piece that does not fit the last chunk's room starts a new chunk (a big one is kept as it is).
  const big = bytes(131_000, 9);
  w.push(1250n, big);
  t.equal(w.slice(1200n, 1 << 20)!.length, 50, 'a slice stops at its chunk end');
  t.equal(w.slice(1250n, 1 << 20)!.length, 131_000);
  // Eviction drops whole chunks up to a limit only.
  w.shrinkTo(0, 1250n);
  t.equal(w.start, 1250n);
  t.equal(w.bytes, 131_000);
  w.shrinkTo(0, 1300n);
  t.equal(w.start, 1250n, 'a chunk that ends past the limit stays');
  w.evictBefore(132_250n);
  t.equal(w.bytes, 0);
  t.equal(w.start, w.end);
});

t.test('walkeeper propose arguments', async (t) => {
  const base = ['--primary', 'host=127.0.0.1 port=5432 user=postgres', '--safekeepers', '127.0.0.1:5454,127.0.0.1:5455,[::1]:5456', '--tenant', 'ab'.repeat(16), '--timeline', 'CD'.repeat(16)];
  const o = parseProposeArgs(base);
  t.not(o, 'help');
  if (o === 'help') return;
  t.same(o.safekeepers, [
    { host: '127.0.0.1', port: 5454 },
    { host: '127.0.0.1', port: 5455 },
    { host: '::1', port: 5456 },
  ]);
  t.equal(o.timelineId, 'cd'.repeat(16));
  t.equal(o.slot, 'walkeeper');
  t.equal(o.applicationName, 'walkeeper');
  const o2 = parseProposeArgs([...base, '--slot=my_slot', '--application-name', 'q1', '--start-lsn', '0/3000000', '--max-buffer', '8MB']);
  t.ok(o2 !== 'help' && o2.slot === 'my_slot' && o2.applicationName === 'q1' && o2.startLsn === 0x3000000n && o2.maxBufferBytes === 8 << 20);
  t.equal(parseProposeArgs(['--help']), 'help');
  const bad: [string[], RegExp][] = [
    [base.slice(2), /--primary is required/],
    [[...base, '--bogus', '1'], /unknown option/],
    [[...base, '--slot', 'Bad-Slot'], /invalid slot name/],
    [[...base, '--start-lsn', 'zz'], /--start-lsn/],
    [[...base, '--max-buffer', '10kB'], /too small/],
    [[...base.slice(0, 6), '--timeline', 'xyz'], /32 hex digits/],
    [['--primary', 'host=h', '--safekeepers', '127.0.0.1:1,127.0.0.1:1', '--tenant', 'ab'.repeat(16), '--timeline', 'ab'.repeat(16)], /listed twice/],
    [['--primary', 'nonsense', '--safekeepers', 'h:1', '--tenant', 'ab'.repeat(16), '--timeline', 'ab'.repeat(16)], /--primary/],
    [[...base, '--slot'], /needs a value/],
  ];
  for (const [args, re] of bad) t.throws(() => parseProposeArgs(args), re, `${args.slice(-2).join(' ')}`);
  let caught: unknown;
  try {
    parseProposeArgs([...base, '--slot', 'Bad-Slot']);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof UsageError, 'bad usage is a UsageError (exit 2)');
});
