// Auth on the PostgreSQL-protocol port: the token is the password. A token
// that cannot be trusted is refused as a wrong password (28P01); a genuine
// token of another tenant or scope is refused as pg_hba.conf would (28000).
// A tenant A token cannot push (ProposerClient), stream (real pg_receivewal)
// or query (psql) tenant B; it can do all three on tenant A.
import t from 'tap';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, segmentFileName, segmentNumber } from '../../src/lsn.js';
import { PgServerError, ProposerClient } from '../../src/proposer/index.js';
import { realWal, serverInfo, startInProcessDaemon, tempDir } from '../daemon/helpers.js';
import { pgTempDir, runPg } from '../helpers/pg.js';
import { electProposer, makeKeys, parseMetrics, pushWal, reportCommit, sampleValue } from '../http/helpers.js';
import { errorFields, RawClient, startupPacket, tagged } from '../pq/raw-client.js';

const A = 'aa'.repeat(16);
const B = 'bb'.repeat(16);
const TL = '22'.repeat(16);

t.test('pg port: push, stream and query only with the right token', async (t) => {
  const wal = await realWal(t);
  const dir = tempDir(t, 'wk-auth-pg-');
  const keys = makeKeys(dir);
  const foreign = makeKeys(dir, 'foreign');
  const daemon = await startInProcessDaemon(t, join(dir, 'data'), { authPublicKeyPath: keys.publicPath });
  const port = daemon.pgAddress!.port;
  const now = Math.floor(Date.now() / 1000);
  const tokenA = keys.token({ scope: 'tenant', tenant_id: A, exp: now + 600 });
  const tokenB = keys.token({ scope: 'tenant', tenant_id: B });
  const sk = keys.token({ scope: 'safekeeperdata' });
  const [h, , s] = tokenA.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ scope: 'tenant', tenant_id: B, exp: now + 600 })).toString('base64url')}.${s}`;
  const expired = keys.token({ scope: 'tenant', tenant_id: A, exp: now - 5 });

  /** The SQLSTATE a ProposerClient connection gets (or "ok"). */
  const connectAs = async (tenantId: string, password: string | undefined): Promise<string> => {
    try {
      const c = await ProposerClient.connect({ host: '127.0.0.1', port, tenantId, timelineId: TL, password });
      c.close();
      return 'ok';
    } catch (err) {
      if (err instanceof PgServerError) return `${err.code} ${err.message}`;
      return `client: ${(err as Error).message}`;
    }
  };

  t.test('start-up', async (t) => {
    t.equal(await connectAs(A, tokenA), 'ok');
    t.equal(await connectAs(A, sk), 'ok');
    t.match(await connectAs(B, tokenA), `28000 connection refused: the token is for tenant ${A}, not for tenant ${B}`);
    t.match(await connectAs(A, tampered), /^28P01 password authentication failed for user "walproposer"/);
    t.match(await connectAs(A, expired), /^28P01 /);
    t.match(await connectAs(A, 'not-a-token'), /^28P01 /);
    t.match(await connectAs(A, ''), /^28P01 /);
    t.match(await connectAs(A, foreign.token({ scope: 'safekeeperdata' })), /^28P01 /);
    t.match(await connectAs(A, keys.token({ scope: 'pageserverapi' })), /^28000 connection refused: a token with scope "pageserverapi" is not accepted/);
    t.match(await connectAs(A, keys.token({ scope: 'tenant' })), /^28000 .*must carry a tenant_id/);
    t.match(await connectAs(A, undefined), /^client: .*asks for a password and none was given/);

    // A tenant token on a connection that names no tenant is refused (it could otherwise pick any tenant later).
    const raw = await RawClient.connect(port);
    raw.write(startupPacket({ user: 'x' }));
    t.equal((await raw.read())?.tag, 'R', 'AuthenticationCleartextPassword');
    raw.write(tagged('p', Buffer.from(`${tokenA}\0`)));
    const m = await raw.read();
    const f = errorFields(m!.body);
    t.same([m!.tag, f.S, f.C], ['E', 'FATAL', '28000']);
    t.match(f.M, 'a tenant token must name its tenant');
    await raw.expectClosed();
  });

  // Tenant B gets WAL through a safekeeperdata token; tenant A through its own.
  const end = wal.recordEnds[400];
  const pB = await electProposer(port, wal, { tenantId: B, timelineId: TL, password: sk });
  await pushWal(pB, wal, wal.startLsn, end);
  await reportCommit(pB, wal, end, end);
  pB.client.close();
  const pA = await electProposer(port, wal, { tenantId: A, timelineId: TL, password: tokenA });
  await pushWal(pA, wal, wal.startLsn, end);
  await reportCommit(pA, wal, end, end);

  t.test('push: a tenant A token cannot push tenant B', async (t) => {
    await t.rejects(electProposer(port, wal, { tenantId: B, timelineId: TL, password: tokenA }), { code: '28000' });
    // Named A at start-up, ServerInfo for B: the session refuses it.
    const c = await ProposerClient.connect({ host: '127.0.0.1', port, tenantId: A, timelineId: TL, password: tokenA });
    t.teardown(() => c.close());
    await c.startWalPush();
    await t.rejects(c.greet(serverInfo(wal, 1n, { tenantId: Uint8Array.from(Buffer.from(B, 'hex')), timelineId: Uint8Array.from(Buffer.from(TL, 'hex')) })), {
      code: '22023',
      message: new RegExp(`ServerInfo names timeline ${B}/${TL} but the connection was opened for ${A}/${TL}`),
    });
    t.equal(daemon.registry.get({ tenantId: B, timelineId: TL })!.syncedLsn, end, "tenant B's WAL unchanged");
  });

  const conninfo = (tenant: string) => `host=127.0.0.1 port=${port} user=postgres options='-c ztenantid=${tenant} -c ztimelineid=${TL}'`;

  t.test('stream: pg_receivewal with a tenant A token reads A, not B', async (t) => {
    const refused = await runPg('pg_receivewal', ['-d', conninfo(B), '-D', pgTempDir(), '--no-loop', '-w'], { env: { PGPASSWORD: tokenA }, timeoutMs: 30_000 });
    t.not(refused.code, 0);
    t.match(refused.stderr, `connection refused: the token is for tenant ${A}, not for tenant ${B}`);
    const bad = await runPg('pg_receivewal', ['-d', conninfo(A), '-D', pgTempDir(), '--no-loop', '-w'], { env: { PGPASSWORD: expired }, timeoutMs: 30_000 });
    t.not(bad.code, 0);
    t.match(bad.stderr, 'password authentication failed for user "postgres"');

    const out = pgTempDir('wk-auth-recv-');
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const ok = await runPg('pg_receivewal', ['-d', conninfo(A), '-D', out, '--no-loop', '--no-sync', '-w', '-E', formatLsn(end - 1n)], {
      env: { PGPASSWORD: tokenA },
      timeoutMs: 60_000,
    });
    t.equal(ok.code, 0, ok.stderr);
    const names = readdirSync(out);
    t.ok(names.some((n) => n.startsWith(segmentFileName(1, segmentNumber(end, wal.segSize), wal.segSize))), `received ${names.join(', ')}`);
  });

  t.test('query: psql IDENTIFY_SYSTEM per token', async (t) => {
    const psql = (tenant: string, password: string) =>
      runPg('/usr/bin/psql', ['-X', '-At', '-w', '-d', `${conninfo(tenant)} replication=true`, '-c', 'IDENTIFY_SYSTEM'], { env: { PGPASSWORD: password } });
    const a = await psql(A, tokenA);
    t.equal(a.code, 0, a.stderr);
    t.equal(a.stdout.trim(), `${wal.systemId}|1|${formatLsn(end)}|`);
    const b = await psql(B, tokenA);
    t.not(b.code, 0);
    t.match(b.stderr, 'connection refused');
    t.equal((await psql(B, tokenB)).code, 0);
    t.equal((await psql(B, sk)).code, 0);
  });

  t.test('auth failures are counted', async (t) => {
    const m = parseMetrics((await daemon.http!.inject({ method: 'GET', url: '/metrics', headers: {} })).body).samples;
    t.equal(sampleValue(m, 'walkeeper_errors_total', { kind: 'auth_failed', source: 'pg' }), 6, 'tampered, expired (twice), not a token, empty, foreign key');
    t.equal(sampleValue(m, 'walkeeper_errors_total', { kind: 'auth_refused', source: 'pg' }), 7, 'other tenant (4 times), other scope, no tenant_id, no tenant named');
  });
  pA.client.close();
});
