// The replication side inside the real daemon (Daemon, PgServer, Timeline,
// registry), in-process: a timeline directory holding a PostgreSQL
// primary's segments and a control file is loaded at start-up, and real
// pg_receivewal streams it through the daemon's replication commands.
import t from 'tap';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import { formatLsn, segmentFileName, segmentFloor, segmentNumber, type Lsn } from '../../src/lsn.js';
import { SAFEKEEPER_MAGIC } from '../../src/protocol/layout.js';
import type { SafeKeeperInfo } from '../../src/protocol/types.js';
import { timelineWalSource } from '../../src/replication/daemon.js';
import { ControlFile } from '../../src/storage/control.js';
import { idToBytes } from '../../src/timeline/ids.js';
import type { Timeline } from '../../src/timeline/timeline.js';
import { pgTempDir, runPg } from '../helpers/pg.js';
import { makePrimaryWal, SEG } from './primary.js';

const TENANT = 'a1'.repeat(16);
const TIMELINE = 'b2'.repeat(16);

/** A heartbeat carrying `commitLsn` from the voted proposer, as the WAL push path handles it: the acceptor state moves, then listeners hear of it. */
function reportCommit(tl: Timeline, state: SafeKeeperInfo, commitLsn: Lsn): void {
  const session = tl.acceptor.newSession();
  session.greet(state.server, tl.syncedLsn);
  session.vote({ nodeId: state.server.nodeId, vcl: state.flushLsn, epoch: state.epoch });
  session.append({ senderId: state.server.nodeId, beginLsn: tl.syncedLsn, endLsn: tl.syncedLsn, restartLsn: 0n, commitLsn, wal: new Uint8Array(0) });
  tl.noteCommit(commitLsn);
}

t.test('pg_receivewal streams a daemon timeline, following commit_lsn', async (t) => {
  const p = await makePrimaryWal(t);
  const root = mkdtempSync(join(tmpdir(), 'wk-daemon-repl-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, TENANT, TIMELINE);
  mkdirSync(dir, { recursive: true });
  const first = segmentNumber(p.s0, SEG);
  const last = segmentNumber(p.end, SEG); // exclusive
  for (let seg = first; seg < last; seg++) {
    const name = segmentFileName(1, seg, SEG);
    copyFileSync(join(p.walCopy, name), join(dir, name));
  }
  const state: SafeKeeperInfo = {
    magic: SAFEKEEPER_MAGIC,
    formatVersion: 2,
    epoch: 1n,
    server: {
      protocolVersion: 1,
      pgVersion: 150018,
      nodeId: { term: 1n, uuid: new Uint8Array(16) },
      systemId: p.systemId,
      timelineId: idToBytes(TIMELINE),
      walEnd: p.end,
      timeline: 1,
      walSegSize: SEG,
      tenantId: idToBytes(TENANT),
    },
    // Only part of the stored WAL is known to be committed.
    commitLsn: p.mid,
    flushLsn: p.end,
    restartLsn: segmentFloor(p.s0, SEG),
  };
  new ControlFile(dir, true).persist(state);

  const daemon = await Daemon.start({ dataDir: root, listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: null, noSync: true, log: silentLogger() });
  t.teardown(() => daemon.stop());
  const port = daemon.pgAddress!.port;
  const tl = daemon.registry.get({ tenantId: TENANT, timelineId: TIMELINE })!;
  t.equal(tl.syncedLsn, p.end, 'the daemon found the end of the stored WAL');
  const source = timelineWalSource(tl);
  t.equal(source.commitLsn(), p.mid, 'readers see up to commit_lsn');

  const conninfo = (extra: string): string => `host=127.0.0.1 port=${port} user=postgres ${extra}`.trim();
  const named = `options='-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}'`;

  const unnamed = await runPg('pg_receivewal', ['-d', conninfo(''), '-D', pgTempDir(), '--no-loop']);
  t.not(unnamed.code, 0);
  t.match(unnamed.stderr, 'no timeline named in the connection parameters');

  const out = pgTempDir('wk-daemon-recv-');
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  // An empty directory: pg_receivewal starts at the segment of IDENTIFY_SYSTEM xlogpos, i.e. commit_lsn.
  const run = runPg('pg_receivewal', ['-d', conninfo(named), '-D', out, '--no-loop', '--no-sync', '-v', '-E', formatLsn(p.end - 1n)], { timeoutMs: 60_000 });
  const deadline = Date.now() + 30_000;
  while (source.readers.list()[0]?.sentLsn !== p.mid) {
    if (Date.now() > deadline) throw new Error('the stream did not reach commit_lsn');
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(source.readers.list()[0].applicationName, 'pg_receivewal');
  // A proposer reports a new commit_lsn (the WAL push path calls refresh() after noteCommit()).
  reportCommit(tl, state, p.end);
  source.refresh();
  const r = await run;
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, `starting log streaming at ${formatLsn(segmentFloor(p.mid, SEG))}`);

  const written = readdirSync(out).filter((f) => !f.endsWith('.partial')).sort();
  const expected: string[] = [];
  for (let seg = segmentNumber(p.mid, SEG); seg < last; seg++) expected.push(segmentFileName(1, seg, SEG));
  t.same(written, expected);
  let same = 0;
  for (const f of expected) if (readFileSync(join(out, f)).equals(readFileSync(join(p.walCopy, f)))) same++;
  t.equal(same, expected.length, `${same} segments identical to the primary's`);

  // IDENTIFY_SYSTEM through psql in replication mode.
  const psql = await runPg('/usr/bin/psql', ['-X', '-At', '-d', conninfo(`replication=true ${named}`), '-c', 'IDENTIFY_SYSTEM']);
  t.equal(psql.code, 0, psql.stderr);
  t.equal(psql.stdout.trim(), `${p.systemId}|1|${formatLsn(p.end)}|`);

  // Replication-side errors are counted like every other ErrorResponse.
  const bad = await runPg('/usr/bin/psql', ['-X', '-At', '-d', conninfo(`replication=true ${named}`), '-c', 'START_REPLICATION 0/0 TIMELINE 0']);
  t.not(bad.code, 0);
  t.match(bad.stderr, /invalid timeline 0/);
  const metrics = await daemon.metrics.text();
  t.match(metrics, /walkeeper_errors_total\{kind="syntax",source="pg"\} 1\b/, 'the 42601 sent by the replication handler is counted');
});
