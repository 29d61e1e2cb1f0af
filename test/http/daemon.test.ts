// The admin API of a running daemon (`node bin/walkeeper.js run
// --auth-public-key ...`, keys and tokens made with `walkeeper token`), with
// a proposer pushing real WAL and a real pg_receivewal streaming it, checked
// through HTTP: the timeline's positions, proposer and reader, the metrics
// against what was pushed, and a forced DELETE that disconnects both.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatLsn, segmentFileName, segmentNumber } from '../../src/lsn.js';
import { pgBin, pgSpawnOptions, pgTempDir } from '../helpers/pg.js';
import { realWal, runCli, startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { electProposer, parseMetrics, pushWal, reportCommit, sampleValue } from './helpers.js';
import { until } from '../helpers/support.js';

t.test('a running daemon with a proposer and pg_receivewal, seen through the API', async (t) => {
  const wal = await realWal(t);
  const dir = tempDir(t, 'wk-http-e2e-');

  // Key pair and tokens through the CLI.
  const made = await runCli(['token', '--new-key-pair', join(dir, 'sk')]);
  t.equal(made.code, 0, made.stderr);
  const again = await runCli(['token', '--new-key-pair', join(dir, 'sk')]);
  t.equal(again.code, 1, 'an existing key pair is not overwritten');
  t.match(again.stderr, /already exists; not overwriting it/);
  const mint = async (...args: string[]): Promise<string> => {
    const r = await runCli(['token', '--private-key', join(dir, 'sk.private.pem'), ...args]);
    t.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const tenantToken = await mint('--tenant-id', TENANT, '--expires-in', '1h');
  const skToken = await mint('--scope', 'safekeeperdata');
  const otherToken = await mint('--tenant-id', 'ab'.repeat(16));
  const bad = await runCli(['token', '--private-key', join(dir, 'sk.private.pem'), '--scope', 'tenant']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, '--scope tenant needs --tenant-id');

  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const d = await startDaemon(t, { dataDir, noSync: true, args: ['--auth-public-key', join(dir, 'sk.public.pem'), '--id', '3'] });
  const ready = d.logs.find((l) => l.msg === 'walkeeper ready')!;
  t.equal(ready.auth, 'on (1 key)');
  const base = `http://127.0.0.1:${d.httpPort}`;
  const api = async (path: string, token: string | null = tenantToken, method = 'GET') => {
    const r = await fetch(base + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
    const text = await r.text();
    return { status: r.status, body: r.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text };
  };
  const tlPath = `/v1/tenant/${TENANT}/timeline/${TIMELINE}`;

  // The proposer pushes 2 MiB and reports it committed.
  const p = await electProposer(d.pgPort, wal, { password: tenantToken });
  t.teardown(() => p.client.close());
  const mid = wal.recordEnds.find((e) => e >= wal.startLsn + 2n * 1024n * 1024n)!;
  const first = await pushWal(p, wal, wal.startLsn, mid);
  await reportCommit(p, wal, mid, mid);

  // pg_receivewal follows the timeline, reporting every second.
  const out = pgTempDir('wk-http-recv-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const conninfo = `host=127.0.0.1 port=${d.pgPort} user=postgres application_name=recv-e2e options='-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}'`;
  const recv = spawn(pgBin('pg_receivewal'), ['-d', conninfo, '-D', out, '--no-loop', '--no-sync', '-w', '-s', '1', '-v'], {
    ...pgSpawnOptions({ env: { PGPASSWORD: tenantToken } }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let recvErr = '';
  recv.stderr!.on('data', (b: Buffer) => (recvErr += b.toString()));
  const recvExit = new Promise<number | null>((resolve) => recv.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (recv.exitCode === null) recv.kill('SIGKILL');
  });

  await until('the reader to report the commit position', async () => {
    const r = await api(tlPath);
    return r.body.readers?.[0]?.write_lsn === formatLsn(mid);
  });

  // Push 1 MiB more; the reader follows.
  const end = wal.recordEnds.find((e) => e >= mid + 1024n * 1024n)!;
  const second = await pushWal(p, wal, mid, end);
  await reportCommit(p, wal, end, end);
  await until('the reader to catch up', async () => (await api(tlPath)).body.readers?.[0]?.write_lsn === formatLsn(end));

  const s = await api(tlPath);
  t.equal(s.status, 200);
  t.equal(s.body.flush_lsn, formatLsn(end));
  t.equal(s.body.commit_lsn, formatLsn(end));
  t.equal(s.body.epoch, Number(p.nodeId.term));
  t.equal(s.body.vote.term, Number(p.nodeId.term));
  t.equal(s.body.server.system_id, wal.systemId.toString());
  t.equal(s.body.local_wal.first_segment, segmentFileName(1, segmentNumber(wal.startLsn, wal.segSize), wal.segSize));
  t.ok(s.body.local_wal.segments >= 3);
  const appends = first.appends + second.appends + 2;
  t.same(s.body.proposers.map((x: Record<string, unknown>) => [x.appends, x.wal_bytes]), [[appends, first.bytes + second.bytes]]);
  t.equal(s.body.readers.length, 1);
  const reader = s.body.readers[0];
  t.equal(reader.application_name, 'recv-e2e');
  t.match(reader.address, /^127\.0\.0\.1:\d+$/);
  t.equal(reader.sent_lsn, formatLsn(end));
  t.equal(reader.write_lsn, formatLsn(end));
  t.equal(reader.lag_bytes, 0);
  t.same(s.body.hot_standby_feedback, { ts: null, xmin: null, catalog_xmin: null }, 'pg_receivewal sends no hot standby feedback');

  // The node-wide list needs a safekeeperdata token.
  t.equal((await api('/v1/timelines')).status, 403);
  t.same((await api('/v1/timelines', skToken)).body.timelines.map((x: { flush_lsn: string }) => x.flush_lsn), [formatLsn(end)]);
  t.equal((await api(tlPath, otherToken)).status, 403);
  t.equal((await api(tlPath, null)).status, 401);
  const st = await api('/v1/status', null);
  t.same([st.status, st.body.id, st.body.timelines, st.body.auth], [200, 3, 1, true]);

  // WAL records through the API.
  const w = await api(`${tlPath}/wal?from=${formatLsn(mid)}&limit=3`);
  t.equal(w.status, 200);
  t.equal(w.body.records[0].lsn, formatLsn(mid), 'a record starts where the first push ended');
  t.equal(w.body.records.length, 3);

  // Metrics (open): counters against what was pushed.
  const m = await api('/metrics', null);
  t.equal(m.status, 200);
  const { samples } = parseMetrics(m.body);
  const tl = { tenant_id: TENANT, timeline_id: TIMELINE };
  t.equal(sampleValue(samples, 'walkeeper_wal_written_bytes_total', tl), first.bytes + second.bytes);
  t.equal(sampleValue(samples, 'walkeeper_wal_appends_total', tl), appends);
  t.equal(sampleValue(samples, 'walkeeper_flush_lsn', tl), Number(end));
  t.equal(sampleValue(samples, 'walkeeper_commit_lsn', tl), Number(end));
  t.equal(sampleValue(samples, 'walkeeper_connected_proposers', tl), 1);
  t.equal(sampleValue(samples, 'walkeeper_connected_readers', tl), 1);
  t.equal(sampleValue(samples, 'walkeeper_pg_connections'), 2);
  const syncs = sampleValue(samples, 'walkeeper_wal_syncs_total', tl)!;
  t.equal(sampleValue(samples, 'walkeeper_wal_sync_seconds_count', tl), syncs);
  t.ok(sampleValue(samples, 'process_resident_memory_bytes')! > 0);

  // DELETE: refused while the proposer is connected; forced, it disconnects proposer and reader.
  const refused = await api(tlPath, tenantToken, 'DELETE');
  t.equal(refused.status, 409);
  const del = await api(`${tlPath}?force=true`, tenantToken, 'DELETE');
  t.equal(del.status, 200, JSON.stringify(del.body));
  t.same(del.body.disconnected, { proposers: 1, connections: 2 });
  t.ok(del.body.removed.files.some((f: { name: string }) => f.name === 'safekeeper.control'));
  t.notOk(existsSync(join(dataDir, TENANT, TIMELINE)));
  const code = await recvExit;
  t.not(code, 0, 'pg_receivewal was disconnected');
  t.match(recvErr, /terminating connection: timeline \S+ is being deleted/);
  await t.rejects(p.client.nextResponse());
  t.equal((await api(tlPath)).status, 404);
  const after = parseMetrics((await api('/metrics', null)).body).samples;
  t.equal(sampleValue(after, 'walkeeper_timelines', { state: 'active' }), 0);

  const stopped = await d.stop();
  t.equal(stopped.code, 0);
});

t.test('--auth-public-key problems stop the start with one line', async (t) => {
  const dir = tempDir(t, 'wk-http-badkey-');
  const { writeFileSync } = await import('node:fs');
  const { generateKeyPairSync } = await import('node:crypto');
  writeFileSync(join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'junk.pem'), 'hello\n');
  const run = (key: string) => runCli(['run', '-D', dir, '--listen-pg', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', '--auth-public-key', key]);
  const cases: Array<[string, RegExp]> = [
    [join(dir, 'missing.pem'), /^walkeeper run: cannot read the auth public key \S+missing\.pem: no such file\n$/],
    [join(dir, 'rsa.pem'), /^walkeeper run: \S+rsa\.pem: key 1 is rsa, expected an Ed25519 public key\n$/],
    [join(dir, 'junk.pem'), /^walkeeper run: \S+junk\.pem: no PEM public key found\n$/],
  ];
  for (const [key, want] of cases) {
    const r = await run(key);
    t.equal(r.code, 1);
    t.match(r.stderr, want);
  }
  const help = await runCli(['run', '--help']);
  t.match(help.stdout, '--auth-public-key PATH');
});
