// Random mutations of a valid WAL push session against a running daemon
// (`walkeeper run`, a child process): bytes flipped, length fields changed,
// messages cut short, duplicated, dropped or reordered. Every session must
// end with the server closing the connection (after an ErrorResponse or
// not), its answers must be whole messages, the daemon must stay up and log
// no internal error, and another timeline's files must not change.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { NODE_ID_SIZE, U64_MAX } from '../../src/protocol/layout.js';
import { decodeNodeId, decodeSafeKeeperInfo, encodeRequestVote, encodeSafeKeeperRequest, encodeServerInfo } from '../../src/protocol/messages.js';
import { connectPusher, pushRange, synthWal } from '../archive/daemon-helpers.js';
import { PROPOSER_UUID, serverInfo, startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { announceFuzz, checkAsyncProperty } from '../helpers/fuzz.js';
import { copyDataMsg, query, startupPacket } from '../pq/raw-client.js';
import { dirHash, mutation, Outcomes, runSession } from './sessions.js';

announceFuzz(t);

// Differs from TIMELINE in every hex digit: no mutation of a few bytes of the start-up packet can name it.
const OTHER_TIMELINE = 'ab'.repeat(16);

/** A valid session's messages, in order: start-up, START_WAL_PUSH, greeting, vote, appends, end of stream. */
function session(wal: ReturnType<typeof synthWal>, term: bigint, appends: number): Buffer[] {
  const nodeId = { term, uuid: PROPOSER_UUID };
  const out = [
    startupPacket({ user: 'fuzz', database: 'postgres', application_name: 'fuzz', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` }),
    query('START_WAL_PUSH'),
    copyDataMsg(encodeServerInfo(serverInfo(wal, term))),
    copyDataMsg(encodeRequestVote({ nodeId, vcl: wal.startLsn, epoch: term })),
  ];
  const chunk = 8192n;
  for (let i = 0n; i < BigInt(appends); i++) {
    const begin = wal.startLsn + i * chunk;
    const at = Number(begin - wal.startLsn);
    out.push(
      copyDataMsg(
        encodeSafeKeeperRequest({ senderId: nodeId, beginLsn: begin, endLsn: begin + chunk, restartLsn: wal.startLsn, commitLsn: begin, wal: wal.bytes.subarray(at, at + Number(chunk)) }),
      ),
    );
  }
  out.push(copyDataMsg(encodeSafeKeeperRequest({ senderId: nodeId, beginLsn: 0n, endLsn: 0n, restartLsn: 0n, commitLsn: 0n, wal: new Uint8Array(0) })));
  return out;
}

/** The highest term the server reported (its greeting's vote, a vote reply): the next session votes above it. */
function termsSeen(copyData: Buffer[]): bigint {
  let max = 0n;
  for (const b of copyData) {
    try {
      const term = b.length === NODE_ID_SIZE ? decodeNodeId(b).term : decodeSafeKeeperInfo(b).server.nodeId.term;
      if (term > max) max = term;
    } catch {
      /* a SafeKeeperResponse or something else: no term of interest */
    }
  }
  return max;
}

t.test('mutated WAL push sessions: clean ends, the daemon stays up, the other timeline untouched', async (t) => {
  const wal = synthWal(2, 9);
  const d = await startDaemon(t, { dataDir: tempDir(t, 'wk-fuzz-live-'), noSync: true });
  const other = await connectPusher(d, wal, OTHER_TIMELINE);
  await pushRange(other, wal, { from: wal.startLsn, to: wal.startLsn + 300_000n });
  other.client.close();
  const otherDir = join(d.dataDir, TENANT, OTHER_TIMELINE);
  t.ok(existsSync(otherDir));
  const before = dirHash(otherDir);

  let term = 1000n;
  const outcomes = new Outcomes();
  await checkAsyncProperty(
    t,
    'mutated sessions',
    fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (appends, ms) => {
      term += 1n;
      const msgs = ms.reduce((acc, m) => m(acc), session(wal, term, appends));
      if (msgs.length === 0) return;
      const answers = await runSession(d, msgs);
      const seen = termsSeen(answers.copyData);
      if (seen >= term && seen < U64_MAX) term = seen;
      outcomes.add(answers);
    }),
    0.5,
  );
  t.comment(String(outcomes));
  t.equal(dirHash(otherDir), before, "the other timeline's files are unchanged");
  const internal = d.logs.filter((l) => (l.level as number) >= 50);
  t.same(internal.map((l) => l.msg), [], 'no error logged by the daemon');

  // Still serving: a valid session for the other timeline goes through.
  const again = await connectPusher(d, wal, OTHER_TIMELINE);
  await pushRange(again, wal, { from: again.acked, to: wal.startLsn + 400_000n });
  t.equal(again.acked, wal.startLsn + 400_000n, 'the daemon still takes WAL');
  again.client.close();
});
