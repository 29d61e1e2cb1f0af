// A reader starting at a position whose segment was removed locally is
// served from the archive, byte-identical, then from the local files;
// without an archive it gets PostgreSQL's "has already been removed".
import t from 'tap';
import { type Lsn } from '../../src/lsn.js';
import { startDaemon, tempDir, TENANT, TIMELINE, type DaemonProc } from '../daemon/helpers.js';
import { errorFields, query, RawClient } from '../pq/raw-client.js';
import { connectPusher, heartbeat, lsnText, MiB, pushRange, synthWal, waitStatus } from './daemon-helpers.js';

async function replicationClient(d: DaemonProc): Promise<RawClient> {
  const c = await RawClient.connect(d.pgPort);
  const msgs = await c.startup({ user: 'reader', database: 'replication', replication: 'true', application_name: 'archive-reader', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });
  const last = msgs[msgs.length - 1];
  if (last.tag !== 'Z') throw new Error(`start-up failed: ${last.tag === 'E' ? errorFields(last.body).M : last.tag}`);
  return c;
}

/** START_REPLICATION at `from`; collect the WAL streamed until `to` (XLogData checked to be contiguous). */
async function stream(d: DaemonProc, from: Lsn, to: Lsn): Promise<Buffer> {
  const c = await replicationClient(d);
  try {
    c.write(query(`START_REPLICATION PHYSICAL ${lsnText(from)} TIMELINE 1`));
    const first = await c.read(30_000);
    if (!first) throw new Error('closed');
    if (first.tag === 'E') throw Object.assign(new Error(errorFields(first.body).M), { fields: errorFields(first.body) });
    if (first.tag !== 'W') throw new Error(`expected CopyBothResponse, got ${first.tag}`);
    const parts: Buffer[] = [];
    let pos = from;
    while (pos < to) {
      const m = await c.read(30_000);
      if (!m) throw new Error(`stream closed at ${lsnText(pos)}`);
      if (m.tag === 'E') throw Object.assign(new Error(errorFields(m.body).M), { fields: errorFields(m.body) });
      if (m.tag !== 'd' || m.body[0] !== 0x77) continue; // keepalives
      const start = m.body.readBigUInt64BE(1);
      if (start !== pos) throw new Error(`XLogData at ${lsnText(start)}, expected ${lsnText(pos)}`);
      const data = m.body.subarray(25);
      parts.push(Buffer.from(data));
      pos += BigInt(data.length);
    }
    return Buffer.concat(parts).subarray(0, Number(to - from));
  } finally {
    c.destroy();
  }
}

t.test('a reader from a removed position is served from the archive, byte-identical', async (t) => {
  const wal = synthWal(6, 8);
  const archiveDir = tempDir(t, 'wk-rd-store-');
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rd-'), noSync: true, args: ['--remote-storage', `file://${archiveDir}`, '--wal-keep-size', '0'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, restart: wal.endLsn });
  await heartbeat(p, wal.endLsn, wal.endLsn);
  const s = await waitStatus(d, 'segments 1..6 removed', (s) => s.segments_removed === 6);
  t.equal(s.local_start_lsn, lsnText(7n * MiB));
  // From the middle of segment 2 (archive only) through the local segment 7.
  const from = 2n * MiB + 8192n * 3n + 40n;
  const got = await stream(d, from, wal.endLsn);
  const want = wal.bytes.subarray(Number(from - wal.startLsn), Number(wal.endLsn - wal.startLsn));
  t.equal(got.length, want.length);
  t.ok(got.equals(want), 'archived and local WAL streamed byte-identical to the source');
  p.client.close();
});

t.test('without an archive a removed position gets PostgreSQL\'s error', async (t) => {
  const wal = synthWal(4, 9);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-rd-none-'), noSync: true, args: ['--wal-keep-size', '0'] });
  const p = await connectPusher(d, wal);
  await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn, restart: wal.endLsn });
  await heartbeat(p, wal.endLsn, wal.endLsn);
  await waitStatus(d, 'segments removed', (s) => s.segments_removed === 4);
  const err = (await stream(d, 2n * MiB, 3n * MiB).then(
    () => null,
    (e: Error & { fields?: Record<string, string> }) => e,
  )) as (Error & { fields?: Record<string, string> }) | null;
  t.ok(err, 'refused');
  t.match(err?.message, /requested WAL segment 000000010000000000000002 has already been removed/);
  t.equal(err?.fields?.C, '58P01', 'SQLSTATE undefined_file, as PostgreSQL');
  p.client.close();
});
