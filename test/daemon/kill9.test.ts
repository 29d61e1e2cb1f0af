// kill -9 of the daemon at random moments during a push, then restart:
// every byte up to the highest acknowledged position is on disk and
// identical to the source, and the flush_lsn of the next greeting is the
// end of the last complete record in what is on disk.
import t from 'tap';
import { formatLsn, type Lsn } from '../../src/lsn.js';
import {
  commonPrefix,
  elect,
  lastRecordEndAtOrBefore,
  PushClient,
  realWal,
  startDaemon,
  storedWal,
  tempDir,
  TENANT,
  TIMELINE,
} from './helpers.js';
import { xorshift32 } from '../helpers/support.js';

const KILLS = Number(process.env.WALKEEPER_KILL9_ROUNDS ?? 24);

t.test(`kill -9 at ${KILLS} random moments during a push`, async (t) => {
  const wal = await realWal(t);
  const dataDir = tempDir(t);
  const rnd = xorshift32(0xdecafbad);
  const len = Number(wal.endLsn - wal.startLsn);
  let highestAcked: Lsn = wal.startLsn;
  let pgPort: number | undefined;
  let checks = 0;
  let midFlight = 0;

  for (let round = 0; round <= KILLS; round++) {
    const d = await startDaemon(t, { dataDir, pgPort });
    pgPort = d.pgPort;
    const c = await PushClient.connect(d.pgPort);
    const { greeting, nodeId } = await elect(c, wal);

    // After a crash: what is on disk must hold every acknowledged byte, and the
    // greeting must report the last record end within the intact prefix.
    const stored = storedWal(dataDir, wal.startLsn, len, wal.segSize);
    const intact = wal.startLsn + BigInt(commonPrefix(stored, wal.bytes.subarray(0, len)));
    if (intact < highestAcked) {
      t.fail(`round ${round}: acknowledged up to ${formatLsn(highestAcked)} but disk matches only to ${formatLsn(intact)}`);
    }
    if (round > 0) {
      const expected = lastRecordEndAtOrBefore(wal.recordEnds, intact) ?? 0n;
      if (greeting.flushLsn !== expected) {
        t.fail(`round ${round}: flush_lsn ${formatLsn(greeting.flushLsn)}, expected ${formatLsn(expected)} (intact to ${formatLsn(intact)}, acked ${formatLsn(highestAcked)})`);
        if (process.env.WALKEEPER_KILL9_KEEP) {
          const { cpSync, readdirSync } = await import('node:fs');
          cpSync(dataDir, `${process.env.WALKEEPER_KILL9_KEEP}-${round}`, { recursive: true });
          t.comment(JSON.stringify(d.logs.slice(0, 5)));
          t.comment(readdirSync(`${dataDir}/${TENANT}/${TIMELINE}`).join(' '));
        }
      }
      checks++;
    }
    if (round === KILLS) {
      // Last round: push everything and check the whole.
      const from = greeting.flushLsn || wal.startLsn;
      await pushUntil(c, nodeId, from, wal.endLsn, () => false);
      const all = storedWal(dataDir, wal.startLsn, len, wal.segSize);
      t.equal(commonPrefix(all, wal.bytes.subarray(0, len)), len, 'after all rounds the full push is identical');
      c.close();
      await d.stop();
      break;
    }

    // Push from the reported end, or (sometimes) from an earlier record end as a new
    // leader rewriting history would: the acceptor truncates first, so what was
    // acknowledged after that point no longer counts.
    let from = greeting.flushLsn || wal.startLsn;
    if (round > 0 && (rnd() < 0.3 || wal.endLsn - from < BigInt(3 * wal.segSize))) {
      const earlier = wal.recordEnds.filter((e) => e < from);
      if (earlier.length > 0) from = earlier[Math.floor(rnd() * earlier.length)];
    }
    // The new leader's first append truncates at `from`. Acknowledged bytes past
    // it (the torn tail of a record, or history being rewritten) are legitimately
    // gone until it writes them again, so only what lies before `from` must survive
    // the next crash. The check above has already verified the previous round's
    // acknowledgements against the disk, before anything was truncated.
    if (highestAcked > from) highestAcked = from;
    // Kill once the pushed position passes a random point, a random few appends
    // later: WAL is then being received, written and synced. Counted in appends,
    // not milliseconds, so that the kill lands during the push on any machine.
    const threshold = from + BigInt(Math.floor(rnd() * 0.85 * Number(wal.endLsn - from)));
    const appendsAfter = Math.floor(rnd() * 3);
    let appendsPast = 0;
    let killed = false;
    const kill = () => {
      if (killed) return;
      killed = true;
      if (pushing) midFlight++;
      void d.kill9();
    };
    let pushing = true;
    try {
      await pushUntil(c, nodeId, from, wal.endLsn, () => killed, (sent) => {
        if (sent >= threshold && appendsPast++ >= appendsAfter) kill();
      });
    } catch {
      // the connection died with the daemon
    }
    pushing = false;
    kill();
    await d.exited;
    c.close();
  }
  t.equal(checks, KILLS, `${KILLS} crash/restart checks`);
  t.ok(midFlight >= KILLS / 2, `${midFlight} of ${KILLS} kills landed in the middle of the push`);
  t.comment(`highest acknowledged at the end: ${formatLsn(highestAcked)} of ${formatLsn(wal.endLsn)}`);

  async function pushUntil(c: PushClient, nodeId: { term: bigint; uuid: Uint8Array }, from: Lsn, to: Lsn, stop: () => boolean, onSend: (sent: Lsn) => void = () => {}): Promise<void> {
    const ends: Lsn[] = [];
    let pos = from;
    let inflight = 0;
    while ((pos < to || inflight > 0) && !stop()) {
      while (pos < to && inflight < 16) {
        const size = 1 + Math.floor(rnd() * (rnd() < 0.3 ? 3000 : 131072));
        const end = pos + BigInt(size) > to ? to : pos + BigInt(size);
        c.append({
          senderId: nodeId,
          beginLsn: pos,
          endLsn: end,
          restartLsn: wal.startLsn,
          commitLsn: highestAcked,
          wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)),
        });
        ends.push(end);
        pos = end;
        inflight++;
        onSend(pos);
      }
      const r = await c.response(10_000);
      const want = ends.shift()!;
      if (r.flushLsn !== want) throw new Error(`out-of-order response ${formatLsn(r.flushLsn)} != ${formatLsn(want)}`);
      if (r.flushLsn > highestAcked) highestAcked = r.flushLsn;
      inflight--;
    }
  }
});
