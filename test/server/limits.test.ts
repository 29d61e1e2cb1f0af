// The listener's limits against a daemon (`walkeeper run --max-connections 6
// --startup-timeout 2s`): a flood of idle connections beyond the limit gets
// FATAL 53300, idle and dribbling (slow-loris) clients are dropped after the
// start-up timeout, an over-long query gets ERROR 54000 and the session goes
// on; meanwhile a proposer keeps committing and a reader keeps streaming.
// On HTTP, an oversized body gets a JSON 413.
import t, { type Test } from 'tap';
import type { Lsn } from '../../src/lsn.js';
import { startDaemon, tempDir, TENANT, TIMELINE, type DaemonProc } from '../daemon/helpers.js';
import { errorFields, query, RawClient, startupPacket, tagged } from '../pq/raw-client.js';
import { connectPusher, lsnText, metrics, MiB, pushRange, synthWal, type Pusher } from '../archive/daemon-helpers.js';
import type { RealWal } from '../daemon/helpers.js';
import { sleep, until } from '../helpers/support.js';
import { OVER_LIMIT_BACKLOG } from '../../src/server/limits.js';

const MAX = 6;
const OPTIONS = `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}`;

/** A reader streaming from `from` in the background; `pos` is the end of the WAL received so far. */
async function startReader(d: DaemonProc, from: Lsn): Promise<{ pos: () => Lsn; error: () => string | null; client: RawClient }> {
  const c = await RawClient.connect(d.pgPort);
  const msgs = await c.startup({ user: 'reader', database: 'replication', replication: 'true', application_name: 'limits-reader', options: OPTIONS });
  if (msgs[msgs.length - 1].tag !== 'Z') throw new Error('reader start-up failed');
  c.write(query(`START_REPLICATION PHYSICAL ${lsnText(from)} TIMELINE 1`));
  const first = await c.read(30_000);
  if (first?.tag !== 'W') throw new Error(`expected CopyBothResponse, got ${first ? first.tag : 'close'}`);
  let pos = from;
  let error: string | null = null;
  void (async () => {
    for (;;) {
      const m = await c.read(600_000).catch(() => null);
      if (!m) return;
      if (m.tag === 'E') {
        error = errorFields(m.body).M;
        return;
      }
      if (m.tag === 'd' && m.body[0] === 0x77) {
        const start = m.body.readBigUInt64BE(1);
        if (start !== pos) {
          error = `XLogData at ${lsnText(start)}, expected ${lsnText(pos)}`;
          return;
        }
        pos += BigInt(m.body.length - 25);
      }
    }
  })();
  return { pos: () => pos, error: () => error, client: c };
}

async function pushAndCommit(t: Test, p: Pusher, wal: RealWal, to: Lsn, reader: { pos: () => Lsn; error: () => string | null }, what: string): Promise<void> {
  await pushRange(p, wal, { from: p.acked, to });
  t.equal(p.acked, to, `${what}: the proposer's appends are acknowledged`);
  // The next request carries commit_lsn = `to`; the reader follows it.
  await pushRange(p, wal, { from: p.acked, to: to + 8192n });
  await until(`${what}: the reader reaches ${lsnText(to)}`, () => reader.pos() >= to || reader.error() !== null, 30_000);
  t.equal(reader.error(), null, `${what}: the reader streams on`);
}

