// One election over the network (the arithmetic is in election.ts): greet
// the safekeepers, vote with term = highest seen + 1 once a majority
// answered, then greet the voters again on the same connections — only state
// read after the vote is stable (an older leader may still append between a
// greeting and the vote) — and take the VCL from the most advanced of them.
// The outcome is returned as data; nothing here streams WAL or needs a
// primary, so a run that only recovers lagging safekeepers to the VCL can
// hold the same election.
import type { Logger } from '../log.js';
import type { Lsn } from '../lsn.js';
import { formatNodeId, nodeIdEquals } from '../protocol/node-id.js';
import type { NodeId, SafeKeeperInfo, ServerInfo } from '../protocol/types.js';
import type { ProposerClient } from './client.js';
import { nextTerm, pickDonor, quorumSize } from './election.js';
import { LostLeadershipError } from './errors.js';

/** An open WAL push session and the greeting read on it. */
export interface Greeted {
  client: ProposerClient;
  info: SafeKeeperInfo;
}

/** A safekeeper as the election sees it. */
export interface ElectionMember {
  readonly name: string;
  /** Connect, start a WAL push session and greet with `server`. */
  greet(server: ServerInfo): Promise<Greeted>;
  /** A failure worth reporting (the member decides how loudly). */
  problem(err: unknown, what: string): void;
}

export interface ElectionRequest<M extends ElectionMember> {
  members: readonly M[];
  /** This proposer's uuid: the ballot is (term, uuid). */
  uuid: Uint8Array;
  /** The highest term seen or voted with so far (0 at first): the vote goes above it. */
  highestSeen: bigint;
  /** The greeting a ballot sends. */
  greeting(nodeId: NodeId): ServerInfo;
  /** After a majority answered, wait this long for the rest. */
  graceMs: number;
  log: Logger;
  /**
   * Called with the first round's greetings before the vote: throwing
   * refuses the election without taking a term from anyone.
   */
  admit?(greeted: readonly { member: M; info: SafeKeeperInfo }[]): Promise<void>;
}

export interface Voter<M> {
  member: M;
  /** Greeted after the vote; its SafeKeeperInfo is the stable state. The caller closes it (voters join afresh). */
  session: Greeted;
}

export interface ElectionWon<M> {
  won: true;
  /** The term voted with; equal to nodeId.term. */
  highestSeen: bigint;
  nodeId: NodeId;
  voters: Voter<M>[];
  /** The most advanced voter: highest (epoch, flush_lsn). */
  donor: M;
  donorEpoch: bigint;
  /** The donor's end of WAL: 0 when every voter is empty. */
  vcl: Lsn;
  /** The highest commit position any voter knows, at most the VCL. */
  commit: Lsn;
}

export interface ElectionLost {
  won: false;
  /** Carry into the next attempt. */
  highestSeen: bigint;
  /** Why not, for a log line. */
  reason: string;
}

/** Answering the election takes no longer than this. */
const ROUND_TIMEOUT_MS = 10_000;

interface Attempt<M, T> {
  member: M;
  promise: Promise<T>;
}

interface Gathered<M, T> {
  ok: { member: M; value: T }[];
  failed: { member: M; err: unknown }[];
}

/**
 * Wait for `attempts` until all have settled, or a quorum succeeded and
 * `graceMs` passed since, or `timeoutMs`. Successes that come later go to
 * `late` (to be closed).
 */
function gather<M, T>(attempts: Attempt<M, T>[], quorum: number, graceMs: number, timeoutMs: number, late: (v: T) => void): Promise<Gathered<M, T>> {
  return new Promise((resolve) => {
    const out: Gathered<M, T> = { ok: [], failed: [] };
    let settled = 0;
    let done = false;
    let grace: NodeJS.Timeout | null = null;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (grace) clearTimeout(grace);
      resolve(out);
    };
    const timer = setTimeout(finish, timeoutMs);
    for (const a of attempts) {
      a.promise.then(
        (value) => {
          if (done) return late(value);
          out.ok.push({ member: a.member, value });
          settled++;
          if (settled === attempts.length) finish();
          else if (out.ok.length >= quorum && !grace) grace = setTimeout(finish, graceMs);
        },
        (err) => {
          if (done) return;
          out.failed.push({ member: a.member, err });
          settled++;
          if (settled === attempts.length) finish();
        },
      );
    }
    if (attempts.length === 0) finish();
  });
}

const closeLate = (s: Greeted): void => s.client.close();

