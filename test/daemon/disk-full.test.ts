// A full disk (a 3 MiB tmpfs as the data directory) is an error to the
// proposer, never a false acknowledgement: every acknowledged byte is on
// disk, the timeline refuses further pushes, the daemon keeps serving.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, type Lsn } from '../../src/lsn.js';
import { query, RawClient } from '../pq/raw-client.js';
import { commonPrefix, elect, PushClient, PushError, realWal, startDaemon, storedWal, type DaemonProc } from './helpers.js';

t.test('ENOSPC during a push: an error, never a false acknowledgement', async (t) => {
  const wal = await realWal(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'wk-full-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', dataDir]);
  if (m.status !== 0) {
    rmSync(dataDir, { recursive: true, force: true });
    t.comment(`skipped: cannot mount a tmpfs (${m.stderr.toString().trim()}); this test needs root`);
    return;
  }
  let d: DaemonProc | undefined;
  t.teardown(async () => {
    await d?.kill9();
    const u = spawnSync('umount', [dataDir]);
    if (u.status !== 0) spawnSync('umount', ['-l', dataDir]);
    rmSync(dataDir, { recursive: true, force: true });
  });
  d = await startDaemon(null, { dataDir });

  const c = await PushClient.connect(d.pgPort);
  const { nodeId } = await elect(c, wal);
  let pos = wal.startLsn;
  let highestAcked: Lsn = 0n;
  const ends: Lsn[] = [];
  let err: unknown;
  try {
    while (pos < wal.endLsn || ends.length > 0) {
      while (pos < wal.endLsn && ends.length < 8) {
        const end = pos + 65536n > wal.endLsn ? wal.endLsn : pos + 65536n;
        c.append({ senderId: nodeId, beginLsn: pos, endLsn: end, restartLsn: 0n, commitLsn: 0n, wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)) });
        ends.push(end);
        pos = end;
      }
      const r = await c.response();
      t.equal(r.flushLsn, ends.shift(), 'in order');
      highestAcked = r.flushLsn;
    }
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof PushError, `the push failed with an ErrorResponse: ${(err as Error)?.message}`);
  t.equal((err as PushError).code, '53100', 'SQLSTATE disk_full');
  t.match((err as PushError).fields.M, /no space left on device|ENOSPC/i);
  await c.raw.expectClosed();
  t.ok(highestAcked > wal.startLsn && highestAcked < wal.endLsn, `acknowledged up to ${formatLsn(highestAcked)} before the disk filled`);
  const n = Number(highestAcked - wal.startLsn);
  const stored = storedWal(dataDir, wal.startLsn, n, wal.segSize);
  t.equal(commonPrefix(stored, wal.bytes), n, 'every acknowledged byte is on disk and identical');

  // The timeline is now suspect: a new proposer session is refused with a clear error.
  const c2 = await PushClient.connect(d.pgPort);
  await c2.startWalPush();
  const { serverInfo } = await import('./helpers.js');
  const e2 = await c2.greet(serverInfo(wal)).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(e2 instanceof PushError, 'a new push on the failed timeline is refused');
  t.match((e2 as PushError).fields.M, /unavailable after a storage error/);
  c2.close();

  // The daemon still serves.
  const r = await RawClient.connect(d.pgPort);
  await r.startup({ user: 'u' });
  r.write(query('HELLO'));
  t.equal((await r.readUntil('Z'))[0].tag, 'E', 'daemon still answers queries');
  r.destroy();
  const st = await d.stop();
  t.equal(st.code, 0, 'stops cleanly');
});
