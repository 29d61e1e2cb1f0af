// The proposer's PostgreSQL client against a real PostgreSQL 15 with
// `ssl = on` and hostssl lines only: every sslmode with libpq's meaning,
// root certificates right and wrong, host names, client certificates, and
// prefer/require against a server without TLS.
import { rmSync } from 'node:fs';
import t, { type Test } from 'tap';
import { resolveConnString } from '../../src/proposer/connstr.js';
import { PgServerError } from '../../src/proposer/frontend-connection.js';
import { PgClient } from '../../src/proposer/pg-client.js';
import { TlsHandshakeError, TlsSettingsError } from '../../src/proposer/tls-client.js';
import { pgTempDir, startCluster } from '../helpers/pg.js';
import { forPostgres, makeCa, makeServerCert } from '../helpers/tls.js';

const dir = pgTempDir('wk-tls-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ca = makeCa(dir, 'ca');
const otherCa = makeCa(dir, 'other-ca');
const server = forPostgres(makeServerCert(dir, ca, 'server'));
// Its CN is the user name clientcert=verify-full checks.
const client = makeServerCert(dir, ca, 'certuser');

const tlsPrimary = await startCluster(t, {
  conf: { ssl: 'on', ssl_cert_file: server.cert, ssl_key_file: server.key, ssl_ca_file: ca.cert },
  hba: [
    'local all all trust',
    'hostssl all certuser 127.0.0.1/32 trust clientcert=verify-full',
    'hostssl all all 127.0.0.1/32 trust',
    'hostssl replication all 127.0.0.1/32 trust',
  ],
});
await tlsPrimary.sql('create role certuser login');
const plainPrimary = await startCluster(t);

/** Connect with the conninfo (resolved as `walkeeper propose --primary` does) and say whether the session is encrypted. */
async function encrypted(port: number, conninfo: string): Promise<boolean> {
  const c = await PgClient.connect({ ...resolveConnString(`host=127.0.0.1 port=${port} user=postgres dbname=postgres ${conninfo}`, {}), connectTimeoutMs: 10_000 });
  try {
    const r = await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    return r.rows[0][0] === 't';
  } finally {
    c.close();
  }
}

/** The connect error, which must be one line. */
async function refused(t: Test, port: number, conninfo: string): Promise<Error> {
  const err = await encrypted(port, conninfo).then(
    () => null,
    (e: Error) => e,
  );
  if (!err) throw new Error(`"${conninfo}" connected`);
  t.notMatch(err.message, /\n/, `one line: ${err.message}`);
  return err;
}

const tp = tlsPrimary.port;

t.test('disable: the hostssl-only server refuses the plaintext start-up', async (t) => {
  const err = await refused(t, tp, 'sslmode=disable');
  t.type(err, PgServerError);
  t.equal((err as PgServerError).code, '28000');
  t.match(err.message, /no encryption/);
});

t.test('require: TLS without checking the certificate', async (t) => {
  t.equal(await encrypted(tp, 'sslmode=require'), true, 'no sslrootcert needed');
});

t.test('require with a root certificate checks the chain (libpq: as verify-ca)', async (t) => {
  t.equal(await encrypted(tp, `sslmode=require sslrootcert=${ca.cert}`), true);
  const err = await refused(t, tp, `sslmode=require sslrootcert=${otherCa.cert}`);
  t.type(err, TlsHandshakeError);
});

t.test('verify-ca: the right CA works, the wrong one fails on the client side', async (t) => {
  t.equal(await encrypted(tp, `sslmode=verify-ca sslrootcert=${ca.cert}`), true);
  const err = await refused(t, tp, `sslmode=verify-ca sslrootcert=${otherCa.cert}`);
  t.type(err, TlsHandshakeError);
  t.match(err.message, /TLS handshake with 127\.0\.0\.1:\d+ failed: .*certificate/);
  t.equal(await encrypted(tp, `sslmode=verify-ca sslrootcert=${ca.cert} host=wrong.example hostaddr=127.0.0.1`), true, 'the host name is not checked');
});

t.test('verify-ca without a root certificate is refused before connecting', async (t) => {
  const err = await refused(t, tp, `sslmode=verify-ca`);
  t.type(err, TlsSettingsError);
  t.match(err.message, /needs the CA certificate/);
});

t.test('verify-full: the chain and the host name', async (t) => {
  t.equal(await encrypted(tp, `sslmode=verify-full sslrootcert=${ca.cert}`), true, 'an address in subjectAltName');
  t.equal(await encrypted(tp, `sslmode=verify-full sslrootcert=${ca.cert} host=localhost hostaddr=127.0.0.1`), true, 'a DNS name in subjectAltName');
  const wrongName = await refused(t, tp, `sslmode=verify-full sslrootcert=${ca.cert} host=wrong.example hostaddr=127.0.0.1`);
  t.type(wrongName, TlsHandshakeError);
  t.match(wrongName.message, /wrong\.example/);
  const wrongCa = await refused(t, tp, `sslmode=verify-full sslrootcert=${otherCa.cert}`);
  t.type(wrongCa, TlsHandshakeError);
});

t.test('prefer: TLS when the server has it, plaintext when it does not', async (t) => {
  t.equal(await encrypted(tp, 'sslmode=prefer'), true);
  t.equal(await encrypted(tp, ''), true, 'prefer is the default');
  t.equal(await encrypted(plainPrimary.port, 'sslmode=prefer'), false);
  // A failed handshake is retried without TLS, which hostssl refuses: the server's answer is the error.
  const err = await refused(t, tp, `sslmode=prefer sslrootcert=${otherCa.cert}`);
  t.type(err, PgServerError);
  t.match(err.message, /no encryption/);
});

t.test('allow: plaintext first, TLS when the server refuses it', async (t) => {
  t.equal(await encrypted(tp, 'sslmode=allow'), true);
  t.equal(await encrypted(plainPrimary.port, 'sslmode=allow'), false);
});

t.test('require and verify-* against a server without TLS', async (t) => {
  for (const mode of ['require', `verify-full sslrootcert=${ca.cert}`]) {
    const err = await refused(t, plainPrimary.port, `sslmode=${mode}`);
    t.type(err, TlsHandshakeError);
    t.match(err.message, /does not support SSL, but SSL was required/);
  }
});

t.test('a client certificate (hostssl ... clientcert=verify-full)', async (t) => {
  t.equal(await encrypted(tp, `user=certuser sslmode=verify-full sslrootcert=${ca.cert} sslcert=${client.cert} sslkey=${client.key}`), true);
  const err = await refused(t, tp, `user=certuser sslmode=verify-full sslrootcert=${ca.cert}`);
  t.match(err.message, /certificate/, 'no certificate, no connection');
});

t.test('a replication connection over TLS (as the proposer opens it)', async (t) => {
  const c = await PgClient.connect({
    ...resolveConnString(`host=127.0.0.1 port=${tp} user=postgres sslmode=verify-full sslrootcert=${ca.cert}`, {}),
    replication: true,
    applicationName: 'tls-test',
  });
  try {
    const r = await c.query('IDENTIFY_SYSTEM');
    t.match(r.rows[0][0], /^\d+$/);
  } finally {
    c.close();
  }
});

t.test('a Unix socket carries no TLS, whatever the sslmode (libpq neither)', async (t) => {
  const c = await PgClient.connect(resolveConnString(`host=${tlsPrimary.root} port=${tp} user=postgres sslmode=require`, {}));
  try {
    const r = await c.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    t.equal(r.rows[0][0], 'f');
  } finally {
    c.close();
  }
});
