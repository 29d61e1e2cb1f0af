// Real PostgreSQL readers over TLS with sslmode=verify-full (which makes
// libpq refuse anything but a verified TLS connection): psql runs
// IDENTIFY_SYSTEM, pg_receivewal streams the primary's WAL byte for byte,
// and a hot standby's primary_conninfo streams and replays it. A reader
// that does not trust the CA fails on its side.
import t from 'tap';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { segmentFloor } from '../../src/lsn.js';
import { chownToPg, pgTempDir, runPg, runPgOk, startCluster } from '../helpers/pg.js';
import { waitFor, xorshift32 } from '../helpers/support.js';
import { makeCa, makeServerCert } from '../helpers/tls.js';
import { startDaemon, tempDir } from '../daemon/helpers.js';
import { randomChunks } from './feeder.js';
import { electFeeder, flushLsn, readerConn, receivedMatches, SEG, spawnPg, startPrimary } from './helpers.js';

t.test('psql, pg_receivewal and a hot standby read WAL over TLS with sslmode=verify-full', async (t) => {
  const root = pgTempDir('wk-e2e-tls-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const ca = makeCa(root);
  const server = makeServerCert(root, ca);
  const otherCa = makeCa(root, 'other-ca');

  const p = await startPrimary(t);
  await p.pg.sql('create table t (id int primary key, tag text)');
  await p.pg.sql(`insert into t select g, 'before backup' from generate_series(1, 1000) g`);
  const standbyDir = join(root, 'standby');
  await runPgOk('pg_basebackup', ['-h', '127.0.0.1', '-p', String(p.pg.port), '-U', 'postgres', '-D', standbyDir, '-X', 'none', '-c', 'fast', '--no-sync']);
  await p.pg.sql(`insert into t select g, 'after backup' from generate_series(1001, 4000) g`);

  const wk = await startDaemon(t, { dataDir: tempDir(t, 'wk-e2e-tls-data-'), noSync: true, args: ['--tls-cert', server.cert, '--tls-key', server.key] });
  const feeder = await electFeeder(t, p, wk);
  const flushed = await flushLsn(p.pg);
  await feeder.push(flushed, { chunks: randomChunks(xorshift32(14)) });
  const verified = (ca: string, extra = '') => readerConn(wk, `host=localhost sslmode=verify-full sslrootcert=${ca} ${extra}`);

  const ident = await runPg('psql', ['-X', '-At', '-c', 'IDENTIFY_SYSTEM', '-c', '\\conninfo', verified(ca.cert, 'replication=true')], { timeoutMs: 20_000 });
  t.equal(ident.code, 0, ident.stderr);
  t.match(ident.stdout, new RegExp(`^${p.systemId}\\|1\\|[0-9A-F]+/[0-9A-F]+\\|`, 'm'), 'IDENTIFY_SYSTEM: the primary system id, timeline 1');
  t.match(ident.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'over TLS');

  const refused = await runPg('psql', ['-X', '-At', '-c', 'IDENTIFY_SYSTEM', verified(otherCa.cert, 'replication=true')], { timeoutMs: 20_000 });
  t.not(refused.code, 0, 'a reader with another CA cannot connect');
  t.match(refused.stderr, 'certificate verify failed');

  const out = pgTempDir('wk-e2e-tls-recv-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const recv = spawnPg(t, 'pg_receivewal', ['-d', verified(ca.cert), '-D', out, '--no-loop', '--no-sync', '-s', '1']);
  await waitFor('pg_receivewal to receive the pushed WAL over TLS', () => receivedMatches(out, p.pg.walDir, segmentFloor(flushed, SEG), flushed), (ok) => ok);
  t.pass('pg_receivewal (verify-full) wrote the primary WAL byte for byte');
  recv.child.kill('SIGINT');
  await recv.done;

  writeFileSync(join(standbyDir, 'standby.signal'), '');
  chownToPg(join(standbyDir, 'standby.signal'));
  const standby = await startCluster(t, {
    dataDir: standbyDir,
    conf: { primary_conninfo: verified(ca.cert, 'application_name=wk_tls_standby'), hot_standby: 'on', wal_retrieve_retry_interval: '200ms' },
  });
  const rows = await waitFor('the standby to replay over TLS', () => standby.sql('select count(*) from t').then(Number), (n) => n === 4000);
  t.equal(rows, 4000, 'the standby replays the rows committed on the primary');
  t.match(await standby.sql('select status, sender_port from pg_stat_wal_receiver'), `streaming|${wk.pgPort}`, 'streaming from walkeeper');
  t.match(await standby.sql('select conninfo from pg_stat_wal_receiver'), 'sslmode=verify-full', 'with sslmode=verify-full');
});