t.test('connection flood, slow-loris and long queries: the proposer and the reader go on', async (t) => {
  const wal = synthWal(4, 3);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-limits-'), noSync: true, args: ['--max-connections', String(MAX), '--startup-timeout', '2s'] });
  const p = await connectPusher(d, wal);
  t.teardown(() => p.client.close());
  await pushRange(p, wal, { from: wal.startLsn, to: wal.startLsn + MiB });
  const reader = await startReader(d, wal.startLsn);
  t.teardown(() => reader.client.destroy());
  await pushAndCommit(t, p, wal, wal.startLsn + MiB + 100_000n, reader, 'before the flood');

  // A flood of idle connections: the proposer and the reader hold 2 slots.
  const flood: RawClient[] = [];
  t.teardown(() => flood.forEach((c) => c.destroy()));
  for (let i = 0; i < MAX - 2; i++) flood.push(await RawClient.connect(d.pgPort));
  // The listener counts a connection once it has accepted it: poll until a start-up beyond the limit is refused.
  let refused: Record<string, string> | null = null;
  await until(
    'a connection beyond --max-connections to be refused after its start-up packet',
    async () => {
      const c = await RawClient.connect(d.pgPort);
      flood.push(c);
      // As libpq does by default: SSLRequest first (answered N), then the StartupMessage.
      if ((await c.sslRequest()) !== 'N') return false;
      c.write(startupPacket({ user: 'flood', options: OPTIONS }));
      const m = await c.read(5000);
      if (m?.tag === 'E') refused = errorFields(m.body);
      return refused !== null;
    },
    20_000,
    50,
  );
  t.same(refused && { S: refused['S'], C: refused['C'], M: refused['M'] }, { S: 'FATAL', C: '53300', M: 'sorry, too many clients already' }, 'FATAL 53300 as PostgreSQL answers');
  await flood[flood.length - 1].expectClosed(5000);
  const counted = /^walkeeper_errors_total\{[^}]*kind="too_many_connections"[^}]*\} (\d+)$/m.exec(await metrics(d));
  t.ok(counted && Number(counted[1]) >= 1, 'the refusal is counted in walkeeper_errors_total');
  // Idle connections over the limit wait for their start-up packet, up to OVER_LIMIT_BACKLOG of them; then one more is refused at once.
  for (let i = 0; i < OVER_LIMIT_BACKLOG; i++) flood.push(await RawClient.connect(d.pgPort));
  const now = await RawClient.connect(d.pgPort);
  flood.push(now);
  const at = await now.expectError(5000);
  t.equal(at['C'], '53300', 'beyond the backlog, refused before anything is read');
  await now.expectClosed(5000);
  await pushAndCommit(t, p, wal, wal.startLsn + 2n * MiB, reader, 'during the flood');

  // The idle connections are dropped after the start-up timeout.
  for (const c of flood.slice(0, -1)) await c.expectClosed(20_000);
  t.pass('idle connections were dropped after --startup-timeout');

  // A slow-loris client: one byte of a valid start-up packet every 500 ms.
  const loris = await RawClient.connect(d.pgPort);
  t.teardown(() => loris.destroy());
  const packet = startupPacket({ user: 'slow', options: OPTIONS });
  let sent = 0;
  while (!loris.isClosed && sent < packet.length) {
    loris.write(packet.subarray(sent, sent + 1));
    sent++;
    await sleep(500);
  }
  t.ok(loris.isClosed, `the slow-loris client was dropped after ${sent} of ${packet.length} bytes`);
  await pushAndCommit(t, p, wal, wal.startLsn + 3n * MiB, reader, 'after the slow-loris');

  // An over-long query: ERROR 54000, then the session goes on.
  const q = await RawClient.connect(d.pgPort);
  t.teardown(() => q.destroy());
  await q.startup({ user: 'admin', options: OPTIONS });
  q.write(query('IDENTIFY_SYSTEM ' + ' '.repeat(70_000)));
  const long = await q.expectError();
  t.equal(long['C'], '54000', 'a query over the limit gets 54000');
  t.match(long['M'], /query too long: 70016 bytes, the limit is 65536/);
  t.equal((await q.read())?.tag, 'Z', 'then ReadyForQuery: the session goes on');
  q.write(query('IDENTIFY_SYSTEM'));
  t.equal((await q.readUntil('ZE')).at(-1)?.tag, 'Z', 'a normal command afterwards is answered');
  q.write(tagged('X', new Uint8Array(0)));
});

t.test('HTTP: a body over the limit gets a JSON 413', async (t) => {
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-limits-http-'), noSync: true });
  // An unknown timeline: if the limit were missing the answer would be 404, never a deletion.
  const url = `http://127.0.0.1:${d.httpPort}/v1/tenant/${'ab'.repeat(16)}/timeline/${'cd'.repeat(16)}`;
  const big = JSON.stringify({ pad: 'x'.repeat(100_000) });
  const r = await fetch(url, { method: 'DELETE', headers: { 'content-type': 'application/json' }, body: big });
  t.equal(r.status, 413);
  const body = (await r.json()) as { error: string; message: string };
  t.equal(body.error, 'too_large');
  t.match(body.message, /body/i);
  const small = await fetch(url, { method: 'DELETE', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.equal(small.status, 404, 'a small body reaches the route');
  t.equal((await fetch(`http://127.0.0.1:${d.httpPort}/v1/status`)).status, 200, 'the API goes on');
});

t.test('run: --max-connections and --startup-timeout are checked', async (t) => {
  const { parseRunArgs } = await import('../../src/commands/run.js');
  const o = parseRunArgs(['--max-connections', '7', '--startup-timeout', '1m']);
  t.not(o, 'help');
  if (o !== 'help') t.same([o.limits.maxConnections, o.limits.startupTimeoutMs], [7, 60_000]);
  const dflt = parseRunArgs([]);
  if (dflt !== 'help') t.same([dflt.limits.maxConnections, dflt.limits.startupTimeoutMs, dflt.limits.maxQueryLength], [100, 10_000, 65_536]);
  t.throws(() => parseRunArgs(['--max-connections', '0']), /--max-connections: invalid count "0": expected 1 to 100000/);
  t.throws(() => parseRunArgs(['--startup-timeout', '0']), /--startup-timeout: the duration must be more than 0/);
});

t.test('HTTP: the admin app is built with its request, connection and handler timeouts', async (t) => {
  const { build } = await import('../../src/http/app.js');
  const { HTTP_LIMITS } = await import('../../src/http/limits.js');
  const app = build({ status: () => ({ id: 1, version: 'test', startedAt: 0, listenPg: null, listenHttp: null, timelines: () => 0 }) });
  t.teardown(() => app.close());
  const c = app.initialConfig as Record<string, unknown>;
  t.same(
    { bodyLimit: c.bodyLimit, requestTimeout: c.requestTimeout, connectionTimeout: c.connectionTimeout, handlerTimeout: c.handlerTimeout },
    HTTP_LIMITS,
  );
  t.ok(HTTP_LIMITS.requestTimeout > 0 && HTTP_LIMITS.handlerTimeout > 0, 'no unlimited request or handler');
});
