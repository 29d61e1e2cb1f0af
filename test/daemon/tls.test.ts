// TLS on the daemon's ports, with real clients: SSLRequest is answered `S`
// only with --tls-cert/--tls-key (GSSENCRequest stays `N`), psql with
// sslmode=verify-full connects and reports an SSL connection, a client that
// does not trust the CA fails on its side while the daemon goes on,
// --tls-required refuses a plaintext start-up with FATAL 28000, and the
// admin API serves HTTPS (curl --cacert) with the same pair or its own.
import t from 'tap';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { pgTempDir, runPg } from '../helpers/pg.js';
import { waitFor } from '../helpers/support.js';
import { httpsJson, makeCa, makeServerCert, pqTlsConnect, sslAnswer } from '../helpers/tls.js';
import { errorFields, RawClient } from '../pq/raw-client.js';
import { runCli, startDaemon, tempDir } from './helpers.js';

const dir = pgTempDir('wk-tls-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ca = makeCa(dir);
const server = makeServerCert(dir, ca, 'server');
const otherCa = makeCa(dir, 'other-ca');
const tlsArgs = ['--tls-cert', server.cert, '--tls-key', server.key];

const psql = (port: number, conn: string, command: string) =>
  runPg('psql', ['-X', '-At', '-c', command, `host=localhost port=${port} user=postgres ${conn}`], { timeoutMs: 20_000 });

t.test('without --tls-cert: SSLRequest and GSSENCRequest are answered N', async (t) => {
  const wk = await startDaemon(t, { dataDir: tempDir(t), noSync: true });
  t.equal(await sslAnswer(wk.pgPort), 'N');
  t.equal(await sslAnswer(wk.pgPort, 80877104), 'N', 'GSSENCRequest');
  const r = await psql(wk.pgPort, 'sslmode=require', '\\conninfo');
  t.not(r.code, 0, 'sslmode=require cannot connect');
  t.match(r.stderr, 'server does not support SSL');
});

t.test('with --tls-cert/--tls-key: TLS on the pq port, verify-full clients connect, a wrong CA fails on the client side', async (t) => {
  const wk = await startDaemon(t, { dataDir: tempDir(t), noSync: true, args: tlsArgs });
  t.equal(await sslAnswer(wk.pgPort, 80877104), 'N', 'GSSENCRequest is still N');

  const good = await psql(wk.pgPort, `sslmode=verify-full sslrootcert=${ca.cert}`, '\\conninfo');
  t.equal(good.code, 0, good.stderr);
  t.match(good.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'psql reports an SSL connection');

  const tls = await pqTlsConnect(wk.pgPort, ca.cert);
  t.equal(tls.getPeerCertificate().fingerprint256, server.fingerprint256, 'the daemon presents --tls-cert');
  tls.destroy();

  const wrong = await psql(wk.pgPort, `sslmode=verify-full sslrootcert=${otherCa.cert}`, '\\conninfo');
  t.not(wrong.code, 0, 'a client with another CA refuses the server');
  t.match(wrong.stderr, 'certificate verify failed');
  await t.rejects(pqTlsConnect(wk.pgPort, otherCa.cert), 'so does Node with another CA');

  // The daemon goes on: plaintext clients (no --tls-required) and TLS clients are served.
  const plain = await RawClient.connect(wk.pgPort);
  const msgs = await plain.startup({ user: 'postgres' });
  t.equal(msgs.at(-1)?.tag, 'Z', 'a plaintext start-up still completes');
  plain.destroy();
  const again = await psql(wk.pgPort, `sslmode=verify-full sslrootcert=${ca.cert}`, '\\conninfo');
  t.equal(again.code, 0, 'TLS clients are served after failed handshakes');
  t.ok(wk.logs.some((l) => l.msg === 'TLS handshake failed'), 'the failed handshake is logged');

  const curl = await run('curl', ['-sS', '--cacert', ca.cert, `https://localhost:${wk.httpPort}/v1/status`]);
  t.equal(curl.code, 0, curl.stderr);
  t.match(JSON.parse(curl.stdout), { listen_pg: `127.0.0.1:${wk.pgPort}` }, 'curl --cacert reads /v1/status over HTTPS with the same pair');
  const curlWrong = await run('curl', ['-sS', '--cacert', otherCa.cert, `https://localhost:${wk.httpPort}/v1/status`]);
  t.not(curlWrong.code, 0, 'curl with another CA refuses the server');
  const plainHttp = await run('curl', ['-sS', `http://localhost:${wk.httpPort}/v1/status`]);
  t.notMatch(plainHttp.stdout, 'listen_pg', 'no plain HTTP on the HTTPS port');

  // Five TLS attempts so far: psql and Node with the CA, both with the wrong one, psql again.
  // A client that leaves mid-handshake (Node closes before its Finished is out) counts as failed.
  const handshakes = async () => {
    const text = (await run('curl', ['-sS', '--cacert', ca.cert, `https://localhost:${wk.httpPort}/metrics`])).stdout;
    const count = (result: string) =>
      [...text.matchAll(new RegExp(`^walkeeper_pg_tls_handshakes_total\\{result="${result}",protocol="(TLSv1\\.[23])?"\\} (\\d+)$`, 'gm'))].reduce((n, m) => n + Number(m[2]), 0);
    return { ok: count('ok'), failed: count('failed') };
  };
  const seen = await waitFor('every handshake to be counted', handshakes, (h) => h.ok + h.failed === 5, 10_000);
  t.ok(seen.ok >= 2 && seen.failed >= 2, `handshakes counted by result and TLS version: ${JSON.stringify(seen)}`);
});

t.test('--tls-required: a plaintext start-up gets FATAL 28000, TLS start-ups are served', async (t) => {
  const wk = await startDaemon(t, { dataDir: tempDir(t), noSync: true, args: [...tlsArgs, '--tls-required'] });
  const plain = await RawClient.connect(wk.pgPort);
  const msgs = await plain.startup({ user: 'postgres' });
  const last = msgs.at(-1)!;
  t.equal(last.tag, 'E');
  t.match(errorFields(last.body), { S: 'FATAL', C: '28000' });
  t.notOk(
    msgs.some((m) => m.tag === 'R'),
    'refused before authentication: no password (token) is asked for in the clear',
  );
  await plain.expectClosed();

  const disabled = await psql(wk.pgPort, 'sslmode=disable', '\\conninfo');
  t.not(disabled.code, 0);
  t.match(disabled.stderr, /FATAL: +connection refused: user "postgres" connected without TLS/, 'psql sslmode=disable is refused');
  const ok = await psql(wk.pgPort, `sslmode=verify-full sslrootcert=${ca.cert}`, '\\conninfo');
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, 'SSL connection');
});

