// Random mutations of a valid WAL push session against a running daemon
// (`walkeeper run`, a child process): bytes flipped, length fields changed,
// messages cut short, duplicated, dropped or reordered. Every session must
// end with the server closing the connection (after an ErrorResponse or
// not), its answers must be whole messages, the daemon must stay up and log
// no internal error, and another timeline's files must not change.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { MAX_WAL_PER_REQUEST, NODE_ID_SIZE, U64_MAX } from '../../src/protocol/layout.js';
import { decodeNodeId, decodeSafeKeeperInfo, encodeRequestVote, encodeSafeKeeperRequest, encodeServerInfo } from '../../src/protocol/messages.js';
import { connectPusher, pushRange, synthWal } from '../archive/daemon-helpers.js';
import { PROPOSER_UUID, serverInfo, startDaemon, tempDir, TENANT, TIMELINE } from '../daemon/helpers.js';
import { announceFuzz, checkAsyncProperty } from '../helpers/fuzz.js';
import { copyDataMsg, errorFields, query, RawClient, startupPacket } from '../pq/raw-client.js';

announceFuzz(t);

// Differs from TIMELINE in every hex digit: no mutation of a few bytes of the start-up packet can name it.
const OTHER_TIMELINE = 'ab'.repeat(16);

function dirHash(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isFile()) h.update(f).update(readFileSync(p));
  }
  return h.digest('hex');
}

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

type Mutation = (msgs: Buffer[]) => Buffer[];

/** A mutation that fast-check prints as `what` in a counterexample. */
function named(what: string, fn: Mutation): Mutation {
  return Object.assign(fn, { [fc.toStringMethod]: () => what });
}

const LENGTHS = [0, 1, 3, 4, 5, 7, 8, 9, 56, 87, 88, 89, 127, 128, 129, MAX_WAL_PER_REQUEST + 60, 10_000, 1 << 20, (1 << 20) + 1, 0x7fffffff, -1, -0x80000000];
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // Flip bits of one byte of one message.
  fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([m, at, x]) =>
    named(`flip(message ${m}, byte ${at}, ^${x})`, (msgs) => {
      const i = m % msgs.length;
      const b = Buffer.from(msgs[i]);
      if (b.length > 0) b[at % b.length] ^= x;
      return msgs.map((v, j) => (j === i ? b : v));
    }),
  ),
  // Change a message's length field (the start-up packet's at 0, a tagged message's at 1).
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...LENGTHS), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))).map(([m, len]) =>
    named(`length(message ${m}, ${len})`, (msgs) => {
      const i = m % msgs.length;
      const at = i === 0 ? 0 : 1;
      if (msgs[i].length < at + 4) return msgs;
      const b = Buffer.from(msgs[i]);
      b.writeInt32BE(len, at);
      return msgs.map((v, j) => (j === i ? b : v));
    }),
  ),
  // Cut a message short.
  fc.tuple(fc.nat(), fc.nat()).map(([m, cut]) =>
    named(`cut(message ${m}, at ${cut})`, (msgs) => {
      const i = m % msgs.length;
      return msgs.map((v, j) => (j === i ? v.subarray(0, cut % Math.max(1, v.length)) : v));
    }),
  ),
  // Duplicate, drop, or move a message.
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('dup', 'drop', 'move')).map(([m, to, op]) =>
    named(`${op}(message ${m}, to ${to})`, (msgs) => {
      if (msgs.length === 0) return msgs;
      const i = m % msgs.length;
      const out = [...msgs];
      const [v] = op === 'dup' ? [out[i]] : out.splice(i, 1);
      if (op !== 'drop') out.splice(to % (out.length + 1), 0, v);
      return out;
    }),
  ),
  // Random bytes inserted between messages.
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([m, junk]) =>
    named(`insert(before message ${m}, ${Buffer.from(junk).toString('hex')})`, (msgs) => {
      const out = [...msgs];
      out.splice(m % (out.length + 1), 0, Buffer.from(junk));
      return out;
    }),
  ),
);

/** Parse what the server sent (after a possible one-byte SSL answer): whole messages, or a reason they are not. */
function parseAnswers(bytes: Buffer): { tags: string; errors: Array<Record<string, string>>; copyData: Buffer[] } | string {
  let p = 0;
  let tags = '';
  const errors: Array<Record<string, string>> = [];
  const copyData: Buffer[] = [];
  while (p < bytes.length) {
    if (bytes.length - p < 5) return `a partial message header at ${p}`;
    const len = bytes.readInt32BE(p + 1);
    if (len < 4 || p + 1 + len > bytes.length) return `a partial or bad message at ${p} (length ${len})`;
    const tag = String.fromCharCode(bytes[p]);
    tags += tag;
    if (tag === 'E') errors.push(errorFields(bytes.subarray(p + 5, p + 1 + len)));
    if (tag === 'd') copyData.push(bytes.subarray(p + 5, p + 1 + len));
    p += 1 + len;
  }
  return { tags, errors, copyData };
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
  const outcomes = new Map<string, number>();
  await checkAsyncProperty(
    t,
    'mutated sessions',
    fc.asyncProperty(fc.integer({ min: 0, max: 4 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (appends, ms) => {
      term += 1n;
      const msgs = ms.reduce((acc, m) => m(acc), session(wal, term, appends));
      if (msgs.length === 0) return;
      const c = await RawClient.connect(d.pgPort);
      const got: Buffer[] = [];
      c.socket.on('data', (b: Buffer) => got.push(b));
      c.socket.write(Buffer.concat(msgs));
      // Everything sent: the server must finish and close, whatever it made of it.
      c.socket.end();
      try {
        await c.expectClosed(20_000);
      } finally {
        c.destroy();
      }
      if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error(`the daemon exited: ${d.stderr()}`);
      const answers = parseAnswers(Buffer.concat(got));
      if (typeof answers === 'string') throw new Error(`the server's answer is not whole messages: ${answers}`);
      for (const e of answers.errors) {
        if (!/^[0-9A-Z]{5}$/.test(e['C'] ?? '') || !e['S'] || !e['M']) throw new Error(`an ErrorResponse without severity, SQLSTATE or message: ${JSON.stringify(e)}`);
        if (e['C'] === 'XX000') throw new Error(`an internal error: ${e['M']}`);
      }
      const seen = termsSeen(answers.copyData);
      if (seen >= term && seen < U64_MAX) term = seen;
      const key = answers.errors.length ? `E ${answers.errors[0]['C']}${process.env.WK_FUZZ_DEBUG ? ' ' + answers.errors[0]['M'] : ''}` : 'closed without an error';
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }),
    0.5,
  );
  t.comment(`outcomes: ${[...outcomes].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  t.equal(dirHash(otherDir), before, "the other timeline's files are unchanged");
  const internal = d.logs.filter((l) => (l.level as number) >= 50);
  t.same(internal.map((l) => l.msg), [], 'no error logged by the daemon');

  // Still serving: a valid session for the other timeline goes through.
  const again = await connectPusher(d, wal, OTHER_TIMELINE);
  await pushRange(again, wal, { from: again.acked, to: wal.startLsn + 400_000n });
  t.equal(again.acked, wal.startLsn + 400_000n, 'the daemon still takes WAL');
  again.client.close();
});
