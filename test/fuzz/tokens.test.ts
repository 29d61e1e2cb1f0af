// The token verifier against generated input: tokens signed by the trusted
// key with arbitrary claims decode to their claims or give an AuthError;
// arbitrary and mutated token text gives an AuthError, never anything else.
import t from 'tap';
import { deepStrictEqual } from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { AuthError, JwtVerifier, signToken, type TokenClaims } from '../../src/auth/jwt.js';
import { announceFuzz, checkProperty, decodesOrRefuses } from '../helpers/fuzz.js';

announceFuzz(t);

const NOW = 1_800_000_000;
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const verifier = JwtVerifier.fromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString(), { now: () => NOW });

const tenant = fc.stringMatching(/^[0-9a-f]{32}$/);
const anyJson = fc.jsonValue({ maxDepth: 2 });
/** Numbers a signer might put in exp/nbf: near now, far off, fractional, huge. */
const time = fc.oneof(fc.integer({ min: NOW - 1000, max: NOW + 1000 }), fc.double({ noNaN: true }), fc.constantFrom(1e20, -1e20, 8.64e15, 8.64e12 + 1, Number.MAX_VALUE, -0));
const claims: fc.Arbitrary<TokenClaims> = fc.record(
  {
    scope: fc.oneof(fc.constantFrom('tenant', 'safekeeperdata'), anyJson) as fc.Arbitrary<string>,
    tenant_id: fc.oneof(tenant, anyJson) as fc.Arbitrary<string>,
    exp: fc.oneof(time, anyJson) as fc.Arbitrary<number>,
    nbf: fc.oneof(time, anyJson) as fc.Arbitrary<number>,
  },
  { requiredKeys: [] },
) as fc.Arbitrary<TokenClaims>;

t.test('signed tokens with arbitrary claims: their claims, or an AuthError', async (t) => {
  checkProperty(
    t,
    'well-formed claims come back',
    fc.property(tenant, fc.integer({ min: NOW + 1, max: NOW + 10_000_000 }), (tn, exp) => {
      deepStrictEqual(verifier.verify(signToken({ scope: 'tenant', tenant_id: tn, exp }, privateKey)), { scope: 'tenant', tenantId: tn, exp });
    }),
  );
  checkProperty(t, 'arbitrary claims', fc.property(claims, (c) => decodesOrRefuses(() => verifier.verify(signToken(c, privateKey)), [AuthError], 64 * 1024)));
});

t.test('arbitrary and mutated tokens give an AuthError', async (t) => {
  const valid = claims.map((c) => signToken(c, privateKey));
  const b64 = fc.constantFrom('A', 'z', '-', '_', '.', '=', '+', '/', 'e', 'y', 'J');
  const mutated = fc.tuple(valid, fc.nat(), b64).map(([tok, at, ch]) => tok.slice(0, at % (tok.length + 1)) + ch + tok.slice((at % (tok.length + 1)) + 1));
  checkProperty(
    t,
    'hostile token text',
    fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: b64, maxLength: 200 }), mutated, fc.constant('a'.repeat(10_000))), (tok) =>
      decodesOrRefuses(() => verifier.verify(tok), [AuthError], 64 * 1024),
    ),
  );
});
