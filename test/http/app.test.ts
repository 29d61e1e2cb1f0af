// The admin API through inject(), on an in-process daemon holding a
// timeline of real WAL pushed by a ProposerClient: every route, every error
// reply, the metrics against what was pushed, the OpenAPI document against
// the routes the app serves.
import t from 'tap';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { Daemon } from '../../src/daemon/daemon.js';
import { build } from '../../src/http/app.js';
import { silentLogger } from '../../src/log.js';
import { formatLsn, parseLsn } from '../../src/lsn.js';
import { realWal, tempDir } from '../daemon/helpers.js';
import { electProposer, parseMetrics, pushWal, reportCommit, sampleValue, TENANT, TIMELINE } from './helpers.js';

const OTHER = 'c'.repeat(32);
const TL_PATH = `/v1/tenant/${TENANT}/timeline/${TIMELINE}`;

t.test('admin API over a live daemon', async (t) => {
  const wal = await realWal(t);
  const dataDir = tempDir(t, 'wk-http-');
  const daemon = await Daemon.start({
    dataDir,
    listenPg: { host: '127.0.0.1', port: 0 },
    listenHttp: { host: '127.0.0.1', port: 0 },
    id: 7,
    noSync: true,
    log: silentLogger(),
  });
  t.teardown(() => daemon.stop());
  const app = daemon.http!;
  const get = async (url: string) => {
    const r = await app.inject({ method: 'GET', url });
    return { status: r.statusCode, body: r.headers['content-type']?.toString().startsWith('application/json') ? r.json() : r.body, headers: r.headers };
  };

  // Push 3 MiB of real WAL in 64 KiB requests; keep the proposer connected.
  const p = await electProposer(daemon.pgAddress!.port, wal);
  t.teardown(() => p.client.close());
  const to = wal.recordEnds.find((e) => e >= wal.startLsn + 3n * 1024n * 1024n)!;
  const pushed = await pushWal(p, wal, wal.startLsn, to);
  await reportCommit(p, wal, to, to);
  const appends = pushed.appends + 1;

  t.test('GET /v1/status', async (t) => {
    const r = await get('/v1/status');
    t.equal(r.status, 200);
    t.equal(r.body.id, 7);
    t.equal(r.body.timelines, 1);
    t.equal(r.body.listen_pg, `127.0.0.1:${daemon.pgAddress!.port}`);
    t.equal(r.body.listen_http, `127.0.0.1:${daemon.httpAddress!.port}`);
    t.equal(r.body.auth, false);
    t.type(r.body.uptime_seconds, 'number');
    t.match(r.body.version, /^\d+\.\d+\.\d+/);
  });

  t.test('GET /v1/timelines', async (t) => {
    const r = await get('/v1/timelines');
    t.equal(r.status, 200);
    t.same(r.body, { timelines: [{ tenant_id: TENANT, timeline_id: TIMELINE, state: 'active', flush_lsn: formatLsn(to), commit_lsn: formatLsn(to) }] });
  });

  t.test('GET a timeline: vote, server, positions, local WAL, proposer', async (t) => {
    const r = await get(TL_PATH);
    t.equal(r.status, 200);
    const b = r.body;
    t.equal(b.tenant_id, TENANT);
    t.equal(b.timeline_id, TIMELINE);
    t.equal(b.state, 'active');
    t.equal(b.epoch, Number(p.nodeId.term), 'epoch switched to the leader');
    t.same(b.vote, { term: Number(p.nodeId.term), proposer_uuid: Buffer.from(p.nodeId.uuid).toString('hex') });
    t.same(b.server, { pg_version: 150018, system_id: wal.systemId.toString(), wal_seg_size: wal.segSize, pg_timeline: 1 });
    t.equal(b.flush_lsn, formatLsn(to));
    t.equal(b.commit_lsn, formatLsn(to));
    t.equal(b.restart_lsn, formatLsn(wal.startLsn));
    const dir = join(dataDir, TENANT, TIMELINE);
    const segs = readdirSync(dir).filter((f) => /^[0-9A-F]{24}(\.partial)?$/.test(f)).sort();
    t.same(b.local_wal, {
      first_segment: segs[0],
      last_segment: segs.at(-1),
      segments: segs.length,
      bytes: segs.reduce((n, f) => n + statSync(join(dir, f)).size, 0),
    });
    t.equal(b.proposers.length, 1);
    t.equal(b.proposers[0].appends, appends);
    t.equal(b.proposers[0].wal_bytes, pushed.bytes);
    t.match(b.proposers[0].address, /^127\.0\.0\.1:\d+$/);
    t.ok(Date.parse(b.proposers[0].since) <= Date.now());
    t.same(b.readers, []);
    t.same(b.hot_standby_feedback, { ts: null, xmin: null, catalog_xmin: null });
  });

  t.test('GET .../wal', async (t) => {
    const r = await get(`${TL_PATH}/wal?limit=5`);
    t.equal(r.status, 200);
    t.equal(r.body.records.length, 5);
    t.equal(r.body.more, true);
    t.equal(r.body.end_reason, 'limit');
    t.equal(r.body.wal_seg_size, wal.segSize);
    t.equal(r.body.from, formatLsn(wal.startLsn));
    const first = r.body.records[0];
    t.ok(parseLsn(first.lsn) >= wal.startLsn);
    t.same(Object.keys(first).sort(), ['crc_valid', 'info', 'lsn', 'prev', 'rmgr', 'rmgr_id', 'total_length', 'xid']);
    // The next page starts where this one ended.
    const next = await get(`${TL_PATH}/wal?limit=1&from=${r.body.next_lsn}`);
    t.equal(next.status, 200);
    t.ok(parseLsn(next.body.records[0].lsn) >= parseLsn(r.body.records[4].lsn), 'next page follows');
    // Listing stops at the durable end: the last records before `to`.
    const i = wal.recordEnds.indexOf(to);
    const tail = await get(`${TL_PATH}/wal?limit=10000&from=${formatLsn(wal.recordEnds[i - 3])}`);
    t.equal(tail.body.more, false);
    t.equal(tail.body.records.length, 3, 'the three records up to the durable end');
    t.equal(tail.body.next_lsn, formatLsn(to));
    t.ok(['zero-length', 'flush_lsn'].includes(tail.body.end_reason), tail.body.end_reason);
    const beyond = await get(`${TL_PATH}/wal?from=${formatLsn(to + 8192n)}`);
    t.same([beyond.status, beyond.body.records, beyond.body.end_reason], [200, [], 'flush_lsn']);
    const before = await get(`${TL_PATH}/wal?from=0/10`);
    t.equal(before.status, 400);
    t.match(before.body.message, /invalid query parameter from "0\/10": WAL before \S+ is not on this safekeeper's disk/);
  });

  t.test('bad ids and parameters: 400 saying what is wrong', async (t) => {
    const cases: Array<[string, string, RegExp]> = [
      ['GET', `/v1/tenant/xyz/timeline/${TIMELINE}`, /invalid path parameter tenant_id "xyz": expected 32 hex digits/],
      ['GET', `/v1/tenant/${TENANT}/timeline/${TIMELINE}0`, /invalid path parameter timeline_id "\w+": expected 32 hex digits/],
      ['GET', `/v1/tenant/..%2F..%2Fetc/timeline/${TIMELINE}/wal`, /invalid path parameter tenant_id "\.\.\/\.\.\/etc": expected 32 hex digits/],
      ['GET', `${TL_PATH}/wal?from=16B3748`, /invalid query parameter from "16B3748": expected an LSN as X\/Y/],
      ['GET', `${TL_PATH}/wal?from=0/123456789`, /invalid query parameter from "0\/123456789"/],
      ['GET', `${TL_PATH}/wal?limit=0`, /invalid query parameter limit "0": expected an integer from 1 to 10000/],
      ['GET', `${TL_PATH}/wal?limit=10001`, /invalid query parameter limit "10001": expected an integer from 1 to 10000/],
      ['GET', `${TL_PATH}/wal?limit=ten`, /invalid query parameter limit "ten": expected an integer from 1 to 10000/],
      ['GET', `${TL_PATH}/wal?limit=1&limit=2`, /invalid query parameter limit/],
      ['GET', `${TL_PATH}/wal?frm=0/0`, /unknown query parameter "frm"/],
      ['DELETE', `${TL_PATH}?force=maybe`, /invalid query parameter force "maybe": expected true or false/],
      ['DELETE', `${TL_PATH}?forced=true`, /unknown query parameter "forced"/],
    ];
    for (const [method, url, want] of cases) {
      const r = await app.inject({ method: method as 'GET', url });
      t.equal(r.statusCode, 400, `${method} ${url}`);
      t.equal(r.json().error, 'bad_request');
      t.match(r.json().message, want, r.json().message);
    }
  });

  t.test('unknown timeline or route: 404', async (t) => {
    for (const url of [`/v1/tenant/${OTHER}/timeline/${TIMELINE}`, `/v1/tenant/${TENANT}/timeline/${OTHER}/wal`]) {
      const r = await get(url);
      t.equal(r.status, 404);
      t.same(r.body, { error: 'not_found', message: `timeline ${url.split('/')[3]}/${url.split('/')[5]} not found on this safekeeper` });
    }
    const d = await app.inject({ method: 'DELETE', url: `/v1/tenant/${OTHER}/timeline/${TIMELINE}` });
    t.equal(d.statusCode, 404);
    const nr = await get('/v1/nothing');
    t.same([nr.status, nr.body.error], [404, 'not_found']);
  });

  t.test('GET /metrics: counters match what was pushed', async (t) => {
    const r = await app.inject({ method: 'GET', url: '/metrics' });
    t.equal(r.statusCode, 200);
    t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseMetrics(r.body);
    const tl = { tenant_id: TENANT, timeline_id: TIMELINE };
    t.equal(sampleValue(samples, 'walkeeper_flush_lsn', tl), Number(to));
    t.equal(sampleValue(samples, 'walkeeper_commit_lsn', tl), Number(to));
    t.equal(sampleValue(samples, 'walkeeper_wal_written_bytes_total', tl), pushed.bytes);
    t.equal(sampleValue(samples, 'walkeeper_wal_appends_total', tl), appends);
    t.equal(sampleValue(samples, 'walkeeper_connected_proposers', tl), 1);
    t.equal(sampleValue(samples, 'walkeeper_connected_readers', tl), 0);
    const syncs = sampleValue(samples, 'walkeeper_wal_syncs_total', tl)!;
    t.ok(syncs >= 1 && syncs <= appends, `${syncs} syncs for ${appends} appends`);
    t.equal(sampleValue(samples, 'walkeeper_wal_sync_seconds_count', tl), syncs, 'one latency observation per sync');
    t.equal(sampleValue(samples, 'walkeeper_wal_sync_seconds_bucket', { ...tl, le: '+Inf' }), syncs);
    t.equal(types.get('walkeeper_wal_sync_seconds'), 'histogram');
    t.equal(types.get('walkeeper_wal_appends_total'), 'counter');
    // The WAL crossed segments: each next one was either made ahead of time or needed before it was ready.
    const made = sampleValue(samples, 'walkeeper_wal_segments_preallocated_total', tl)!;
    const missed = sampleValue(samples, 'walkeeper_wal_segment_preallocation_misses_total', tl)!;
    t.ok(made + missed >= 1, `segments preallocated: ${made}, misses: ${missed}`);
    t.equal(sampleValue(samples, 'walkeeper_timelines', { state: 'active' }), 1);
    t.equal(sampleValue(samples, 'walkeeper_pg_connections'), 1);
    t.ok(sampleValue(samples, 'walkeeper_pg_connections_accepted_total')! >= 1);
    t.ok(sampleValue(samples, 'walkeeper_errors_total', { kind: 'bad_request', source: 'http' })! >= 12, 'the 400s above were counted');
    t.ok(sampleValue(samples, 'process_cpu_user_seconds_total')! > 0, 'process metrics');
    t.ok(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'));
  });

  t.test('DELETE: 409 while the proposer is connected, then forced', async (t) => {
    const refused = await app.inject({ method: 'DELETE', url: TL_PATH });
    t.equal(refused.statusCode, 409);
    t.equal(refused.json().error, 'conflict');
    t.match(refused.json().message, /has a connected proposer \(127\.0\.0\.1:\d+\); add \?force=true/);
    t.ok(existsSync(join(dataDir, TENANT, TIMELINE)), 'nothing removed');

    const dir = join(dataDir, TENANT, TIMELINE);
    // The next segment being made ahead of time is removed when the timeline closes, before the deletion.
    const files = readdirSync(dir)
      .filter((f) => !f.startsWith('prealloc.'))
      .sort();
    const bytes = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    const forced = await app.inject({ method: 'DELETE', url: `${TL_PATH}?force=true` });
    t.equal(forced.statusCode, 200, forced.body);
    const b = forced.json();
    t.equal(b.dir_existed, true);
    t.same(b.removed.files.map((f: { name: string }) => f.name), files);
    t.equal(b.removed.bytes, bytes);
    t.same(b.disconnected, { proposers: 1, connections: 1 });
    t.notOk(existsSync(dir), 'directory gone');
    t.notOk(existsSync(join(dataDir, TENANT)), 'empty tenant directory gone');
    t.same(readdirSync(dataDir).filter((f) => f.includes('deleting')), [], 'no renamed leftovers');
    await t.rejects(p.client.nextResponse(), 'the proposer was disconnected');
    t.equal((await get(TL_PATH)).status, 404);
    t.same((await get('/v1/timelines')).body, { timelines: [] });
    const m = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body);
    t.equal(sampleValue(m.samples, 'walkeeper_flush_lsn', { tenant_id: TENANT }), undefined, 'its series are gone');
    t.equal(sampleValue(m.samples, 'walkeeper_wal_sync_seconds_count', { tenant_id: TENANT }), undefined);
    t.equal(sampleValue(m.samples, 'walkeeper_errors_total', { kind: 'shutdown', source: 'pg' }), 1, 'the FATAL sent to the proposer');

    // The timeline can be created again by a new proposer.
    const p2 = await electProposer(daemon.pgAddress!.port, wal);
    t.teardown(() => p2.client.close());
    t.equal(p2.greeting.flushLsn, 0n, 'a fresh timeline');
    const r = await pushWal(p2, wal, wal.startLsn, wal.recordEnds[10]);
    t.equal(r.acked, wal.recordEnds[10]);
    const again = await app.inject({ method: 'DELETE', url: `${TL_PATH}?force=true` });
    t.equal(again.statusCode, 200);
  });
});

t.test('OpenAPI document: every route the app serves, with its schemas', async (t) => {
  const routes: RouteOptions[] = [];
  const app: FastifyInstance = build({ status: () => ({ id: 1, version: '0', startedAt: Date.now(), listenPg: null, listenHttp: null, timelines: () => 0 }), node: fakeNode() });
  app.addHook('onRoute', (r) => {
    routes.push(r);
  });
  await app.ready();
  t.teardown(() => app.close());
  const r = await app.inject({ method: 'GET', url: '/openapi.json' });
  t.equal(r.statusCode, 200);
  const doc = r.json();
  t.equal(doc.openapi, '3.1.0');
  t.equal(doc.info.title, 'walkeeper admin API');
  const served = new Set<string>();
  for (const route of routes) {
    for (const m of [route.method].flat()) if (m !== 'HEAD') served.add(`${m.toLowerCase()} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
  }
  const documented = new Set<string>();
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) for (const m of Object.keys(ops)) documented.add(`${m} ${path}`);
  t.same([...documented].sort(), [...served].sort(), 'documented = served');
  t.same([...served].sort(), [
    'delete /v1/tenant/{tenant_id}/timeline/{timeline_id}',
    'get /metrics',
    'get /openapi.json',
    'get /v1/status',
    'get /v1/tenant/{tenant_id}/timeline/{timeline_id}',
    'get /v1/tenant/{tenant_id}/timeline/{timeline_id}/file/{name}',
    'get /v1/tenant/{tenant_id}/timeline/{timeline_id}/wal',
    'get /v1/timelines',
  ]);
  const wal = doc.paths['/v1/tenant/{tenant_id}/timeline/{timeline_id}/wal'].get;
  const params = Object.fromEntries(wal.parameters.map((p: { name: string; in: string }) => [p.name, p.in]));
  t.same(params, { tenant_id: 'path', timeline_id: 'path', from: 'query', limit: 'query' });
  t.same(Object.keys(wal.responses).sort(), ['200', '400', '401', '403', '404', '503']);
  t.same(wal.security, [{ bearer: [] }], 'tenant routes need a token');
  t.equal(doc.paths['/v1/status'].get.security, undefined, '/v1/status is open');
  t.ok(doc.components.securitySchemes.bearer);
});

/** A node with no timelines, for the route list. */
function fakeNode() {
  return {
    registry: { list: () => [], get: () => undefined, broken: new Map(), root: '/nonexistent' } as never,
    readers: () => [],
    closeConnections: async () => 0,
  };
}

t.test('a timeline that could not be loaded: listed as broken, 503, deletable', async (t) => {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const dataDir = tempDir(t, 'wk-http-broken-');
  mkdirSync(join(dataDir, TENANT, TIMELINE), { recursive: true });
  writeFileSync(join(dataDir, TENANT, TIMELINE, 'safekeeper.control'), Buffer.alloc(64, 0x5a));
  const daemon = await Daemon.start({ dataDir, listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: { host: '127.0.0.1', port: 0 }, noSync: true, log: silentLogger() });
  t.teardown(() => daemon.stop());
  const app = daemon.http!;
  const list = (await app.inject({ method: 'GET', url: '/v1/timelines' })).json();
  t.same(list.timelines, [{ tenant_id: TENANT, timeline_id: TIMELINE, state: 'broken', flush_lsn: null, commit_lsn: null }]);
  for (const url of [TL_PATH, `${TL_PATH}/wal`]) {
    const r = await app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 503, url);
    t.equal(r.json().error, 'unavailable');
    t.match(r.json().message, `timeline ${TENANT}/${TIMELINE} could not be loaded: `);
  }
  const m = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body).samples;
  t.equal(sampleValue(m, 'walkeeper_timelines', { state: 'broken' }), 1);
  const d = await app.inject({ method: 'DELETE', url: TL_PATH });
  t.equal(d.statusCode, 200);
  t.same(d.json().removed.files, [{ name: 'safekeeper.control', bytes: 64 }]);
  t.same((await app.inject({ method: 'GET', url: '/v1/timelines' })).json().timelines, []);
});

t.test('reader and feedback views', async (t) => {
  const { readerView, feedbackView } = await import('../../src/http/node.js');
  // 2000-01-01 + 1 s, full xids
  t.same(feedbackView({ ts: 1_000_000n, xmin: (1n << 32n) | 800n, catalogXmin: 0xffff_ffff_ffff_ffffn }), { ts: '2000-01-01T00:00:01.000Z', xmin: 4294968096, catalog_xmin: null });
  const snap = {
    id: 1,
    applicationName: 'standby1',
    address: '10.0.0.2:5000',
    startLsn: 0x1000000n,
    timeline: 1,
    attachedAt: new Date(0),
    sentLsn: 0x1800000n,
    status: { writeLsn: 0x1700000n, flushLsn: 0x1600000n, applyLsn: 0n, clientTime: 0n },
    replicatedLsn: 0x1600000n,
    feedback: null,
  };
  t.same(readerView(snap, 0x1800000n), {
    application_name: 'standby1',
    address: '10.0.0.2:5000',
    since: '1970-01-01T00:00:00.000Z',
    slot_name: null,
    pg_timeline: 1,
    start_lsn: '0/1000000',
    sent_lsn: '0/1800000',
    write_lsn: '0/1700000',
    flush_lsn: '0/1600000',
    apply_lsn: null,
    lag_bytes: 0x200000,
    hot_standby_feedback: null,
  });
  t.equal(readerView({ ...snap, status: null, replicatedLsn: 0n }, 0x1900000n).lag_bytes, 0x100000, 'before its first report: against what was sent');
});

t.test('auth off on a non-loopback listener: a warning', async (t) => {
  const { pino } = await import('pino');
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const daemon = await Daemon.start({ dataDir: tempDir(t), listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: { host: '0.0.0.0', port: 0 }, noSync: true, log });
  t.teardown(() => daemon.stop());
  const w = lines.find((l) => /authentication is off/.test(String(l.msg)));
  t.ok(w, 'warned');
  t.match(w?.listen, [/^0\.0\.0\.0:\d+$/]);
});
