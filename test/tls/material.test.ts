// The TLS pair a listener hands new connections: loaded and checked from
// PEM files (a key that does not belong to the certificate is refused),
// re-read by reload(), which keeps the pair in force when the new files
// cannot be used.
import t from 'tap';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TlsMaterial } from '../../src/tls/material.js';
import { pgTempDir } from '../helpers/pg.js';
import { makeCa, makeServerCert } from '../helpers/tls.js';

const dir = pgTempDir('wk-tls-material-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ca = makeCa(dir);
const one = makeServerCert(dir, ca, 'one');
const two = makeServerCert(dir, ca, 'two');

t.test('load, reload, and refusals that keep the pair in force', async (t) => {
  const cert = join(dir, 'live.pem');
  const key = join(dir, 'live.key');
  copyFileSync(one.cert, cert);
  copyFileSync(one.key, key);
  const m = TlsMaterial.fromFiles(cert, key);
  t.match(m.summary, { subject: 'CN=one', subjectAltName: 'DNS:localhost, IP Address:127.0.0.1', fingerprint256: one.fingerprint256 });
  const firstContext = m.context;

  copyFileSync(two.cert, cert);
  copyFileSync(two.key, key);
  t.match(m.reload(), { subject: 'CN=two', fingerprint256: two.fingerprint256 });
  t.not(m.context, firstContext, 'a new context for new connections');
  t.match(m.pem.cert.toString(), /BEGIN CERTIFICATE/);

  const refusals: Array<[string, () => void, RegExp]> = [
    ['garbage certificate', () => writeFileSync(cert, 'garbage\n'), /TLS certificate .*live\.pem is not a PEM certificate/],
    ['key of another certificate', () => (copyFileSync(one.cert, cert), copyFileSync(two.key, key)), /TLS key .*live\.key cannot be used with certificate/],
    ['missing key', () => (copyFileSync(two.cert, cert), rmSync(key)), /cannot read the TLS key .*live\.key: no such file/],
  ];
  for (const [what, spoil, want] of refusals) {
    const before = m.context;
    spoil();
    t.throws(() => m.reload(), want, what);
    t.equal(m.context, before, `${what}: the context in force stays`);
    t.equal(m.summary.fingerprint256, two.fingerprint256, `${what}: so does the certificate`);
  }
  t.throws(() => TlsMaterial.fromFiles(join(dir, 'none.pem'), one.key), /cannot read the TLS certificate .*none\.pem: no such file/);
});
