// Push throughput of the daemon (a spawned `walkeeper run`), with fsync and
// with --no-sync: 16 MiB segments, 128 KiB appends, up to 64 in flight.
// WALKEEPER_PUSH_MB sets the volume (default 48); the numbers are printed as
// test comments. WAL content is synthetic: this measures the ingest path.
import t from 'tap';
import { randomFillSync } from 'node:crypto';
import type { Lsn } from '../../src/lsn.js';
import { ProposerClient } from '../../src/proposer/index.js';
import { serverInfo, startDaemon, tempDir, TENANT, TIMELINE, PROPOSER_UUID, type RealWal } from './helpers.js';

const MB = Number(process.env.WALKEEPER_PUSH_MB ?? 48);
const SEG = 16 << 20;
const CHUNK = 128 * 1024;
const WINDOW = 64;

t.test(`push ${MB} MiB: fsync vs --no-sync`, async (t) => {
  const data = Buffer.alloc(8 << 20);
  randomFillSync(data);
  const start: Lsn = BigInt(SEG);
  const total = BigInt(MB) << 20n;
  const fake: RealWal = { bytes: data, startLsn: start, endLsn: start + total, segSize: SEG, systemId: 42n, recordEnds: [] };
  const rows: string[] = [];
  for (const noSync of [false, true]) {
    const d = await startDaemon(t, { dataDir: tempDir(t), noSync });
    const c = await ProposerClient.connect({ host: '127.0.0.1', port: d.pgPort, tenantId: TENANT, timelineId: TIMELINE });
    await c.startWalPush();
    const g = await c.greet(serverInfo(fake));
    const nodeId = { term: g.server.nodeId.term + 1n, uuid: PROPOSER_UUID };
    await c.vote({ nodeId, vcl: 0n, epoch: nodeId.term });
    const t0 = performance.now();
    let pos = start;
    let inflight = 0;
    let appends = 0;
    let acked: Lsn = start;
    while (pos < fake.endLsn || inflight > 0) {
      while (pos < fake.endLsn && inflight < WINDOW) {
        const off = Number((pos - start) % BigInt(data.length - CHUNK));
        c.append({ senderId: nodeId, beginLsn: pos, endLsn: pos + BigInt(CHUNK), restartLsn: start, commitLsn: acked, wal: data.subarray(off, off + CHUNK) });
        pos += BigInt(CHUNK);
        inflight++;
        appends++;
      }
      acked = (await c.nextResponse()).flushLsn;
      inflight--;
    }
    const secs = (performance.now() - t0) / 1000;
    await c.endStream();
    c.close();
    await d.stop();
    const end = d.logs.find((l) => l.msg === 'WAL push: stream ended');
    const syncs = Number(end?.syncs ?? 0);
    t.equal(acked, fake.endLsn, `${noSync ? '--no-sync' : 'fsync'}: all acknowledged`);
    rows.push(
      `${noSync ? '--no-sync' : 'fsync    '}: ${appends} appends of 128 KiB in ${secs.toFixed(2)} s = ${(appends / secs).toFixed(0)} appends/s, ` +
        `${(Number(total) / 1e6 / secs).toFixed(0)} MB/s; ${syncs} WAL syncs (${syncs ? (appends / syncs).toFixed(1) : '-'} appends per sync)`,
    );
  }
  for (const r of rows) t.comment(r);
});
