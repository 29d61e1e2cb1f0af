// `walkeeper restore-wal --safekeepers https://HOST:PORT --sslrootcert CA`
// against a daemon serving its admin API over HTTPS (--tls-cert/--tls-key):
// the segment is delivered with the right CA; a CA that did not sign the
// certificate, or none (the system's CAs), fails on the client side with
// one line and an exit code that stops recovery; plain http to it fails.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { EXIT_UNAVAILABLE, EXIT_USAGE } from '../../src/commands/restore-wal.js';
import { segmentFileName } from '../../src/lsn.js';
import { realWal, runCli, startInProcessDaemon, tempDir } from '../daemon/helpers.js';
import { electProposer, pushWal, TENANT, TIMELINE } from '../http/helpers.js';
import { makeCa, makeServerCert } from '../helpers/tls.js';

t.test('restore-wal from a safekeeper over HTTPS', async (t) => {
  const wal = await realWal(t);
  const dir = tempDir(t, 'wk-restore-https-');
  const ca = makeCa(dir, 'ca');
  const otherCa = makeCa(dir, 'other-ca');
  const server = makeServerCert(dir, ca, 'server');
  const daemon = await startInProcessDaemon(t, join(dir, 'data'), { tls: { certPath: server.cert, keyPath: server.key, required: false } });
  const p = await electProposer(daemon.pgAddress!.port, wal);
  await pushWal(p, wal, wal.startLsn, wal.startLsn + BigInt(2 * wal.segSize));
  const name = segmentFileName(1, wal.startLsn / BigInt(wal.segSize), wal.segSize);
  const port = daemon.httpAddress!.port;

  let n = 0;
  const restore = async (extra: string[]) => {
    const out = join(dir, `pg_wal-${++n}`);
    mkdirSync(out);
    const target = join(out, 'RECOVERYXLOG');
    const r = await runCli(['restore-wal', name, target, '--tenant', TENANT, '--timeline', TIMELINE, '--prefetch', '0', ...extra], { timeoutMs: 60_000 });
    return { ...r, files: readdirSync(out), bytes: existsSync(target) ? readFileSync(target) : null };
  };

  const ok = await restore(['--safekeepers', `https://127.0.0.1:${port}`, '--sslrootcert', ca.cert]);
  t.equal(ok.code, 0, ok.stderr);
  t.ok(ok.bytes?.equals(wal.bytes.subarray(0, wal.segSize)), 'delivered byte for byte');

  for (const [what, extra] of [
    ['a CA that did not sign the certificate', ['--sslrootcert', otherCa.cert]],
    ["Node's bundled CAs", []],
  ] as const) {
    const r = await restore(['--safekeepers', `https://127.0.0.1:${port}`, ...extra]);
    t.equal(r.code, EXIT_UNAVAILABLE, `${what}: recovery stops (${r.stderr.trim()})`);
    t.match(r.stderr, /^walkeeper restore-wal: cannot restore .*: safekeeper https:\/\/127\.0\.0\.1:\d+: TLS: /, 'the certificate is named as the reason');
    t.notMatch(r.stderr, /after 3 tries/, 'not retried: a certificate does not check out on a second try');
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.same(r.files, [], 'nothing written');
  }

  const plain = await restore(['--safekeepers', `127.0.0.1:${port}`]);
  t.equal(plain.code, EXIT_UNAVAILABLE, `plain http to the HTTPS port fails (${plain.stderr.trim()})`);

  const badUsage = await restore(['--safekeepers', `127.0.0.1:${port}`, '--sslrootcert', ca.cert]);
  t.equal(badUsage.code, EXIT_USAGE, 'a root certificate for http safekeepers is bad usage');
  const missing = await restore(['--safekeepers', `https://127.0.0.1:${port}`, '--sslrootcert', join(dir, 'none.crt')]);
  t.equal(missing.code, EXIT_USAGE, `an unreadable root certificate is bad usage (${missing.stderr.trim()})`);
});
