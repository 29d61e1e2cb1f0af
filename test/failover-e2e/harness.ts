// End-to-end harness for failover: the quorum setup of test/proposer-e2e
// (a PostgreSQL 15 primary, `walkeeper propose`, three safekeepers) plus two
// hot standbys and a pg_receivewal that stream from safekeepers, and the steps
// an operator takes when the primary dies: crash it, `walkeeper promote` a
// standby, start `walkeeper propose` on it.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { parseLsn, parseSegmentFileName, segmentFileName, segmentNumber, segmentStart, type Lsn } from '../../src/lsn.js';
import { historyFileName, parseHistory } from '../../src/wal/history.js';
import { TimelineAncestry } from '../../src/wal/timeline-files.js';
import { runCli } from '../daemon/helpers.js';
import { pgTempDir, spawnPg, type Background, type PgCluster } from '../helpers/pg.js';
import { waitFor } from '../helpers/support.js';
import {
  APP,
  makeSynchronous,
  proposerFor,
  quorumArgs,
  readWal,
  reportedFlush,
  safekeeperConninfo,
  startQuorum,
  startStandby,
  Workload,
  type ProposerProc,
  type Safekeeper,
} from '../proposer-e2e/harness.js';

export const SEG = 1 << 20;

export interface Rig {
  /** The test that owns the processes (they outlive the subtests that start them). */
  t: Test;
  safekeepers: Safekeeper[];
  /** The server that takes writes now, and the proposer in front of it. */
  primary: PgCluster;
  proposer: ProposerProc;
  standbys: PgCluster[];
  /** pg_receivewal streaming from the last safekeeper into `receiverDir`. */
  receiver: Background;
  receiverDir: string;
  work: Workload;
  /** Where the safekeepers' WAL starts. */
  startLsn: Lsn;
  /** The PostgreSQL timelines so far and where each starts (from the newest one's history file). */
  ancestry: TimelineAncestry;
}

/**
 * The whole setup, streaming and committing: the primary with
 * `wal_log_hints` (so an old primary can be rewound), standbys streaming from
 * safekeepers 0 and 1 configured like the primary (a promoted one waits for
 * its proposer before it acknowledges a commit), pg_receivewal from
 * safekeeper 2, and `clients` id-recording clients.
 */
export async function startRig(t: Test, clients: number): Promise<Rig> {
  const q = await startQuorum(t, { cluster: { conf: { wal_log_hints: 'on' } } });
  const { primary, safekeepers, proposer } = q;
  await primary.pgbench(['-i', '-s', '1', '-q']);
  proposer.start();
  const fresh = await proposer.waitLog('fresh timeline: every voter is empty; WAL starts here');
  await makeSynchronous(primary);
  const sync = { synchronous_standby_names: APP };
  const standbys = [await startStandby(t, primary, safekeepers[0], sync), await startStandby(t, primary, safekeepers[1], sync)];
  const receiverDir = pgTempDir('wk-failover-recv-');
  t.teardown(() => rmSync(receiverDir, { recursive: true, force: true }));
  const receiver = spawnPg(t, 'pg_receivewal', ['-d', safekeeperConninfo(safekeepers[2], 'wk_receivewal'), '-D', receiverDir, '--no-sync', '-s', '1', '-v']);
  const work = await Workload.start(primary, clients);
  return { t, safekeepers, primary, proposer, standbys, receiver, receiverDir, work, startLsn: parseLsn(String(fresh.startLsn)), ancestry: new TimelineAncestry(1) };
}

/** pgbench for `seconds` (no-vacuum, simple-update); its exit status is not checked (the primary may crash under it). */
export function pgbench(primary: PgCluster, seconds: number): Promise<{ processed: number; output: string }> {
  return primary.pgbench(['-n', '-N', '-c', '4', '-j', '2', '-T', String(seconds)]).then(
    (out) => ({ processed: Number(/actually processed: (\d+)/.exec(out)?.[1] ?? NaN), output: out }),
    (err: Error) => ({ processed: NaN, output: err.message }),
  );
}

/** The timeline and port a standby's WAL receiver streams on and from ("" when it is not streaming). */
export function receiving(standby: PgCluster): Promise<string> {
  return standby.sql("select received_tli || '/' || sender_port from pg_stat_wal_receiver where status = 'streaming'");
}

/** The PostgreSQL timeline a primary writes: from the name of its current WAL file (the checkpoint may still be on the parent). */
export async function writingTimeline(primary: PgCluster): Promise<number> {
  return parseInt((await primary.sql('select pg_walfile_name(pg_current_wal_insert_lsn())')).slice(0, 8), 16);
}