/** One round of greetings; members that failed are told so (`failure` names the step). */
async function greetRound<M extends ElectionMember>(attempts: Attempt<M, Greeted>[], quorum: number, graceMs: number, failure: string): Promise<Gathered<M, Greeted>['ok']> {
  const round = await gather(attempts, quorum, graceMs, ROUND_TIMEOUT_MS, closeLate);
  for (const f of round.failed) f.member.problem(f.err, failure);
  return round.ok;
}

function closeAll(sessions: readonly { value: Greeted }[]): void {
  for (const s of sessions) s.value.client.close();
}

/**
 * One election. Lost when too few answered or granted (retry later); throws
 * LostLeadershipError when a safekeeper has voted for a higher ballot.
 */
export async function elect<M extends ElectionMember>(req: ElectionRequest<M>): Promise<ElectionWon<M> | ElectionLost> {
  const { members, graceMs } = req;
  const quorum = quorumSize(members.length);
  const round1 = await greetRound(
    members.map((member) => ({ member, promise: member.greet(req.greeting({ term: req.highestSeen, uuid: req.uuid })) })),
    quorum,
    graceMs,
    'cannot greet',
  );
  if (round1.length < quorum) {
    closeAll(round1);
    return { won: false, highestSeen: req.highestSeen, reason: `${round1.length} of ${members.length} safekeepers answered, ${quorum} needed` };
  }
  if (req.admit) {
    try {
      await req.admit(round1.map((s) => ({ member: s.member, info: s.value.info })));
    } catch (err) {
      closeAll(round1);
      throw err;
    }
  }
  let highestSeen = req.highestSeen;
  for (const s of round1) {
    const t = s.value.info.server.nodeId.term;
    if (t > highestSeen) highestSeen = t;
  }
  const term = nextTerm(highestSeen);
  const nodeId: NodeId = { term, uuid: req.uuid };
  const votes = await Promise.allSettled(round1.map((s) => s.value.client.vote({ nodeId, vcl: 0n, epoch: 0n })));
  const granted: { member: M; client: ProposerClient }[] = [];
  for (let i = 0; i < votes.length; i++) {
    const v = votes[i];
    const s = round1[i];
    if (v.status === 'rejected') {
      s.member.problem(v.reason, 'vote failed');
      s.value.client.close();
      continue;
    }
    if (!nodeIdEquals(v.value, nodeId)) {
      closeAll(round1);
      throw new LostLeadershipError(
        `safekeeper ${s.member.name} refused the vote for term ${term}: it has voted for ${formatNodeId(v.value)}; another proposer is running for this timeline`,
      );
    }
    granted.push({ member: s.member, client: s.value.client });
  }
  if (granted.length < quorum) {
    for (const g of granted) g.client.close();
    return { won: false, highestSeen: term, reason: `${granted.length} of ${members.length} safekeepers granted the vote, ${quorum} needed` };
  }
  req.log.info({ term: term.toString(), node: formatNodeId(nodeId), voters: granted.map((g) => g.member.name) }, 'won the vote');

  // Round 2: greet the voters again on the same connections; only this state is stable.
  const round2 = await greetRound(
    granted.map((g) => ({
      member: g.member,
      promise: (async (): Promise<Greeted> => {
        await g.client.endStream();
        await g.client.startWalPush();
        return { client: g.client, info: await g.client.greet(req.greeting(nodeId)) };
      })().catch((err: unknown) => {
        g.client.close();
        throw err;
      }),
    })),
    quorum,
    graceMs,
    'cannot greet after the vote',
  );
  if (round2.length < quorum) {
    closeAll(round2);
    return { won: false, highestSeen: term, reason: `${round2.length} of ${members.length} voters answered after the vote, ${quorum} needed` };
  }
  for (const s of round2) {
    const vote = s.value.info.server.nodeId;
    if (!nodeIdEquals(vote, nodeId)) {
      closeAll(round2);
      throw new LostLeadershipError(`safekeeper ${s.member.name} has voted for ${formatNodeId(vote)} since: another proposer is running for this timeline`);
    }
  }
  const infos = round2.map((s) => s.value.info);
  const d = pickDonor(infos);
  const vcl = infos[d].flushLsn;
  let commit = 0n;
  for (const i of infos) if (i.commitLsn > commit) commit = i.commitLsn;
  return {
    won: true,
    highestSeen: term,
    nodeId,
    voters: round2.map((s) => ({ member: s.member, session: s.value })),
    donor: round2[d].member,
    donorEpoch: infos[d].epoch,
    vcl,
    commit: commit > vcl ? vcl : commit,
  };
}
