// HTTP auth matrix on an in-process daemon started with an auth public key:
// every route × {no token, malformed, expired, tampered, foreign key,
// other scope, tenant A, tenant B, safekeeperdata}. Open routes stay open;
// a token that cannot be trusted is 401; a genuine token of the wrong
// scope or tenant is 403; a tenant A token never reads or deletes tenant B.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { realWal, startInProcessDaemon, tempDir } from '../daemon/helpers.js';
import { electProposer, makeKeys, parseMetrics, pushWal, sampleValue } from '../http/helpers.js';

const A = 'aa'.repeat(16);
const B = 'bb'.repeat(16);
const TL = '11'.repeat(16);

t.test('HTTP: who may do what', async (t) => {
  const wal = await realWal(t);
  const dir = tempDir(t, 'wk-auth-http-');
  const keys = makeKeys(dir);
  const foreign = makeKeys(dir, 'foreign');
  const dataDir = join(dir, 'data');
  const daemon = await startInProcessDaemon(t, dataDir, { authPublicKeyPath: keys.publicPath });
  const sk = keys.token({ scope: 'safekeeperdata' });
  // A timeline for each tenant, pushed with a safekeeperdata token.
  for (const tenantId of [A, B]) {
    const p = await electProposer(daemon.pgAddress!.port, wal, { tenantId, timelineId: TL, password: sk });
    await pushWal(p, wal, wal.startLsn, wal.recordEnds[50]);
    await p.client.endStream();
    p.client.close();
  }

  const now = Math.floor(Date.now() / 1000);
  const tokenA = keys.token({ scope: 'tenant', tenant_id: A, exp: now + 600 });
  const [h, , s] = tokenA.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ scope: 'tenant', tenant_id: B, exp: now + 600 })).toString('base64url')}.${s}`;
  const auth: Record<string, string | undefined> = {
    none: undefined,
    basic: 'Basic dXNlcjpwdw==',
    garbage: 'Bearer not.a.token',
    expired: `Bearer ${keys.token({ scope: 'tenant', tenant_id: A, exp: now - 1 })}`,
    tampered: `Bearer ${tampered}`,
    foreignKey: `Bearer ${foreign.token({ scope: 'safekeeperdata' })}`,
    otherScope: `Bearer ${keys.token({ scope: 'pageserverapi' })}`,
    tenantNoId: `Bearer ${keys.token({ scope: 'tenant' })}`,
    tenantA: `Bearer ${tokenA}`,
    tenantB: `Bearer ${keys.token({ scope: 'tenant', tenant_id: B })}`,
    sk: `Bearer ${sk}`,
  };
  const untrusted = ['none', 'basic', 'garbage', 'expired', 'tampered', 'foreignKey'];
  const forAll = (status: number) => Object.fromEntries(Object.keys(auth).map((k) => [k, status]));
  const tenantRoute = (tenant: string) => ({
    ...forAll(403),
    ...Object.fromEntries(untrusted.map((k) => [k, 401])),
    sk: 200,
    [tenant === A ? 'tenantA' : 'tenantB']: 200,
  });

  const matrix: Array<[string, string, Record<string, number>]> = [
    ['GET', '/v1/status', forAll(200)],
    ['GET', '/metrics', forAll(200)],
    ['GET', '/openapi.json', forAll(200)],
    ['GET', '/v1/timelines', { ...forAll(403), ...Object.fromEntries(untrusted.map((k) => [k, 401])), sk: 200 }],
    ['GET', `/v1/tenant/${A}/timeline/${TL}`, tenantRoute(A)],
    ['GET', `/v1/tenant/${B}/timeline/${TL}`, tenantRoute(B)],
    ['GET', `/v1/tenant/${A}/timeline/${TL}/wal?limit=1`, tenantRoute(A)],
    ['GET', `/v1/tenant/${B}/timeline/${TL}/wal?limit=1`, tenantRoute(B)],
  ];
  for (const [method, url, want] of matrix) {
    const got: Record<string, number> = {};
    for (const [who, header] of Object.entries(auth)) {
      const r = await daemon.http!.inject({ method: method as 'GET', url, headers: header ? { authorization: header } : {} });
      got[who] = r.statusCode;
      if (r.statusCode === 401) {
        t.match(r.headers['www-authenticate'], /^Bearer realm="walkeeper"/, `${who} ${url}: WWW-Authenticate`);
        t.equal(r.json().error, 'unauthorized');
      }
      if (r.statusCode === 403) t.equal(r.json().error, 'forbidden');
    }
    t.same(got, want, `${method} ${url}`);
  }

  // Messages say why.
  const msg = async (header: string | undefined, url = `/v1/tenant/${B}/timeline/${TL}`) =>
    (await daemon.http!.inject({ method: 'GET', url, headers: header ? { authorization: header } : {} })).json().message as string;
  t.match(await msg(undefined), /missing Authorization header/);
  t.match(await msg(auth.basic), /malformed Authorization header/);
  t.match(await msg(auth.expired), /token expired at/);
  t.match(await msg(auth.tampered), /invalid token signature/);
  t.match(await msg(auth.tenantA), `the token is for tenant ${A}, not for tenant ${B}`);
  t.match(await msg(auth.tenantA, '/v1/timelines'), /needs a token with scope "safekeeperdata"/);

  // No token: 401 comes before parameter checks (nothing about the request is revealed).
  t.equal((await daemon.http!.inject({ method: 'GET', url: `/v1/tenant/zz/timeline/${TL}` })).statusCode, 401);
  // With a token, a bad id is still a 400.
  t.equal((await daemon.http!.inject({ method: 'GET', url: `/v1/tenant/zz/timeline/${TL}`, headers: { authorization: auth.sk! } })).statusCode, 400);

  // DELETE: tenant A cannot delete tenant B's timeline; tenant B can.
  const del = (tenant: string, who: string) => daemon.http!.inject({ method: 'DELETE', url: `/v1/tenant/${tenant}/timeline/${TL}`, headers: { authorization: auth[who]! } });
  t.equal((await del(B, 'tenantA')).statusCode, 403);
  t.equal((await del(B, 'expired')).statusCode, 401);
  t.ok(existsSync(join(dataDir, B, TL)), "tenant B's timeline is still there");
  t.equal((await del(B, 'tenantB')).statusCode, 200);
  t.notOk(existsSync(join(dataDir, B, TL)));
  t.ok(existsSync(join(dataDir, A, TL)), "tenant A's timeline untouched");

  const m = parseMetrics((await daemon.http!.inject({ method: 'GET', url: '/metrics' })).body).samples;
  t.ok(sampleValue(m, 'walkeeper_errors_total', { kind: 'unauthorized', source: 'http' })! >= 20);
  t.ok(sampleValue(m, 'walkeeper_errors_total', { kind: 'forbidden', source: 'http' })! >= 10);
  const status = (await daemon.http!.inject({ method: 'GET', url: '/v1/status' })).json();
  t.equal(status.auth, true);
});
