// Reload without a restart, against the real daemon: SIGHUP (and POST
// /v1/reload) re-read the auth public keys and the TLS pair. After a
// rotation, tokens of the old signing key are refused on both ports and the
// new key's accepted; new connections see the new certificate while one
// opened before goes on with the old. A broken file is refused (422 saying
// why, a log line) and what was in force stays.
import t from 'tap';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import pg from 'pg';
import { pgTempDir } from '../helpers/pg.js';
import { waitFor } from '../helpers/support.js';
import { httpsJson, makeCa, makeServerCert } from '../helpers/tls.js';
import { makeKeys } from '../http/helpers.js';
import { startDaemon, tempDir } from './helpers.js';

interface PgConn {
  client: pg.Client;
  fingerprint256: string;
}

/** A TLS connection with sslmode=verify-full's checks, the token as password; rejects with the server's error. */
async function pgConnect(port: number, ca: string, token: string): Promise<PgConn> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: token, ssl: { ca: readFileSync(ca), servername: 'localhost' } });
  client.on('error', () => {});
  await client.connect();
  const stream = (client as unknown as { connection: { stream: TLSSocket } }).connection.stream;
  return { client, fingerprint256: stream.getPeerCertificate().fingerprint256 };
}

/** The SQLSTATE of a refused connection, or 'ok'. */
async function pgOutcome(port: number, ca: string, token: string): Promise<string> {
  try {
    const c = await pgConnect(port, ca, token);
    await c.client.end();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  }
}

t.test('SIGHUP and POST /v1/reload rotate the signing key and the certificate; broken files are refused', async (t) => {
  const dir = pgTempDir('wk-reload-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir);
  const first = makeServerCert(dir, ca, 'first');
  const second = makeServerCert(dir, ca, 'second');
  const oldKeys = makeKeys(dir, 'old');
  const newKeys = makeKeys(dir, 'new');
  // The files the daemon is started with; rotations overwrite them.
  const live = { pub: join(dir, 'live.public.pem'), cert: join(dir, 'live.pem'), key: join(dir, 'live.key') };
  copyFileSync(oldKeys.publicPath, live.pub);
  copyFileSync(first.cert, live.cert);
  copyFileSync(first.key, live.key);

  const wk = await startDaemon(t, {
    dataDir: tempDir(t),
    noSync: true,
    args: ['--auth-public-key', live.pub, '--tls-cert', live.cert, '--tls-key', live.key],
  });
  const oldToken = oldKeys.token({ scope: 'safekeeperdata' });
  const newToken = newKeys.token({ scope: 'safekeeperdata' });
  const https = (path: string, token?: string, method = 'GET') => httpsJson(wk.httpPort, path, { ca: ca.cert, token, method });

  const before = await pgConnect(wk.pgPort, ca.cert, oldToken);
  t.teardown(() => before.client.end().catch(() => {}));
  t.equal(before.fingerprint256, first.fingerprint256, 'pq port: the first certificate');
  t.equal((await https('/v1/timelines', oldToken)).status, 200, 'HTTP: the old key signs valid tokens');
  t.equal(await pgOutcome(wk.pgPort, ca.cert, newToken), '28P01', 'the new key is not trusted yet');

  // Rotate both, then SIGHUP.
  copyFileSync(newKeys.publicPath, live.pub);
  copyFileSync(second.cert, live.cert);
  copyFileSync(second.key, live.key);
  const reloadedLines = () => wk.logs.filter((l) => l.msg === 'reloaded').length;
  wk.proc.kill('SIGHUP');
  await waitFor('both reloads to be logged', reloadedLines, (n) => n >= 2, 10_000);

  t.equal(await pgOutcome(wk.pgPort, ca.cert, oldToken), '28P01', 'pq port: an old-key token is refused after the reload');
  const oldHttp = await https('/v1/timelines', oldToken);
  t.equal(oldHttp.status, 401, 'HTTP: an old-key token is refused');
  t.equal(oldHttp.fingerprint256, second.fingerprint256, 'HTTPS: a new connection sees the new certificate');
  const after = await pgConnect(wk.pgPort, ca.cert, newToken);
  t.teardown(() => after.client.end().catch(() => {}));
  t.equal(after.fingerprint256, second.fingerprint256, 'pq port: a new connection sees the new certificate');
  t.equal((await https('/v1/timelines', newToken)).status, 200, 'HTTP: a new-key token is accepted');

  const stillOpen = await before.client.query('');
  t.equal(stillOpen.rowCount, null, 'the connection opened before the reload goes on');
  t.equal((before.client as unknown as { connection: { stream: TLSSocket } }).connection.stream.getPeerCertificate().fingerprint256, first.fingerprint256, 'with the certificate it negotiated');

  t.test('the route needs a node-scope token', async (t) => {
    t.equal((await https('/v1/reload', undefined, 'POST')).status, 401);
    const tenant = newKeys.token({ scope: 'tenant', tenant_id: 'ab'.repeat(16) });
    t.equal((await https('/v1/reload', tenant, 'POST')).status, 403);
    const ok = await https('/v1/reload', newToken, 'POST');
    t.equal(ok.status, 200);
    t.match(ok.body, {
      reloaded: [
        { what: 'auth_public_keys', path: live.pub, keys: 1 },
        { what: 'tls', path: live.cert, subject: 'CN=second', fingerprint256: second.fingerprint256 },
      ],
      refused: [],
    });
  });

  t.test('a broken or mismatched file is refused and the material in force stays', async (t) => {
    const refusedCert = async (what: string, want: RegExp) => {
      const r = await https('/v1/reload', newToken, 'POST');
      t.equal(r.status, 422, what);
      t.match(r.body, { error: 'reload_refused', refused: [{ what: 'tls', path: live.cert, error: want }], reloaded: [{ what: 'auth_public_keys' }] }, what);
      const c = await pgConnect(wk.pgPort, ca.cert, newToken);
      await c.client.end();
      t.equal(c.fingerprint256, second.fingerprint256, `${what}: the pq port still serves the certificate in force`);
      t.equal((await https('/v1/status')).fingerprint256, second.fingerprint256, `${what}: so does HTTPS`);
    };
    writeFileSync(live.cert, 'not a certificate\n');
    await refusedCert('garbage certificate', /is not a PEM certificate/);
    copyFileSync(first.cert, live.cert); // the key file still holds the second key
    await refusedCert('certificate and key that do not match', /cannot be used with certificate/);
    t.ok(
      wk.logs.some((l) => l.msg === 'reload refused: the material in force stays' && l.what === 'tls'),
      'the refusal is logged',
    );

    copyFileSync(second.cert, live.cert);
    writeFileSync(live.pub, 'no key here\n');
    wk.proc.kill('SIGHUP');
    await waitFor('the refused key reload to be logged', () => wk.logs.some((l) => l.what === 'auth_public_keys' && typeof l.err === 'string'), (ok) => ok, 10_000);
    t.equal(await pgOutcome(wk.pgPort, ca.cert, newToken), 'ok', 'the keys in force stay: new-key tokens are still accepted');
    t.equal(await pgOutcome(wk.pgPort, ca.cert, oldToken), '28P01', 'and old-key tokens still refused');
  });
});
