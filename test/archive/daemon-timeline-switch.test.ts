// The archive across a PostgreSQL timeline switch: the history file is
// archived, each segment under the name of the file that holds it (the
// parent's below the switch segment, the new timeline's from it on), the
// parent's `.partial` of the switch segment is never archived and goes with
// its segment when old WAL is removed; a reader of the new timeline is
// served the removed segments from the archive, byte-identical.
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { FsRemoteStorage } from '../../src/archive/fs-storage.js';
import { formatLsn, segmentFileName, segmentNumber } from '../../src/lsn.js';
import type { RealWal } from '../daemon/helpers.js';
import { startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { query, RawClient } from '../pq/raw-client.js';
import { WalBuilder } from '../wal/synth.js';
import { archivedFile, connectPusher, heartbeat, lsnText, MiB, pushRange, SEG, stream, timelineDir, waitStatus } from './daemon-helpers.js';

const SYSTEM_ID = 7100000000000000001n;

/** WAL from segment 1: records to 2.4 segments in (the switch point), then a tail on `tailTli` to `segments` in. */
function wal(tailTli: number, tailBody: number, segments: number): { wal: RealWal; switchLsn: bigint } {
  const b = new WalBuilder({ segSize: SEG, start: MiB });
  b.fill(Math.floor(2.4 * SEG), 240);
  const switchLsn = b.end;
  b.tli = tailTli;
  b.fill(Math.floor(segments * SEG), tailBody);
  return { wal: { bytes: Buffer.from(b.bytes()), startLsn: MiB, endLsn: b.end, segSize: SEG, systemId: SYSTEM_ID, recordEnds: [] }, switchLsn };
}

t.test('history and segments archived under their real names across a switch', async (t) => {
  const archiveDir = tempDir(t, 'wk-tli-store-');
  const archive = new FsRemoteStorage(archiveDir);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-tli-arch-'), noSync: true, args: ['--remote-storage', `file://${archiveDir}`, '--wal-keep-size', '0'] });
  const old = wal(1, 500, 4.5);
  const next = wal(2, 333, 6.3);
  const X = old.switchLsn;
  const S = segmentNumber(X, SEG);
  t.equal(next.switchLsn, X);

  // Timeline 1: the old primary's WAL past the switch point too, committed only up to it.
  const p1 = await connectPusher(d, old.wal);
  await pushRange(p1, old.wal, { from: old.wal.startLsn, to: old.wal.endLsn, commit: X, restart: old.wal.startLsn });
  t.equal((await waitStatus(d, 'segments 1 and 2 of timeline 1 archived', (s) => s.backup_lsn === lsnText(S * MiB))).pg_timeline, 1);
  p1.client.close();

  const history = `1\t${formatLsn(X)}\tno recovery target specified\n`;
  const c = await RawClient.connect(d.pgPort);
  t.teardown(() => c.destroy());
  await c.startup({ user: 'proposer', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });
  c.write(query(`PUT_TIMELINE_HISTORY 2 '${history}'`));
  t.notOk((await c.readUntil('Z')).some((m) => m.tag === 'E'), 'history stored');

  // Timeline 2 from the switch point, committed to its end; restart_lsn there lets old WAL go.
  const p2 = await connectPusher(d, next.wal, TIMELINE, 2);
  t.equal(p2.acked, X, 'the move left WAL up to the switch point');
  await pushRange(p2, next.wal, { from: X, to: next.wal.endLsn, commit: next.wal.endLsn, restart: next.wal.endLsn });
  await heartbeat(p2, next.wal.endLsn, next.wal.endLsn);
  const lastWhole = segmentNumber(next.wal.endLsn, SEG);
  const st = await waitStatus(d, 'every whole segment archived and removed', (s) => s.backup_lsn === lsnText(lastWhole * MiB) && s.segments_removed >= Number(lastWhole - 1n));
  t.equal(st.pg_timeline, 2, 'the status shows the new PostgreSQL timeline');

  const names = (await archive.list('')).map((k) => k.split('/').pop()).sort();
  const want = [segmentFileName(1, 1n, SEG), segmentFileName(1, 2n, SEG), '00000002.history'];
  for (let s = S; s < lastWhole; s++) want.push(segmentFileName(2, s, SEG));
  t.same(names, want.sort(), 'the history file and one object per segment, under the name of the file holding it');
  t.same(await archivedFile(archive, '00000002.history'), Buffer.from(history), 'history archived byte-identical');
  for (let s = S; s < lastWhole; s++) {
    const off = Number((s - 1n) * MiB);
    t.same(await archivedFile(archive, segmentFileName(2, s, SEG)), next.wal.bytes.subarray(off, off + SEG), `segment ${s} archived as timeline 2`);
  }

  const local = readdirSync(timelineDir(d)).sort();
  t.notOk(existsSync(join(timelineDir(d), segmentFileName(1, S, SEG) + '.partial')), "the parent's .partial went with its segment");
  t.ok(local.includes('00000002.history'), 'the history file is never removed');

  // A reader of timeline 2 from segment 2 (archived as timeline 1) through the local WAL.
  const from = 2n * MiB + 8192n + 40n;
  const got = await stream(d, from, next.wal.endLsn, 2);
  t.ok(got.equals(next.wal.bytes.subarray(Number(from - MiB), Number(next.wal.endLsn - MiB))), 'archived and local WAL streamed byte-identical across the switch');
  p2.client.close();
});
