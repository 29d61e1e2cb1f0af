// Each daemon answers with its own command table: two daemons started in
// one process do not share handlers, so stopping one does not end the
// other's replication streams, while a daemon's own stop ends its streams.
import t, { type Test } from 'tap';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import { formatLsn, type Lsn } from '../../src/lsn.js';
import { decodeServerCopyData } from '../../src/pq/streaming.js';
import { elect, PushClient, realWal, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { query, RawClient } from '../pq/raw-client.js';
import { pushWal } from './helpers.js';

/** Read the stream until XLogData reaches `target`; fails on anything that ends the COPY. */
async function streamedUpTo(c: RawClient, target: Lsn): Promise<void> {
  for (;;) {
    const m = await c.read(10_000);
    if (!m) throw new Error(`the stream closed before ${formatLsn(target)}`);
    if (m.tag !== 'd') throw new Error(`the stream ended before ${formatLsn(target)} with '${m.tag}' ${m.body.toString('latin1')}`);
    const x = decodeServerCopyData(m.body);
    if (x.kind === 'xlogdata' && x.msg.dataStart + BigInt(x.msg.wal.length) >= target) return;
  }
}

async function startDaemon(t: Test): Promise<Daemon> {
  const d = await Daemon.start({ dataDir: tempDir(t, 'wk-cmd-'), listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: null, noSync: true, log: silentLogger() });
  t.teardown(() => d.stop());
  return d;
}

t.test('two daemons in one process: each stream follows its own daemon', async (t) => {
  const wal = await realWal(t);
  const a = await startDaemon(t);
  const b = await startDaemon(t);

  const s = wal.startLsn;
  const proposer = await PushClient.connect(a.pgAddress!.port);
  t.teardown(() => proposer.close());
  const { nodeId } = await elect(proposer, wal);
  await pushWal(proposer, wal, nodeId, s, s + 256n * 1024n, s);
  await pushWal(proposer, wal, nodeId, s + 256n * 1024n, s + 512n * 1024n, s + 256n * 1024n);

  const reader = await RawClient.connect(a.pgAddress!.port);
  t.teardown(() => reader.destroy());
  const ready = await reader.startup({
    user: 'postgres',
    database: 'replication',
    replication: 'true',
    application_name: 'command-table-test',
    options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}`,
  });
  t.equal(ready[ready.length - 1].tag, 'Z', 'replication connection to daemon A');
  reader.write(query(`START_REPLICATION ${formatLsn(s)}`));
  const w = await reader.read();
  t.equal(w?.tag, 'W', 'CopyBothResponse');
  await streamedUpTo(reader, s + 256n * 1024n);
  t.pass('daemon A streams its committed WAL');

  await b.stop();
  await pushWal(proposer, wal, nodeId, s + 512n * 1024n, s + 768n * 1024n, s + 512n * 1024n);
  await streamedUpTo(reader, s + 512n * 1024n);
  t.pass("stopping daemon B left daemon A's stream running");

  proposer.close();
  await a.stop();
  const end = await reader.readUntil('CE');
  t.match(end[end.length - 1].tag, /^[CE]$/, "daemon A's own stop ends its stream");
  await reader.expectClosed();
});
