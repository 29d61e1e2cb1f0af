// The quorum with TLS on every hop: a PostgreSQL 15 primary with `ssl = on`
// and hostssl lines only, three safekeepers with --tls-cert/--tls-key
// --tls-required, and `walkeeper propose` checking every certificate with
// sslmode=verify-full. Plaintext is refused on both sides, so commits that
// go through went over TLS: the primary's replication connection, the WAL
// push sessions and a recovery stream from a peer safekeeper.
import { readFileSync, rmSync } from 'node:fs';
import t from 'tap';
import { formatLsn } from '../../src/lsn.js';
import { pgTempDir } from '../helpers/pg.js';
import { waitFor } from '../helpers/support.js';
import { forPostgres, makeCa, makeServerCert } from '../helpers/tls.js';
import { APP, makeSynchronous, ProposerProc, reportedFlush, startQuorum, TENANT, TIMELINE, Workload } from './harness.js';

t.test('commits through a quorum with TLS on every hop (verify-full)', async (t) => {
  const dir = pgTempDir('wk-tls-quorum-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir, 'ca');
  const pgServer = forPostgres(makeServerCert(dir, ca, 'postgres'));
  const skServer = makeServerCert(dir, ca, 'safekeeper');

  const q = await startQuorum(t, {
    cluster: {
      conf: { ssl: 'on', ssl_cert_file: pgServer.cert, ssl_key_file: pgServer.key },
      hba: ['local all all trust', 'hostssl all all 127.0.0.1/32 trust', 'hostssl replication all 127.0.0.1/32 trust'],
    },
    safekeeperArgs: ['--tls-cert', skServer.cert, '--tls-key', skServer.key, '--tls-required'],
    safekeeperClientTls: { mode: 'verify-full', rootCert: ca.cert },
    primaryConnInfo: `sslmode=verify-full sslrootcert=${ca.cert}`,
    // A small window, so that a safekeeper that was down catches up from a peer.
    proposerArgs: ['--safekeeper-sslmode', 'verify-full', '--safekeeper-sslrootcert', ca.cert, '--max-buffer', '1MB'],
  });
  const { primary, safekeepers: sks, proposer } = q;
  await primary.sql('create table filler (id int, pad text)');

  proposer.start();
  await proposer.waitLog('won the vote');
  await makeSynchronous(primary);
  t.equal(
    await primary.sql(`select s.ssl from pg_stat_ssl s join pg_stat_replication r using (pid) where r.application_name = '${APP}'`),
    't',
    "the proposer's replication connection to the primary is encrypted",
  );

  const work = await Workload.start(primary, 2, { ca: readFileSync(ca.cert) });
  t.teardown(() => work.stop());
  await waitFor('commits through the quorum', () => work.count, (n) => n >= 50, 60_000);
  t.ok((await reportedFlush(primary)) > 0n, 'the proposer reports the quorum flush position to the primary');

  await t.test('a safekeeper that was down catches up from a peer over TLS', async (t) => {
    const sk = sks[2];
    await sk.kill9();
    const before = work.count;
    // More WAL than the proposer's 1 MB window while it is down: it must come from a peer.
    await primary.sql("insert into filler select i, repeat('x', 1000) from generate_series(1, 4000) i");
    await waitFor('commits with one safekeeper down', () => work.count, (n) => n > before + 20, 60_000);
    const mark = proposer.logs.length;
    await sk.start();
    await proposer.waitLog('safekeeper catching up from a peer', mark, 60_000);
    const target = await reportedFlush(primary);
    await waitFor(`${sk.address} to reach ${formatLsn(target)}`, () => sk.flushLsn(), (f) => f >= target, 60_000);
    t.pass(`${sk.address} caught up to ${formatLsn(target)}`);
  });

  await work.stop();
  t.same(work.errors, [], 'no commit failed');
  const stopped = await proposer.stop();
  t.equal(stopped?.code, 0, 'the proposer exits 0 on SIGTERM');

  await t.test('a CA that did not sign the certificates: the proposer refuses the primary, then the safekeepers', async (t) => {
    const otherCa = makeCa(dir, 'other-ca');
    const run = async (primaryCa: string, safekeeperCa: string, msg: string): Promise<string> => {
      const p = new ProposerProc(t, [
        '--primary', `host=127.0.0.1 port=${primary.port} user=postgres sslmode=verify-full sslrootcert=${primaryCa}`,
        '--safekeepers', sks.map((s) => s.address).join(','),
        '--tenant', TENANT, '--timeline', TIMELINE,
        '--safekeeper-sslmode', 'verify-full', '--safekeeper-sslrootcert', safekeeperCa,
      ]);
      p.start();
      const line = await p.waitLog(msg);
      await p.kill9();
      return String(line.err);
    };
    t.match(await run(otherCa.cert, ca.cert, 'primary unavailable; retrying with backoff'), /TLS handshake with 127\.0\.0\.1:\d+ failed/);
    t.match(await run(ca.cert, otherCa.cert, 'safekeeper unavailable; retrying with backoff'), /TLS handshake with 127\.0\.0\.1:\d+ failed/);
  });
});