/** `NNNNNNNN.history` in a directory (a pg_wal or pg_receivewal's), as text; null when absent. */
export function historyText(dir: string, tli: number): string | null {
  const path = join(dir, historyFileName(tli));
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

export interface PromoteResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `walkeeper promote` as an operator runs it. */
export function promote(rig: Rig, standby: PgCluster, timeout = '30s'): Promise<PromoteResult> {
  return runCli(['promote', '--standby', standby.connString(), ...quorumArgs(rig.safekeepers), '--timeout', timeout], { timeoutMs: 120_000 });
}

export interface Failover {
  promoted: PgCluster;
  /** The crashed primary (stopped). */
  oldPrimary: PgCluster;
  tli: number;
  switchLsn: Lsn;
  promote: PromoteResult;
  /** Ids acknowledged by the old primary, with their content, when it crashed. */
  ackedBefore: Map<number, string>;
  /** The proposer of the crashed primary. */
  oldProposer: ProposerProc;
  /** How long `walkeeper promote` took, and from its start to the first client commit acknowledged through the quorum, in ms. */
  promoteMs: number;
  firstCommitMs: number;
}

/**
 * The host of the primary dies (the server and its proposer, kill -9); the
 * clients turn to `standby`; `walkeeper promote` it; `walkeeper propose` in
 * front of it, until it is its synchronous standby. The rig then points at
 * the new primary. Throws when promote fails.
 */
export async function failover(rig: Rig, standby: PgCluster): Promise<Failover> {
  const oldProposer = rig.proposer;
  const oldPrimary = rig.primary;
  await Promise.all([oldPrimary.kill9(), oldProposer.kill9()]);
  const ackedBefore = new Map(rig.work.acked);
  rig.work.retarget(standby);
  const started = Date.now();
  const result = await promote(rig, standby);
  const promoteMs = Date.now() - started;
  const count = rig.work.count;
  if (result.code !== 0) throw new Error(`walkeeper promote exited ${result.code}: ${result.stderr.trim()}`);
  const tli = await writingTimeline(standby);
  const history = parseHistory(historyText(standby.walDir, tli) ?? '');
  const switchLsn = history.at(-1)!.switchpoint;
  rig.ancestry = new TimelineAncestry(tli, history);
  rig.standbys = rig.standbys.filter((s) => s !== standby);
  rig.primary = standby;
  rig.proposer = proposerFor(rig.t, standby, rig.safekeepers);
  rig.proposer.start();
  await makeSynchronous(standby);
  await waitFor('a client commit through the quorum on the new primary', () => rig.work.count, (n) => n > count, 60_000, 10);
  const firstCommitMs = Date.now() - started;
  return { promoted: standby, oldPrimary, tli, switchLsn, promote: result, ackedBefore, oldProposer, promoteMs, firstCommitMs };
}

/** How a proposer process ended, or null if it still runs after `ms`. */
export function exitWithin(proposer: ProposerProc, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  return Promise.race([proposer.exit!, new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);
}

/** The rows of table `acked` on a server: id → content. */
export async function ackedRows(server: PgCluster): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const line of (await server.sql('select id, content from acked')).split('\n')) {
    if (!line) continue;
    const bar = line.indexOf('|');
    out.set(Number(line.slice(0, bar)), line.slice(bar + 1));
  }
  return out;
}

/** Acknowledged ids missing on a server, and ids whose row there differs from what the client wrote (first 20 of each). */
export function compareAcked(acked: Map<number, string>, rows: Map<number, string>): { missing: number[]; different: string[] } {
  const missing: number[] = [];
  const different: string[] = [];
  for (const [id, content] of acked) {
    const row = rows.get(id);
    if (row === undefined) missing.push(id);
    else if (row !== content) different.push(`${id}: acknowledged "${content}", stored "${row}"`);
  }
  return { missing: missing.slice(0, 20), different: different.slice(0, 20) };
}

/** Wait until a standby has replayed every id in `acked` (hot standby: the rows are visible). */
export async function waitReplayed(standby: PgCluster, acked: Map<number, string>, what: string): Promise<void> {
  const ids = [...acked.keys()];
  const max = Math.max(...ids);
  await waitFor(what, () => standby.sql(`select count(*) from acked where id <= ${max}`).then(Number), (n) => n >= ids.length, 60_000, 250);
}

/** The commit position the proposer reports to `primary`, once every safekeeper holds WAL up to it. */
export async function settledCommit(rig: Rig): Promise<Lsn> {
  const commit = await waitFor('a commit position', () => reportedFlush(rig.primary), (l) => l > 0n, 30_000);
  for (const sk of rig.safekeepers) await waitFor(`${sk.address} to hold WAL up to ${commit}`, () => sk.flushLsn(), (f) => f >= commit, 30_000);
  return commit;
}

/**
 * Where a comparison with a server's pg_wal can start: its lowest segment
 * file at or above `from` (a standby's pg_wal begins at its base backup).
 */
export function firstSegmentStart(walDir: string, from: Lsn): Lsn {
  let lowest: bigint | null = null;
  for (const name of readdirSync(walDir)) {
    const seg = parseSegmentFileName(name, SEG);
    if (seg && (lowest === null || seg.segno < lowest)) lowest = seg.segno;
  }
  const start = lowest === null ? from : segmentStart(lowest, SEG);
  return start > from ? start : from;
}

/** WAL [from, to) of a directory of segment files, each segment from the file of the timeline that holds it. */
export function walBytes(dir: string, from: Lsn, to: Lsn, ancestry: TimelineAncestry): Buffer {
  return readWal(dir, from, Number(to - from), SEG, ancestry);
}

/** The path of a segment file in `dir` (complete or .partial), or null. */
export function segmentPath(dir: string, tli: number, segno: bigint): string | null {
  const name = segmentFileName(tli, segno, SEG);
  for (const n of [name, name + '.partial']) if (existsSync(join(dir, n))) return join(dir, n);
  return null;
}

/**
 * pg_receivewal's complete segment files that differ from the server's file
 * of the same name, and how many were compared.
 */
export function compareReceived(receiverDir: string, walDir: string): { compared: number; differing: string[] } {
  let compared = 0;
  const differing: string[] = [];
  for (const name of readdirSync(receiverDir).sort()) {
    if (!/^[0-9A-F]{24}$/.test(name)) continue;
    const theirs = join(walDir, name);
    compared++;
    if (!existsSync(theirs)) differing.push(`${name}: not in the server's pg_wal`);
    else if (!readFileSync(join(receiverDir, name)).equals(readFileSync(theirs))) differing.push(`${name}: bytes differ`);
  }
  return { compared, differing };
}

/** The segment number of an LSN (1 MB segments). */
export function segOf(lsn: Lsn): bigint {
  return segmentNumber(lsn, SEG);
}
