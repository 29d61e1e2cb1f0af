// The election as a function: fake safekeepers that keep a vote and some
// WAL, no network and no primary; the outcome is plain data.
import t from 'tap';
import { createLogger } from '../../src/log.js';
import { compareNodeId } from '../../src/protocol/node-id.js';
import type { NodeId, RequestVote, SafeKeeperInfo, ServerInfo } from '../../src/protocol/types.js';
import type { ProposerClient } from '../../src/proposer/client.js';
import { elect, type ElectionMember, type Greeted } from '../../src/proposer/elect.js';
import { LostLeadershipError } from '../../src/proposer/errors.js';

const log = createLogger({ level: 'silent' });
const uuid = (b: number): Uint8Array => new Uint8Array(16).fill(b);

class FakeSafekeeper implements ElectionMember {
  vote: NodeId = { term: 0n, uuid: uuid(0) };
  problems: string[] = [];
  closed = 0;
  /** Answers every vote with this ballot: another proposer's, higher. */
  refuse: NodeId | null = null;
  down = false;

  constructor(
    readonly name: string,
    private readonly epoch: bigint,
    private readonly flushLsn: bigint,
    private readonly commitLsn: bigint,
  ) {}

  private info(server: ServerInfo): SafeKeeperInfo {
    return { magic: 0, formatVersion: 1, epoch: this.epoch, server: { ...server, nodeId: this.vote }, commitLsn: this.commitLsn, flushLsn: this.flushLsn, restartLsn: 0n };
  }

  async greet(server: ServerInfo): Promise<Greeted> {
    if (this.down) throw new Error('connection refused');
    const client = {
      vote: async (req: RequestVote): Promise<NodeId> => {
        if (this.refuse) return this.refuse;
        if (compareNodeId(req.nodeId, this.vote) >= 0) this.vote = req.nodeId;
        return this.vote;
      },
      endStream: async (): Promise<void> => {},
      startWalPush: async (): Promise<void> => {},
      greet: async (s: ServerInfo): Promise<SafeKeeperInfo> => this.info(s),
      close: (): void => {
        this.closed++;
      },
    } as unknown as ProposerClient;
    return { client, info: this.info(server) };
  }

  problem(err: unknown, what: string): void {
    this.problems.push(`${what}: ${(err as Error).message}`);
  }
}

const greeting = (nodeId: NodeId): ServerInfo => ({
  protocolVersion: 1,
  pgVersion: 150000,
  nodeId,
  systemId: 1n,
  timelineId: uuid(1),
  walEnd: 0n,
  timeline: 1,
  walSegSize: 1 << 24,
  tenantId: uuid(2),
});

t.test('a won election: term above the highest seen, VCL and donor from the most advanced voter', async (t) => {
  const a = new FakeSafekeeper('a', 3n, 500n, 400n);
  const b = new FakeSafekeeper('b', 4n, 300n, 250n);
  const c = new FakeSafekeeper('c', 3n, 900n, 450n);
  a.vote = { term: 4n, uuid: uuid(9) };
  const out = await elect({ members: [a, b, c], uuid: uuid(7), highestSeen: 0n, greeting, graceMs: 10, log });
  t.ok(out.won);
  if (!out.won) return;
  t.equal(out.highestSeen, 5n, 'one above the highest vote seen');
  t.same(out.nodeId, { term: 5n, uuid: uuid(7) });
  t.equal(out.donor, b, 'the newest epoch wins over more WAL');
  t.equal(out.donorEpoch, 4n);
  t.equal(out.vcl, 300n);
  t.equal(out.commit, 300n, 'the highest known commit position, capped at the VCL');
  t.same(out.voters.map((v) => v.member.name).sort(), ['a', 'b', 'c']);
  t.equal(a.closed + b.closed + c.closed, 0, 'the voters\' sessions are left to the caller');
});

t.test('every voter empty: VCL 0 (the caller picks where WAL starts)', async (t) => {
  const out = await elect({ members: [new FakeSafekeeper('a', 0n, 0n, 0n), new FakeSafekeeper('b', 0n, 0n, 0n)], uuid: uuid(7), highestSeen: 2n, greeting, graceMs: 10, log });
  t.ok(out.won && out.vcl === 0n && out.commit === 0n && out.highestSeen === 3n);
});

t.test('too few answers: lost, with the reason, and no term spent', async (t) => {
  const a = new FakeSafekeeper('a', 1n, 10n, 0n);
  const b = new FakeSafekeeper('b', 1n, 10n, 0n);
  const c = new FakeSafekeeper('c', 1n, 10n, 0n);
  b.down = true;
  c.down = true;
  const out = await elect({ members: [a, b, c], uuid: uuid(7), highestSeen: 6n, greeting, graceMs: 10, log });
  t.same(out, { won: false, highestSeen: 6n, reason: '1 of 3 safekeepers answered, 2 needed' });
  t.equal(a.closed, 1, 'the session that answered is closed');
  t.same(b.problems, ['cannot greet: connection refused']);
});

t.test('a vote for a higher ballot elsewhere: lost leadership', async (t) => {
  const a = new FakeSafekeeper('a', 1n, 10n, 0n);
  const b = new FakeSafekeeper('b', 1n, 10n, 0n);
  b.refuse = { term: 8n, uuid: uuid(9) };
  await t.rejects(elect({ members: [a, b], uuid: uuid(7), highestSeen: 0n, greeting, graceMs: 10, log }), LostLeadershipError);
  t.ok(a.closed === 1 && b.closed === 1, 'every session is closed');
});

t.test('a refusal before the vote: no term is taken from anyone, every session closed', async (t) => {
  const a = new FakeSafekeeper('a', 1n, 10n, 0n);
  const b = new FakeSafekeeper('b', 1n, 10n, 0n);
  const running = { term: 4n, uuid: uuid(9) };
  a.vote = running;
  b.vote = running;
  const seen: string[] = [];
  const admit = async (greeted: readonly { member: FakeSafekeeper; info: SafeKeeperInfo }[]): Promise<void> => {
    for (const g of greeted) seen.push(`${g.member.name}: term ${g.info.server.nodeId.term}`);
    throw new Error('an old primary');
  };
  await t.rejects(elect({ members: [a, b], uuid: uuid(7), highestSeen: 0n, greeting, graceMs: 10, log, admit }), { message: 'an old primary' });
  t.same(seen.sort(), ['a: term 4', 'b: term 4'], 'admit sees the first round\'s greetings');
  t.same([a.vote, b.vote], [running, running], 'the running proposer keeps its term');
  t.ok(a.closed === 1 && b.closed === 1, 'every session is closed');
});
