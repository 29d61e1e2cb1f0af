// The checks before the voters join (src/proposer/timeline-join.ts): the
// torn-record rule on synthetic WAL, and the refusals and plans for each
// relation between the primary's identity and the safekeepers' stored one,
// with a fake primary connection and fake election results.
import t from 'tap';
import type { SafeKeeperInfo, ServerInfo } from '../../src/protocol/types.js';
import type { ElectionWon } from '../../src/proposer/elect.js';
import { ProposerFatalError } from '../../src/proposer/errors.js';
import type { PrimaryConnection, PrimaryIdentity } from '../../src/proposer/primary.js';
import type { SafekeeperLink } from '../../src/proposer/safekeeper.js';
import { completeRecordAt, planJoin } from '../../src/proposer/timeline-join.js';
import { putTimelineHistoryQuery } from '../../src/proposer/timeline-history.js';
import { WalBuilder } from '../wal/synth.js';

const SEG = 16 << 20;

/** The builder's bytes up to `end`, as a donor would serve them from the builder's start. */
const upTo = (w: WalBuilder, end: bigint): Uint8Array => w.bytes().subarray(0, Number(end - w.start));

t.test('a complete record at the switch point is found; a torn one is not', async (t) => {
  const w = new WalBuilder();
  w.fill(3000);
  const x = w.end;
  const torn = new WalBuilder();
  torn.fill(3000);
  torn.appendTorn({ body: 500 }, 100);
  t.notOk(completeRecordAt(upTo(torn, x + 100n), torn.start, x, torn.segSize), 'only the start of a record after X: the primary lacks nothing committed');
  w.append({ body: 500 });
  t.ok(completeRecordAt(upTo(w, w.end), w.start, x, w.segSize), 'a whole record after X: committed WAL the primary lacks');
  t.notOk(completeRecordAt(upTo(w, w.end - 8n), w.start, x, w.segSize), 'the same record cut 8 bytes short is torn');

  // X at a page start: the record follows the page header.
  const p = new WalBuilder();
  p.fill(8000);
  const room = 8192 - Number(p.end % 8192n);
  p.append({ body: room - 24 });
  t.equal(p.end % 8192n, 0n, 'the switch point is a page start');
  const xp = p.end;
  t.notOk(completeRecordAt(upTo(p, xp + 8192n), p.start, xp, p.segSize), 'nothing after X');
  p.append({ body: 100 });
  t.ok(completeRecordAt(upTo(p, p.end), p.start, xp, p.segSize), 'found after the page header');
});

t.test('PUT_TIMELINE_HISTORY quotes the content as an SQL literal', async (t) => {
  t.equal(putTimelineHistoryQuery(2, "1\t0/3000000\tno recovery target's reason\n"), "PUT_TIMELINE_HISTORY 2 '1\t0/3000000\tno recovery target''s reason\n'");
});

const ids = { tenantId: new Uint8Array(16).fill(1), timelineId: new Uint8Array(16).fill(2) };

function server(systemId: bigint, timeline: number): ServerInfo {
  return { protocolVersion: 1, pgVersion: 150000, nodeId: { term: 5n, uuid: new Uint8Array(16) }, systemId, walEnd: 0n, timeline, walSegSize: SEG, ...ids };
}

function won(systemId: bigint, timeline: number, vcl: bigint, commit = vcl): ElectionWon<SafekeeperLink> {
  const donor = { name: 'sk0', address: { host: '127.0.0.1', port: 1 } } as unknown as SafekeeperLink;
  const info: SafeKeeperInfo = { magic: 0, formatVersion: 1, epoch: 3n, server: server(systemId, timeline), commitLsn: commit, flushLsn: vcl, restartLsn: 0n };
  return {
    won: true,
    highestSeen: 5n,
    nodeId: { term: 5n, uuid: new Uint8Array(16) },
    voters: [{ member: donor, session: { client: null as never, info } }],
    donor,
    donorEpoch: 3n,
    vcl,
    commit,
  };
}

function primary(systemId: bigint, timeline: number, history: string | null): { identity: PrimaryIdentity; conn: PrimaryConnection; asked: string[] } {
  const asked: string[] = [];
  const conn = {
    client: {
      query: async (sql: string) => {
        asked.push(sql);
        if (history === null) throw new Error('no history');
        return { rows: [[`0000000${timeline}.history`, history]] };
      },
    },
  } as unknown as PrimaryConnection;
  return { identity: { systemId, timeline, xlogPos: 0n, walSegSize: SEG, pgVersion: 150000 }, conn, asked };
}

const access = { tenantId: '01'.repeat(16), timelineId: '02'.repeat(16), password: undefined };

t.test('same system and timeline: join as always, no history', async (t) => {
  const p = primary(7n, 1, null);
  const plan = await planJoin({ won: won(7n, 1, 0x5000n), primary: p.identity, conn: p.conn, access });
  t.same(plan, { vcl: 0x5000n, commit: 0x5000n, history: null });
  t.same(p.asked, [], 'nothing read from the primary on timeline 1');
});

t.test('another database system is refused', async (t) => {
  const p = primary(8n, 1, null);
  await t.rejects(planJoin({ won: won(7n, 1, 0x5000n), primary: p.identity, conn: p.conn, access }), {
    constructor: ProposerFatalError,
    message: 'the safekeepers hold WAL of database system 7, the primary is system 8',
  });
});

t.test('a newer timeline that forked at or after the VCL starts the term at the VCL, with its history', async (t) => {
  const p = primary(7n, 2, '1\t0/6000\tno recovery target specified\n');
  const plan = await planJoin({ won: won(7n, 1, 0x5000n), primary: p.identity, conn: p.conn, access });
  t.equal(plan.vcl, 0x5000n);
  t.equal(plan.history?.timeline, 2);
  t.same(p.asked, ['TIMELINE_HISTORY 2']);
});

t.test('a newer timeline forked below the VCL: the term starts at the switch point (no WAL above it to check)', async (t) => {
  const p = primary(7n, 3, '1\t0/2000\tr\n2\t0/4000\tr\n');
  const plan = await planJoin({ won: won(7n, 2, 0x4000n, 0x3800n), primary: p.identity, conn: p.conn, access });
  t.same([plan.vcl, plan.commit], [0x4000n, 0x3800n]);
});

t.test('a newer timeline that does not descend from the stored one is refused', async (t) => {
  const p = primary(7n, 3, '1\t0/2000\tr\n');
  await t.rejects(planJoin({ won: won(7n, 2, 0x5000n), primary: p.identity, conn: p.conn, access }), {
    constructor: ProposerFatalError,
    message: /PostgreSQL timeline 3, which does not descend from timeline 2/,
  });
});

t.test('an older timeline (an old primary) is refused naming both timelines', async (t) => {
  const p = primary(7n, 1, null);
  await t.rejects(planJoin({ won: won(7n, 2, 0x5000n), primary: p.identity, conn: p.conn, access }), {
    constructor: ProposerFatalError,
    message: /^the primary is on PostgreSQL timeline 1, but the safekeepers hold WAL of PostgreSQL timeline 2/,
  });
});
