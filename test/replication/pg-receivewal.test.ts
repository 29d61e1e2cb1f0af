// Real pg_receivewal (PostgreSQL 15) against the replication handler, over
// a copy of a real primary's pg_wal: what it writes must be the primary's
// segments, byte for byte.
import t from 'tap';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatLsn, segmentFileName, segmentFloor, segmentNumber, type Lsn } from '../../src/lsn.js';
import { FileWalSource } from '../../src/replication/file-source.js';
import { chownToPg, pgTempDir, runPg, type RunResult } from '../helpers/pg.js';
import { ReplicationTestServer } from './pg-harness.js';
import { makePrimaryWal, SEG, type PrimaryWal } from './primary.js';
import { until } from '../helpers/support.js';

const primaryReady = makePrimaryWal(t);
type Primary = PrimaryWal;

function sourceFor(p: Primary, commit: Lsn, dir = p.walCopy): FileWalSource {
  return new FileWalSource({ dir, systemId: p.systemId, pgTimeline: 1, walSegSize: SEG, pgVersion: 150018, commitLsn: commit });
}

function receivewal(port: number, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return runPg('pg_receivewal', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '--no-loop', '-v', ...args], { timeoutMs });
}

function segName(lsn: Lsn): string {
  return segmentFileName(1, segmentNumber(lsn, SEG), SEG);
}

