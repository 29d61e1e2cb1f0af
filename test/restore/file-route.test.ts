// GET /v1/tenant/:t/timeline/:tl/file/:name on a daemon with auth on, and
// `walkeeper restore-wal --safekeepers` against it: complete segments and
// history files are served byte for byte with their SHA-256; a segment that
// is still `.partial` is a 404 (restore-wal: exit 1); names that are not
// WAL file names are a 400 and never reach the filesystem; a refused token
// is not "missing" (restore-wal: > 125).
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sha256Hex } from '../../src/archive/object-format.js';
import { EXIT_UNAVAILABLE } from '../../src/commands/restore-wal.js';
import { segmentFileName } from '../../src/lsn.js';
import { realWal, runCli, startInProcessDaemon, tempDir } from '../daemon/helpers.js';
import { electProposer, makeKeys, pushWal, TENANT, TIMELINE } from '../http/helpers.js';

const OTHER_TENANT = 'bb'.repeat(16);
const HISTORY = '00000002.history';
const HISTORY_TEXT = Buffer.from('1\t0/3000000\tno recovery target specified\n');

t.test('file route and restore-wal from a safekeeper', async (t) => {
  const wal = await realWal(t);
  const dir = tempDir(t, 'wk-file-route-');
  const keys = makeKeys(dir);
  const daemon = await startInProcessDaemon(t, join(dir, 'data'), { authPublicKeyPath: keys.publicPath });
  const sk = keys.token({ scope: 'safekeeperdata' });
  const p = await electProposer(daemon.pgAddress!.port, wal, { password: sk });
  // Segments 0-2 complete, segment 3 half written (.partial).
  const firstSegno = wal.startLsn / BigInt(wal.segSize);
  await pushWal(p, wal, wal.startLsn, wal.startLsn + BigInt(3 * wal.segSize + wal.segSize / 2));
  const name = (i: number) => segmentFileName(1, firstSegno + BigInt(i), wal.segSize);
  const bytes = (i: number) => wal.bytes.subarray(i * wal.segSize, (i + 1) * wal.segSize);
  const tlDir = join(dir, 'data', TENANT, TIMELINE);
  t.ok(existsSync(join(tlDir, `${name(3)}.partial`)), 'segment 3 is .partial on disk');
  writeFileSync(join(tlDir, HISTORY), HISTORY_TEXT);

  const base = `http://127.0.0.1:${daemon.httpAddress!.port}`;
  const tokenA = keys.token({ scope: 'tenant', tenant_id: TENANT });
  const tokenB = keys.token({ scope: 'tenant', tenant_id: OTHER_TENANT });
  const get = (file: string, token: string | null = tokenA, tenant = TENANT) =>
    fetch(`${base}/v1/tenant/${tenant}/timeline/${TIMELINE}/file/${file}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  t.test('the route', async (t) => {
    for (const i of [0, 2]) {
      const r = await get(name(i));
      t.equal(r.status, 200, `${name(i)}: 200`);
      t.equal(r.headers.get('content-type'), 'application/octet-stream');
      const body = Buffer.from(await r.arrayBuffer());
      t.ok(body.equals(bytes(i)), `${name(i)}: bytes identical to the WAL pushed`);
      t.equal(r.headers.get('x-walkeeper-sha256'), sha256Hex(bytes(i)), 'x-walkeeper-sha256 is the SHA-256 of the bytes');
    }
    const h = await get(HISTORY);
    t.equal(h.status, 200);
    t.ok(Buffer.from(await h.arrayBuffer()).equals(HISTORY_TEXT), 'history file served');

    for (const [file, what] of [
      [name(3), 'a segment that is only .partial'],
      [name(7), 'a segment that is not here'],
      ['00000003.history', 'a history file that is not here'],
    ] as const) {
      const r = await get(file);
      t.equal(r.status, 404, `${what}: 404`);
      t.match(await r.json(), { error: 'not_found', message: /not on this safekeeper/ });
    }
    const unknown = await fetch(`${base}/v1/tenant/${TENANT}/timeline/${'cd'.repeat(16)}/file/${name(0)}`, { headers: { authorization: `Bearer ${tokenA}` } });
    t.equal(unknown.status, 404, 'unknown timeline: 404');

    for (const bad of [`${name(3)}.partial`, '..%2F..%2F..%2Fetc%2Fpasswd', '0000000100000000000000ab', 'control', '%2Fetc%2Fpasswd', '00000002.history.tmp']) {
      const r = await get(bad);
      t.equal(r.status, 400, `"${decodeURIComponent(bad)}": 400`);
      t.match(await r.json(), { error: 'bad_request', message: /invalid path parameter name/ });
    }

    t.equal((await get(name(0), null)).status, 401, 'no token: 401');
    t.equal((await get(name(0), tokenB)).status, 403, "another tenant's token: 403");
    t.equal((await get(name(0), sk)).status, 200, 'a safekeeperdata token: 200');
  });

  t.test('restore-wal --safekeepers', async (t) => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${tokenA}\n`);
    const badTokenFile = join(dir, 'token-b');
    writeFileSync(badTokenFile, tokenB);
    let n = 0;
    const restore = async (file: string, token: string | null, extra: string[] = []) => {
      const out = join(dir, `pg_wal-${++n}`);
      mkdirSync(out);
      const target = join(out, 'RECOVERYXLOG');
      const args = ['restore-wal', file, target, '--tenant', TENANT, '--timeline', TIMELINE, '--prefetch', '0', '--safekeepers', `127.0.0.1:${daemon.httpAddress!.port}`, ...extra];
      if (token) args.push('--auth-token-file', token);
      const r = await runCli(args, { timeoutMs: 60_000 });
      return { ...r, files: readdirSync(out), bytes: existsSync(target) ? readFileSync(target) : null };
    };
    const ok = await restore(name(1), tokenFile);
    t.equal(ok.code, 0, ok.stderr);
    t.ok(ok.bytes?.equals(bytes(1)), 'delivered byte for byte');
    const hist = await restore(HISTORY, tokenFile);
    t.equal(hist.code, 0, hist.stderr);
    const partial = await restore(name(3), tokenFile);
    t.equal(partial.code, 1, `only .partial on the safekeeper: exit 1 (${partial.stderr.trim()})`);
    t.same(partial.files, [], 'nothing written');
    const missingHistory = await restore('00000003.history', tokenFile);
    t.equal(missingHistory.code, 1, 'a missing history file: exit 1');
    const noToken = await restore(name(1), null);
    t.equal(noToken.code, EXIT_UNAVAILABLE, `no token: not "missing" (${noToken.stderr.trim()})`);
    t.match(noToken.stderr, /HTTP 401/);
    const wrongTenant = await restore(name(1), badTokenFile);
    t.equal(wrongTenant.code, EXIT_UNAVAILABLE, `another tenant's token: not "missing"`);
    t.same(wrongTenant.files, []);
  });
});
