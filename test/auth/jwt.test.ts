// Ed25519 JWT verification with node:crypto: genuine tokens pass; expired,
// not-yet-valid, tampered, foreign-key, wrong-algorithm and malformed ones
// fail with AuthError (→ 401 / 28P01); scope rules give ForbiddenError
// (→ 403 / 28000).
import t from 'tap';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthError, checkScope, ForbiddenError, JwtVerifier, signToken } from '../../src/auth/jwt.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

const b64 = (o: unknown): string => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');

t.test('genuine tokens verify; claims come back normalised', async (t) => {
  const k = keyPair();
  const v = JwtVerifier.fromPem(k.publicPem);
  t.same(v.verify(signToken({ scope: 'safekeeperdata' }, k.privateKey)), { scope: 'safekeeperdata' });
  const now = Math.floor(Date.now() / 1000);
  const c = v.verify(signToken({ scope: 'tenant', tenant_id: A.toUpperCase(), exp: now + 60, nbf: now - 1 }, k.privateKey));
  t.same(c, { scope: 'tenant', tenantId: A, exp: now + 60 }, 'tenant id lower-cased, exp kept');
});

t.test('tokens that cannot be trusted', async (t) => {
  const k = keyPair();
  const other = keyPair();
  let now = 1_000_000;
  const v = JwtVerifier.fromPem(k.publicPem, { now: () => now });
  const good = signToken({ scope: 'tenant', tenant_id: A, exp: now + 10 }, k.privateKey);
  const [h, p, s] = good.split('.');
  const reason = (token: string): string => {
    try {
      v.verify(token);
      return 'accepted';
    } catch (err) {
      t.ok(err instanceof AuthError, `${(err as Error).message}`);
      return (err as AuthError).reason;
    }
  };
  t.equal(reason(good), 'accepted');
  t.equal(reason(''), 'missing');
  t.equal(reason('abc'), 'malformed');
  t.equal(reason(`${h}.${p}`), 'malformed');
  t.equal(reason(`${h}.${p}.${s}.x`), 'malformed');
  t.equal(reason('x'.repeat(9000)), 'malformed', 'oversized');
  t.equal(reason(`!!.${p}.${s}`), 'malformed', 'header not base64url');
  t.equal(reason(`${b64('not json')}.${p}.${s}`), 'malformed', 'header not JSON');
  // Tampering: another tenant in the payload, same signature.
  t.equal(reason(`${h}.${b64({ scope: 'tenant', tenant_id: B, exp: now + 10 })}.${s}`), 'signature', 'payload changed');
  t.equal(reason(`${h}.${b64({ scope: 'safekeeperdata' })}.${s}`), 'signature', 'scope raised');
  const flipped = Buffer.from(s, 'base64url');
  flipped[10] ^= 1;
  t.equal(reason(`${h}.${p}.${flipped.toString('base64url')}`), 'signature', 'signature bit flipped');
  t.equal(reason(`${h}.${p}.${Buffer.from(s, 'base64url').subarray(0, 63).toString('base64url')}`), 'signature', 'short signature');
  t.equal(reason(signToken({ scope: 'tenant', tenant_id: A }, other.privateKey)), 'signature', 'signed by another key');
  // Algorithm confusion: "none", and HS256 keyed with the public key text.
  t.equal(reason(`${b64({ alg: 'none', typ: 'JWT' })}.${p}.`), 'algorithm');
  const hsHeader = b64({ alg: 'HS256', typ: 'JWT' });
  const mac = createHmac('sha256', k.publicPem).update(`${hsHeader}.${p}`).digest('base64url');
  t.equal(reason(`${hsHeader}.${p}.${mac}`), 'algorithm');
  // Time limits.
  now += 10;
  t.equal(reason(good), 'expired', 'at exp');
  now = 1_000_000;
  t.equal(reason(signToken({ scope: 'tenant', tenant_id: A, nbf: now + 5 }, k.privateKey)), 'not-yet-valid');
  t.equal(reason(signToken({ scope: 'tenant', tenant_id: A, exp: 'soon' as never }, k.privateKey)), 'claims');
  // Claim shapes.
  t.equal(reason(signToken({ tenant_id: A } as never, k.privateKey)), 'claims', 'no scope');
  t.equal(reason(signToken({ scope: 'tenant', tenant_id: '../x' }, k.privateKey)), 'claims', 'tenant_id not hex');
});