t.test('pg_receivewal follows the commit position and writes the primary segments byte for byte', async (t) => {
  const p = await primaryReady;
  t.ok(p.end - p.s0 >= 4n * BigInt(SEG), `several segments of WAL (${formatLsn(p.s0)} .. ${formatLsn(p.end)})`);
  const source = sourceFor(p, p.s0);
  const server = await ReplicationTestServer.start({ source });
  t.teardown(() => server.close());
  const out = pgTempDir('wk-recv-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));

  // pg_receivewal stops once it has received past --endpos (endpos < position), so ask for end - 1.
  const run = receivewal(server.port, ['-D', out, '--no-sync', '-E', formatLsn(p.end - 1n)]);
  // It starts at the segment of IDENTIFY_SYSTEM's xlogpos (the commit position) and waits there.
  await until('the stream to reach the first commit position', () => source.readers.list()[0]?.sentLsn === p.s0, 30_000, 20);
  for (const target of [p.s0 + 12345n, p.mid, p.mid + 100_000n, p.end]) {
    source.advance({ commit: target });
    await until(`streaming up to ${formatLsn(target)}`, () => (source.readers.list()[0]?.sentLsn ?? target) >= target, 30_000, 20);
  }
  const r = await run;
  t.equal(r.code, 0, `pg_receivewal exited 0: ${r.stderr}`);
  t.match(r.stderr, `stopped log streaming at ${formatLsn(p.end)}`);

  const [rec] = server.records;
  t.same(rec.queries, [
    'SHOW data_directory_mode',
    'IDENTIFY_SYSTEM',
    'SHOW wal_segment_size',
    'IDENTIFY_SYSTEM',
    'IDENTIFY_SYSTEM',
    `START_REPLICATION ${formatLsn(segmentFloor(p.s0, SEG))} TIMELINE 1`,
  ]);
  t.same(rec.outcomes.slice(-1), ['ready'], 'the stream ended by CopyDone, then ReadyForQuery');
  t.equal(rec.params.application_name, 'pg_receivewal');

  const written = readdirSync(out).sort();
  const expected: string[] = [];
  for (let seg = segmentNumber(p.s0, SEG); seg < segmentNumber(p.end, SEG); seg++) expected.push(segmentFileName(1, seg, SEG));
  t.same(
    written.filter((f) => !f.endsWith('.partial')),
    expected,
    'every complete segment from the start segment to the end',
  );
  let same = 0;
  for (const f of expected) {
    if (readFileSync(join(out, f)).equals(readFileSync(join(p.walCopy, f)))) same++;
    else t.fail(`${f} differs from the primary's`);
  }
  t.equal(same, expected.length, `${same} segments identical to the primary's`);
});

t.test('slots: --create-slot, streaming with --slot, --drop-slot', async (t) => {
  const p = await primaryReady;
  const commit = p.mid + 100_000n;
  const source = sourceFor(p, commit);
  const server = await ReplicationTestServer.start({ source });
  t.teardown(() => server.close());
  const out = pgTempDir('wk-recv-slot-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));

  const create = await receivewal(server.port, ['--create-slot', '-S', 'wk_slot']);
  t.equal(create.code, 0, create.stderr);
  t.ok(server.records[0].queries.includes('CREATE_REPLICATION_SLOT "wk_slot" PHYSICAL'), 'CREATE_REPLICATION_SLOT as sent');

  // An empty directory with a slot: READ_REPLICATION_SLOT, then the server position.
  const r = await receivewal(server.port, ['-D', out, '-S', 'wk_slot', '--no-sync', '-E', formatLsn(commit - 1n)]);
  t.equal(r.code, 0, r.stderr);
  const q = server.records[1].queries;
  t.ok(q.includes('READ_REPLICATION_SLOT wk_slot'), 'READ_REPLICATION_SLOT');
  t.equal(q[q.length - 1], `START_REPLICATION SLOT "wk_slot" ${formatLsn(p.mid)} TIMELINE 1`);
  // The segment is not complete, so it stays .partial; its streamed part is the primary's.
  const seg = segName(p.mid);
  const got = readFileSync(join(out, seg + '.partial'));
  t.equal(got.length, SEG, 'padded to the segment size');
  t.ok(got.subarray(0, 100_000).equals(readFileSync(join(p.walCopy, seg)).subarray(0, 100_000)), `${seg}.partial holds the primary's bytes`);

  const drop = await receivewal(server.port, ['--drop-slot', '-S', 'wk_slot']);
  t.equal(drop.code, 0, drop.stderr);
  t.ok(server.records[2].queries.includes('DROP_REPLICATION_SLOT "wk_slot"'));
});

t.test("asking for WAL the server does not have gets PostgreSQL's errors", async (t) => {
  const p = await primaryReady;

  t.test('a start ahead of the flush position', async (t) => {
    const source = sourceFor(p, p.mid);
    const server = await ReplicationTestServer.start({ source });
    t.teardown(() => server.close());
    const out = pgTempDir('wk-recv-ahead-');
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    // pg_receivewal resumes at the start of the highest .partial segment.
    const ahead = p.mid + 3n * BigInt(SEG);
    writeFileSync(join(out, segName(ahead) + '.partial'), '');
    chownToPg(out);
    const r = await receivewal(server.port, ['-D', out, '--no-sync']);
    t.not(r.code, 0);
    t.match(r.stderr, `requested starting point ${formatLsn(ahead)} is ahead of the WAL flush position of this server ${formatLsn(p.mid)}`);
  });

  t.test('a removed segment', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wk-walcopy-removed-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(p.walCopy, dir, { recursive: true });
    const gone = segName(p.s0);
    rmSync(join(dir, gone));
    const source = sourceFor(p, p.mid, dir);
    const server = await ReplicationTestServer.start({ source });
    t.teardown(() => server.close());
    const out = pgTempDir('wk-recv-removed-');
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    writeFileSync(join(out, gone + '.partial'), '');
    chownToPg(out);
    const r = await receivewal(server.port, ['-D', out, '--no-sync']);
    t.not(r.code, 0);
    t.match(r.stderr, `requested WAL segment ${gone} has already been removed`);
    t.notOk(existsSync(join(out, gone)), 'nothing was completed');
  });
});

t.test('server shutdown while pg_receivewal streams: COPY 0, and the client takes it as the end of the stream', async (t) => {
  const p = await primaryReady;
  const source = sourceFor(p, p.mid);
  const server = await ReplicationTestServer.start({ source });
  const out = pgTempDir('wk-recv-shutdown-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const run = receivewal(server.port, ['-D', out, '--no-sync']);
  await until('the stream to catch up', () => source.readers.list()[0]?.sentLsn === p.mid, 30_000, 20);
  const t0 = Date.now();
  await server.shutdown();
  const r = await run;
  t.ok(Date.now() - t0 < 10_000, 'the client noticed promptly');
  t.same(server.records[0].outcomes, ['ready', 'ready', 'ready', 'ready', 'ready', 'close']);
  t.notMatch(r.stderr, /unexpected termination of replication stream/, 'not taken as a protocol error');
  // The same words as when a real PostgreSQL primary shuts down under it.
  t.match(r.stderr, /replication stream was terminated before stop point/, r.stderr);
});