t.test('--http-tls-cert/--http-tls-key: HTTPS with its own pair, and without --tls-cert the pq port stays plaintext', async (t) => {
  const http = makeServerCert(dir, ca, 'admin');
  const wk = await startDaemon(t, { dataDir: tempDir(t), noSync: true, args: ['--http-tls-cert', http.cert, '--http-tls-key', http.key] });
  const r = await httpsJson(wk.httpPort, '/v1/status', { ca: ca.cert });
  t.equal(r.status, 200);
  t.equal(r.fingerprint256, http.fingerprint256, 'the admin API presents --http-tls-cert');
  t.equal(await sslAnswer(wk.pgPort), 'N', 'no TLS on the pq port without --tls-cert');
});

t.test('bad TLS options: one line and a non-zero exit', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--tls-cert', server.cert], /--tls-cert needs --tls-key/],
    [['--tls-key', server.key], /--tls-key needs --tls-cert/],
    [['--tls-required'], /--tls-required needs --tls-cert and --tls-key/],
    [['--http-tls-cert', server.cert], /--http-tls-cert needs --http-tls-key/],
    [['--tls-cert', `${dir}/missing.pem`, '--tls-key', server.key], /cannot read the TLS certificate .*missing\.pem: no such file/],
    [['--tls-cert', server.cert, '--tls-key', ca.key], /TLS key .* cannot be used with certificate/],
    [['--tls-cert', server.key, '--tls-key', server.key], /is not a PEM certificate/],
  ];
  for (const [args, want] of cases) {
    const r = await runCli(['run', '-D', tempDir(t), '--listen-pg', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', ...args]);
    t.not(r.code, 0, args.join(' '));
    t.match(r.stderr, want, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}
