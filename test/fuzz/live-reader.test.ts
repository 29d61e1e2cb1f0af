// Random mutations of a valid replication session against a running daemon
// (`walkeeper run`, a child process): IDENTIFY_SYSTEM, START_REPLICATION,
// standby status updates and hot standby feedback ('r', 'h', the 24-byte
// form), CopyDone, Terminate — with bytes flipped, length fields changed,
// messages cut short, duplicated, dropped or moved. Every session must end
// with the server closing the connection, its answers must be whole
// messages, an internal error (XX000) only where PostgreSQL sends one, the
// daemon must stay up, and another timeline's files must not change.
import t from 'tap';
import { join } from 'node:path';
import fc from 'fast-check';
import { formatLsn } from '../../src/lsn.js';
import { encodeLegacyHsFeedback, encodePgHsFeedback, encodeStatusUpdate } from '../../src/pq/streaming.js';
import { connectPusher, pushRange, synthWal } from '../archive/daemon-helpers.js';
import { startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { announceFuzz, checkAsyncProperty } from '../helpers/fuzz.js';
import { copyDataMsg, query, startupPacket, tagged } from '../pq/raw-client.js';
import { dirHash, mutation, Outcomes, runSession } from './sessions.js';

announceFuzz(t);

const OTHER_TIMELINE = 'ab'.repeat(16);

/** The XX000 errors PostgreSQL's walsender sends too (a start point or timeline it cannot serve). */
const POSTGRES_XX000 = /^requested (starting point|timeline) /;

function session(start: bigint, feedback: number): Buffer[] {
  const out = [
    startupPacket({ user: 'fuzz', replication: 'true', application_name: 'fuzz-reader', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` }),
    query('IDENTIFY_SYSTEM'),
    query(`START_REPLICATION PHYSICAL ${formatLsn(start)} TIMELINE 1`),
  ];
  for (let i = 0; i < feedback; i++) {
    const at = start + BigInt(i * 8192);
    out.push(copyDataMsg(encodeStatusUpdate({ writeLsn: at, flushLsn: at, applyLsn: at, clientTime: 700_000_000_000_000n, replyRequested: i % 2 === 0 })));
    out.push(copyDataMsg(encodePgHsFeedback({ clientTime: 700_000_000_000_000n, xmin: 1000 + i, xminEpoch: 0, catalogXmin: 0, catalogXminEpoch: 0 })));
    out.push(copyDataMsg(encodeLegacyHsFeedback({ ts: 700_000_000_000_000n, xmin: 2000n + BigInt(i), catalogXmin: 0n })));
  }
  out.push(tagged('c', new Uint8Array(0)), tagged('X', new Uint8Array(0)));
  return out;
}

t.test('mutated replication sessions: clean ends, the daemon stays up, the other timeline untouched', async (t) => {
  const wal = synthWal(2, 11);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-fuzz-reader-'), noSync: true });
  const end = wal.startLsn + 400_000n;
  for (const tl of [TIMELINE, OTHER_TIMELINE]) {
    const p = await connectPusher(d, wal, tl);
    await pushRange(p, wal, { from: wal.startLsn, to: end });
    // One more request carries commit_lsn = end: readers may stream all of it.
    await pushRange(p, wal, { from: end, to: end + 8192n });
    p.client.close();
  }
  const otherDir = join(d.dataDir, TENANT, OTHER_TIMELINE);
  const before = dirHash(otherDir);

  const outcomes = new Outcomes();
  await checkAsyncProperty(
    t,
    'mutated sessions',
    fc.asyncProperty(fc.bigInt({ min: 0n, max: 400_000n }), fc.integer({ min: 0, max: 3 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (offset, feedback, ms) => {
      const msgs = ms.reduce((acc, m) => m(acc), session(wal.startLsn + offset, feedback));
      if (msgs.length === 0) return;
      const answers = await runSession(d, msgs, POSTGRES_XX000);
      outcomes.add(answers);
    }),
    0.5,
  );
  t.comment(String(outcomes));
  t.equal(dirHash(otherDir), before, "the other timeline's files are unchanged");
  t.same(
    d.logs.filter((l) => (l.level as number) >= 50).map((l) => l.msg),
    [],
    'no error logged by the daemon',
  );
});
