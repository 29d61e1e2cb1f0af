// A daemon whose only busy timeline syncs on the event loop, and one with two
// busy timelines on the thread pool (timeline/sync-policy.ts), each
// acknowledging exactly the WAL pushed either way.
import t from 'tap';
import { electProposer, pushWal } from '../http/helpers.js';
import { realWal, startInProcessDaemon, tempDir } from './helpers.js';

const A = 'a1'.repeat(16);
const B = 'b2'.repeat(16);

t.test('one busy timeline: blocking rounds; two: thread-pool rounds', async (t) => {
  const wal = await realWal(t);
  const daemon = await startInProcessDaemon(t, tempDir(t, 'wk-sync-policy-'), { noSync: false });
  const port = daemon.pgAddress!.port;
  const stats = daemon.registry.syncPolicy.stats;
  const step = 64n * 1024n;

  const a = await electProposer(port, wal, { timelineId: A });
  let aPos = wal.startLsn;
  const r = await pushWal(a, wal, aPos, aPos + 16n * step, 8192, 1);
  aPos += 16n * step;
  t.equal(r.acked, aPos, 'every request acknowledged');
  // The first round blocks; later ones do unless one was slower than the limit (a busy disk).
  t.ok(stats.blocking >= 1, `blocking rounds while A is alone (${JSON.stringify(stats)})`);
  t.ok(stats.pool === 0 || stats.slowBlocking > 0, 'on the thread pool only after a slow blocking round');

  const b = await electProposer(port, wal, { timelineId: B });
  let bPos = wal.startLsn;
  const before = { ...stats };
  // Alternate: each timeline's round follows the other's by far less than the activity window.
  for (let i = 0; i < 20; i++) {
    t.equal((await pushWal(a, wal, aPos, aPos + step, 8192, 1)).acked, aPos + step);
    aPos += step;
    t.equal((await pushWal(b, wal, bPos, bPos + step, 8192, 1)).acked, bPos + step);
    bPos += step;
  }
  t.ok(stats.pool > before.pool, `thread-pool rounds once both are busy (${JSON.stringify(stats)})`);
  for (const p of [a, b]) {
    await p.client.endStream();
    p.client.close();
  }
});
