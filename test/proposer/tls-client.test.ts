// The client TLS settings without PostgreSQL: libpq's sslmode keys in
// connection strings, the order of attempts, what is verified, the files'
// checks, the SSLRequest answers a server can give, and the command-line
// options of `walkeeper propose`.
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { UsageError } from '../../src/commands/errors.js';
import { parseProposeArgs } from '../../src/commands/propose.js';
import { errorResponse } from '../../src/pq/backend.js';
import { ConnStringError, parseConnString, resolveConnString } from '../../src/proposer/connstr.js';
import { PgServerError } from '../../src/proposer/frontend-connection.js';
import { PgClient } from '../../src/proposer/pg-client.js';
import { tryTheOtherWay, TlsHandshakeError, tlsAttempts, tlsConnectOptions, TlsSettingsError, type TlsClientSettings } from '../../src/proposer/tls-client.js';
import { pgTempDir } from '../helpers/pg.js';
import { makeCa, makeServerCert } from '../helpers/tls.js';

const dir = pgTempDir('wk-tls-unit-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ca = makeCa(dir, 'ca');
const leaf = makeServerCert(dir, ca, 'leaf');

t.test('connection strings: libpq TLS keys and their environment fallbacks', async (t) => {
  t.same(resolveConnString('host=h', {}).tls, { mode: 'prefer' }, "libpq's default sslmode");
  t.same(resolveConnString('host=h', { PGSSLMODE: 'require', PGSSLROOTCERT: '/ca' }).tls, { mode: 'require', rootCert: '/ca' });
  t.same(resolveConnString('host=h sslmode=verify-full sslrootcert=/a sslcert=/c sslkey=/k', { PGSSLMODE: 'disable' }).tls, {
    mode: 'verify-full',
    rootCert: '/a',
    cert: '/c',
    key: '/k',
  });
  t.same(resolveConnString('postgresql://u@db.example/x?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.crt', {}).tls, { mode: 'verify-ca', rootCert: '/etc/ca.crt' }, 'URI form');
  const named = resolveConnString('host=db.example hostaddr=10.0.0.5', {});
  t.equal(named.host, '10.0.0.5', 'hostaddr is where to connect');
  t.equal(named.serverName, 'db.example', 'host is the name the certificate must carry');
  t.equal(resolveConnString('host=db.example', {}).serverName, undefined);
  t.throws(() => resolveConnString('sslmode=verify', {}), ConnStringError);
  t.throws(() => resolveConnString('sslmode=disable sslrootcert=/ca', {}), /need an sslmode other than disable/);
  t.throws(() => resolveConnString('sslkey=/k', {}), /sslkey needs sslcert/);
  t.throws(() => parseConnString('sslcrl=/crl'), /connection option "sslcrl" is not supported/);
  t.throws(() => parseConnString('sslpassword=x'), /not supported/);
});

t.test('attempts and retries: libpq allow and prefer', async (t) => {
  const s = (mode: TlsClientSettings['mode']): TlsClientSettings => ({ mode });
  t.same(tlsAttempts(undefined, 'h'), [false], 'no settings: plaintext');
  t.same(tlsAttempts(s('disable'), 'h'), [false]);
  t.same(tlsAttempts(s('allow'), 'h'), [false, true]);
  t.same(tlsAttempts(s('prefer'), 'h'), [true, false]);
  t.same(tlsAttempts(s('require'), 'h'), [true]);
  t.same(tlsAttempts(s('verify-full'), 'h'), [true]);
  t.same(tlsAttempts(s('verify-full'), '/run/pg'), [false], 'no TLS over a Unix socket');
  const refused = new PgServerError({ S: 'FATAL', C: '28000', M: 'no pg_hba.conf entry' });
  t.equal(tryTheOtherWay(s('prefer'), false, new TlsHandshakeError('x'), false), true, 'prefer: a failed handshake');
  t.equal(tryTheOtherWay(s('prefer'), true, refused, true), true, 'prefer: refused over TLS');
  t.equal(tryTheOtherWay(s('prefer'), false, refused, true), false, 'prefer: refused in plaintext (the server said N)');
  t.equal(tryTheOtherWay(s('allow'), false, refused, true), true, 'allow: refused in plaintext');
  t.equal(tryTheOtherWay(s('allow'), true, refused, true), false);
  t.equal(tryTheOtherWay(s('require'), true, new TlsHandshakeError('x'), false), false);
  t.equal(tryTheOtherWay(s('prefer'), true, new Error('connect ECONNREFUSED'), false), false, 'an unreachable server is not retried');
});

t.test('what is verified, and the files', async (t) => {
  const none = tlsConnectOptions({ mode: 'require' }, 'db.example');
  t.equal(none.rejectUnauthorized, false, 'require without a root certificate: no check');
  t.equal(none.servername, 'db.example', 'SNI');
  t.equal(tlsConnectOptions({ mode: 'require' }, '10.0.0.5').servername, undefined, 'no SNI for an address');
  const chain = tlsConnectOptions({ mode: 'verify-ca', rootCert: ca.cert }, 'db.example');
  t.equal(chain.rejectUnauthorized, true);
  t.equal(chain.checkServerIdentity?.('db.example', {} as never), undefined, 'verify-ca: no host name check');
  t.equal(tlsConnectOptions({ mode: 'require', rootCert: ca.cert }, 'h').rejectUnauthorized, true, 'require with a root certificate checks the chain');
  t.equal(tlsConnectOptions({ mode: 'prefer', rootCert: ca.cert }, 'h').rejectUnauthorized, true);
  const full = tlsConnectOptions({ mode: 'verify-full', rootCert: ca.cert }, 'db.example');
  const peer = { subject: { CN: 'other.example' }, subjectaltname: 'DNS:other.example' };
  t.match(String(full.checkServerIdentity?.('ignored', peer as never)), /db\.example/, 'verify-full checks the name given, not the one Node passes');
  t.throws(() => tlsConnectOptions({ mode: 'verify-full' }, 'h'), TlsSettingsError, 'verify-* needs a root certificate');
  t.throws(() => tlsConnectOptions({ mode: 'verify-ca', rootCert: `${dir}/missing.crt` }, 'h'), /could not read root certificate file ".*missing\.crt": ENOENT/);
  const withCert = tlsConnectOptions({ mode: 'require', cert: leaf.cert, key: leaf.key }, 'h');
  t.ok(withCert.cert && withCert.key, 'client certificate and key read');
  chmodSync(leaf.key, 0o644);
  t.throws(() => tlsConnectOptions({ mode: 'require', cert: leaf.cert, key: leaf.key }, 'h'), /has group or world access/);
  chmodSync(leaf.key, 0o600);
});

/** A server that answers SSLRequest with `reply` and then closes. */
async function answering(t: Test, reply: Buffer): Promise<number> {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.once('data', () => s.end(reply));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as AddressInfo).port;
}