t.test('key files: several keys (rotation), wrong key types', async (t) => {
  const k1 = keyPair();
  const k2 = keyPair();
  const v = JwtVerifier.fromPem(k1.publicPem + '\n' + k2.publicPem);
  t.equal(v.keyCount, 2);
  t.equal(v.verify(signToken({ scope: 'safekeeperdata' }, k2.privateKey)).scope, 'safekeeperdata', 'second key accepted');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  t.throws(() => JwtVerifier.fromPem(rsa, { source: 'k.pem' }), /k\.pem: key 1 is rsa, expected an Ed25519 public key/);
  t.throws(() => JwtVerifier.fromPem('hello'), /no PEM public key found/);
  t.throws(() => JwtVerifier.fromFile('/nonexistent/key.pem'), /cannot read the auth public key \/nonexistent\/key\.pem: no such file/);
});

t.test('reload: the key file is re-read; a broken one is refused and the keys in force stay', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wk-jwt-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keys.pem');
  const k1 = keyPair();
  const k2 = keyPair();
  const by = (k: ReturnType<typeof keyPair>) => signToken({ scope: 'safekeeperdata' }, k.privateKey);
  writeFileSync(path, k1.publicPem);
  const v = JwtVerifier.fromFile(path);
  t.equal(v.path, path);
  t.throws(() => v.verify(by(k2)), AuthError, 'k2 not trusted yet');

  writeFileSync(path, k1.publicPem + k2.publicPem);
  t.equal(v.reload(), 2, 'both keys in force (rotation overlap)');
  t.equal(v.verify(by(k1)).scope, 'safekeeperdata');
  t.equal(v.verify(by(k2)).scope, 'safekeeperdata');

  writeFileSync(path, k2.publicPem);
  t.equal(v.reload(), 1);
  t.throws(() => v.verify(by(k1)), AuthError, 'k1 refused once removed');

  for (const [bad, want] of [
    ['no key here\n', /no PEM public key found/],
    [generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString(), /expected an Ed25519 public key/],
  ] as const) {
    writeFileSync(path, bad);
    t.throws(() => v.reload(), want);
    t.equal(v.keyCount, 1, 'the key in force stays');
    t.equal(v.verify(by(k2)).scope, 'safekeeperdata', 'and keeps verifying');
  }
  rmSync(path);
  t.throws(() => v.reload(), /no such file/);
  t.equal(v.verify(by(k2)).scope, 'safekeeperdata');

  t.throws(() => JwtVerifier.fromPem(k1.publicPem).reload(), /not read from a file/, 'keys given as text cannot be re-read');
});

t.test('scopes', async (t) => {
  const forbidden = (f: () => void): string => {
    try {
      f();
      return 'allowed';
    } catch (err) {
      t.ok(err instanceof ForbiddenError);
      return (err as Error).message;
    }
  };
  t.equal(forbidden(() => checkScope({ scope: 'safekeeperdata' }, A)), 'allowed');
  t.equal(forbidden(() => checkScope({ scope: 'safekeeperdata' }, undefined)), 'allowed');
  t.equal(forbidden(() => checkScope({ scope: 'tenant', tenantId: A }, A)), 'allowed');
  t.equal(forbidden(() => checkScope({ scope: 'tenant', tenantId: A }, A.toUpperCase())), 'allowed');
  t.match(forbidden(() => checkScope({ scope: 'tenant', tenantId: A }, B)), `the token is for tenant ${A}, not for tenant ${B}`);
  t.match(forbidden(() => checkScope({ scope: 'tenant', tenantId: A }, undefined)), 'safekeeperdata');
  t.match(forbidden(() => checkScope({ scope: 'tenant' }, A)), 'must carry a tenant_id');
  t.match(forbidden(() => checkScope({ scope: 'pageserverapi' }, A)), 'not accepted by a safekeeper');
});
