// Durable before acknowledged, checked inside the daemon: every
// SafeKeeperResponse that leaves the server covers only WAL that a completed
// sync made durable; appends arriving together share one sync; a failed sync
// is never acknowledged and fails the timeline. Driven by the project's
// ProposerClient against an in-process daemon.
import t from 'tap';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import { type Lsn } from '../../src/lsn.js';
import { ServerConnection } from '../../src/pq/connection.js';
import { PgServerError, ProposerClient } from '../../src/proposer/index.js';
import { WalSegments } from '../../src/storage/segments.js';
import { realWal, serverInfo, tempDir, TENANT, TIMELINE, PROPOSER_UUID, type RealWal } from './helpers.js';

interface Probe {
  syncs: number;
  responses: number;
  violations: string[];
  /** Delay added after each real sync (ms), to let appends pile up. */
  delayMs: number;
  /** Make the next sync fail with this errno code. */
  failNext: string | null;
  poolSyncs: number;
  blockingSyncs: number;
}

const probe: Probe = { syncs: 0, responses: 0, violations: [], delayMs: 0, failNext: null, poolSyncs: 0, blockingSyncs: 0 };
let daemon: Daemon | undefined;

// Count syncs, optionally slow them down or fail them: both the thread-pool round (sync) and
// the blocking one (syncNow: small rounds of a daemon's only busy timeline, and epoch switches).
function injectedFailure(): void {
  if (!probe.failNext) return;
  const code = probe.failNext;
  probe.failNext = null;
  throw Object.assign(new Error(`${code}: injected sync failure`), { code });
}
const realSync = WalSegments.prototype.sync;
WalSegments.prototype.sync = async function (this: WalSegments): Promise<void> {
  injectedFailure();
  await realSync.call(this);
  probe.syncs++;
  probe.poolSyncs++;
  if (probe.delayMs) await new Promise((r) => setTimeout(r, probe.delayMs));
};
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const realSyncNow = WalSegments.prototype.syncNow;
WalSegments.prototype.syncNow = function (this: WalSegments): void {
  injectedFailure();
  realSyncNow.call(this);
  probe.syncs++;
  probe.blockingSyncs++;
  if (probe.delayMs) Atomics.wait(sleeper, 0, 0, probe.delayMs);
};

// Inspect every SafeKeeperResponse (CopyData with a 40-byte payload) as it leaves.
function checkOutgoing(buf: Uint8Array): void {
  if (buf.length !== 45 || buf[0] !== 0x64) return;
  const flush: Lsn = Buffer.from(buf).readBigUInt64LE(5 + 8);
  probe.responses++;
  const tl = daemon?.registry.list()[0];
  if (!tl) return;
  if (flush > tl.syncedLsn) probe.violations.push(`response for ${flush} sent while durable only to ${tl.syncedLsn}`);
}
const realSend = ServerConnection.prototype.send;
ServerConnection.prototype.send = function (this: ServerConnection, bytes: Uint8Array): void {
  checkOutgoing(bytes);
  realSend.call(this, bytes);
};
const realSendAll = ServerConnection.prototype.sendAll;
ServerConnection.prototype.sendAll = function (this: ServerConnection, list: Uint8Array[]): void {
  for (const b of list) checkOutgoing(b);
  realSendAll.call(this, list);
};

async function elect(c: ProposerClient, wal: RealWal): Promise<{ term: bigint; uuid: Uint8Array; flush: Lsn }> {
  await c.startWalPush();
  const g = await c.greet(serverInfo(wal));
  const nodeId = { term: g.server.nodeId.term + 1n, uuid: PROPOSER_UUID };
  const reply = await c.vote({ nodeId, vcl: g.flushLsn, epoch: nodeId.term });
  if (reply.term !== nodeId.term) throw new Error('vote refused');
  return { ...nodeId, flush: g.flushLsn };
}

t.test('responses only for durable WAL; group commit; a failed sync is never acknowledged', async (t) => {
  const wal = await realWal(t);
  const dataDir = tempDir(t);
  daemon = await Daemon.start({ dataDir, listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: null, log: silentLogger() });
  t.teardown(() => daemon?.stop());
  const port = daemon.pgAddress!.port;
  const connect = () => ProposerClient.connect({ host: '127.0.0.1', port, tenantId: TENANT, timelineId: TIMELINE, applicationName: 'durability-test' });

  // The connection stays usable after an unknown command.
  const q = await connect();
  await t.rejects(q.query('SELECT 1'), PgServerError);
  await t.rejects(q.query('IDENTIFY_SYSTEM_NOPE'), { code: '0A000' });
  t.equal(q.parameters.get('integer_datetimes'), 'on');
  t.match(q.parameters.get('server_version'), /^15\./);
  q.close();

  const c = await connect();
  const nodeId = await elect(c, wal);
  probe.delayMs = 3;
  const syncsBefore = probe.syncs;
  const chunk = 32 * 1024;
  const stop = wal.startLsn + BigInt(4 * wal.segSize);
  let appends = 0;
  let pos = wal.startLsn;
  const ends: Lsn[] = [];
  while (pos < stop) {
    const end = pos + BigInt(chunk) > stop ? stop : pos + BigInt(chunk);
    c.append({ senderId: nodeId, beginLsn: pos, endLsn: end, restartLsn: wal.startLsn, commitLsn: 0n, wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)) });
    ends.push(end);
    pos = end;
    appends++;
  }
  for (const want of ends) t.equal((await c.nextResponse()).flushLsn, want);
  const syncs = probe.syncs - syncsBefore;
  t.same(probe.violations, [], 'no response left before its WAL was durable');
  t.ok(syncs > 0 && syncs < appends / 4, `group commit: ${syncs} syncs for ${appends} pipelined appends`);
  t.comment(`${appends} appends, ${syncs} syncs (${probe.poolSyncs} on the thread pool, ${probe.blockingSyncs} blocking)`);
  await c.endStream();
  c.close();

  // A failed sync: the responses waiting on it are never sent, the session ends with an error,
  // the timeline refuses further work.
  probe.delayMs = 0;
  const c2 = await connect();
  const n2 = await elect(c2, wal);
  t.equal(n2.flush > wal.startLsn, true);
  const from = n2.flush;
  const piece = (a: Lsn, b: Lsn) => wal.bytes.subarray(Number(a - wal.startLsn), Number(b - wal.startLsn));
  // The first append of a new term switches the epoch, which syncs synchronously: let it pass.
  c2.append({ senderId: n2, beginLsn: from, endLsn: from + 1000n, restartLsn: wal.startLsn, commitLsn: 0n, wal: piece(from, from + 1000n) });
  t.equal((await c2.nextResponse()).flushLsn, from + 1000n);
  const responsesBefore = probe.responses;
  probe.failNext = 'EIO';
  c2.append({ senderId: n2, beginLsn: from + 1000n, endLsn: from + 2000n, restartLsn: wal.startLsn, commitLsn: 0n, wal: piece(from + 1000n, from + 2000n) });
  const err = await c2.nextResponse().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof PgServerError, `the append failed: ${(err as Error)?.message}`);
  t.equal((err as PgServerError).code, '58030', 'SQLSTATE io_error');
  t.equal(probe.responses, responsesBefore, 'no acknowledgement after the failed sync');
  c2.close();
  const c3 = await connect();
  await c3.startWalPush();
  await t.rejects(c3.greet(serverInfo(wal)), { message: /unavailable after a storage error/ }, 'the timeline is failed until restart');
  c3.close();
  t.same(probe.violations, []);
});