const connect = (port: number, mode: TlsClientSettings['mode']): Promise<PgClient> =>
  PgClient.connect({ host: '127.0.0.1', port, user: 'u', database: 'd', tls: { mode }, connectTimeoutMs: 5000 });

t.test('answers to SSLRequest', async (t) => {
  const n = await answering(t, Buffer.from('N'));
  await t.rejects(connect(n, 'require'), { name: 'TlsHandshakeError', message: /does not support SSL, but SSL was required \(sslmode=require\)/ });
  const extra = await answering(t, Buffer.from('SX'));
  await t.rejects(connect(extra, 'require'), { message: /sent unencrypted data after its answer to SSLRequest/ }, 'bytes before the handshake are refused');
  const bogus = await answering(t, Buffer.from('Q'));
  await t.rejects(connect(bogus, 'require'), { message: /invalid answer to SSLRequest: 0x51/ });
  const busy = await answering(t, Buffer.concat([Buffer.from(errorResponse({ severity: 'FATAL', code: '53300', message: 'sorry, too many clients already' }))]));
  await t.rejects(connect(busy, 'require'), { name: 'PgServerError', code: '53300', message: 'sorry, too many clients already' }, "the server's error instead of an answer");
});

t.test('walkeeper propose: the TLS options', async (t) => {
  const base = ['--primary', 'host=127.0.0.1', '--safekeepers', '127.0.0.1:5454', '--tenant', 'a'.repeat(32), '--timeline', 'b'.repeat(32)];
  const opts = parseProposeArgs([...base, '--safekeeper-sslmode', 'verify-full', '--safekeeper-sslrootcert', ca.cert, '--safekeeper-sslcert', leaf.cert, '--safekeeper-sslkey', leaf.key]);
  if (opts === 'help') throw new Error('help');
  t.same(opts.safekeeperTls, { mode: 'verify-full', rootCert: ca.cert, cert: leaf.cert, key: leaf.key });
  t.same(opts.primary.tls, { mode: 'prefer' });
  const defaults = parseProposeArgs(base);
  if (defaults === 'help') throw new Error('help');
  t.same(defaults.safekeeperTls, { mode: 'prefer' }, "libpq's default towards the safekeepers too");
  t.throws(() => parseProposeArgs([...base, '--safekeeper-sslmode', 'on']), new UsageError('--safekeeper-sslmode: invalid sslmode value "on" (expected one of disable, allow, prefer, require, verify-ca, verify-full)'));
  t.throws(() => parseProposeArgs([...base, '--safekeeper-sslmode', 'verify-ca']), { constructor: UsageError, message: /--safekeeper-ssl\*: sslmode=verify-ca needs the CA certificate/ });
  t.throws(() => parseProposeArgs([...base, '--safekeeper-sslrootcert', `${dir}/none.crt`]), { constructor: UsageError, message: /could not read root certificate file/ }, 'a missing file fails at start-up');
  base[1] = `host=127.0.0.1 sslmode=verify-full`;
  t.throws(() => parseProposeArgs(base), { constructor: UsageError, message: /^--primary: sslmode=verify-full needs the CA certificate/ });
});
