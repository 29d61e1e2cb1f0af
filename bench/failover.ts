// Failover time: how long from the start of the promotion until the new
// primary accepts writes, and until its first commit is acknowledged by its
// synchronous standby, after the old primary died (kill -9 of the server and
// all its processes) under light pgbench load.
//
//  * walkeeper: the primary's synchronous standby is `walkeeper propose` in
//    front of three safekeepers; a hot standby streams from safekeeper 0 and
//    has synchronous_standby_names = 'walkeeper' in its configuration. Timed:
//    `walkeeper promote` (sync-safekeepers, wait for replay, pg_promote) until
//    the CLI returns; then `walkeeper propose` is started in front of the new
//    primary and an INSERT waits for the quorum.
//  * baseline, PostgreSQL doing the same job: a native streaming standby,
//    the primary's synchronous standby, is promoted with `pg_ctl promote -w`;
//    a cascading standby streaming from it is its synchronous standby once
//    promoted (named in its configuration beforehand), and an INSERT waits
//    for that one.
//
// Both INSERTs go through a connection opened to the standby before the
// crash. The modes alternate per round; medians over rounds.
// WK_BENCH_FAILOVER=0 skips the group, WK_BENCH_FAILOVER_ROUNDS (default 3)
// sets the rounds; `node dist/bench/failover.js` runs it alone.
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runPgOk } from '../support/pg-proc.js';
import { median, type BenchRow } from './lib.js';
import { freePort, LocalPg, quorumArgs, safekeeperConninfo, sleep, startSafekeeper, waitSyncStandby, WalkeeperProc } from './pg-local.js';

const TENANT = 'fa11fa11fa11fa11fa11fa11fa11fa11';
const TIMELINE = 'fa11000000000000000000000000000b';
/** The application name of the proposer, as the primaries' synchronous_standby_names give it. */
const PROPOSER_APP = 'walkeeper';
/** How long the light load runs on the primary before it dies. */
const LOAD_MS = 2000;
/** Settings a standby needs to react quickly to a switch (the defaults wait 5 s before retrying). */
const STANDBY_CONF = { hot_standby: 'on', wal_receiver_status_interval: 1, wal_retrieve_retry_interval: '200ms' };

/** The log messages of `walkeeper promote` and `propose` that mark the steps of a failover, in order. */
const PROMOTE_STEPS = ['won the vote', 'safekeepers synced', 'waiting for the standby to replay the VCL', 'standby promoted'];
const PROPOSE_STEPS = ['connected to the primary', 'won the vote', 'a quorum holds WAL of this term: commits flow'];

/**
 * Where a walkeeper process's time went: when its first log line and each
 * of `steps` first appeared (pino's `time`), in ms after `since` (Date.now()).
 */
function stepTimes(who: string, output: string, since: number, steps: string[]): string {
  const at = new Map<string, number>();
  for (const line of output.split('\n')) {
    try {
      const j = JSON.parse(line) as { time?: unknown; msg?: unknown };
      if (typeof j.time === 'number' && typeof j.msg === 'string' && !at.has(j.msg)) at.set(j.msg, j.time - since);
    } catch {
      /* not a log line */
    }
  }
  const first = at.size ? Math.min(...at.values()) : NaN;
  return `${who}: first log line +${first}, ` + steps.map((m) => `${m} +${at.get(m) ?? '?'}`).join(', ');
}

interface Times {
  /** From the start of the promotion until the new primary accepts writes. */
  writableMs: number;
  /** From the start of the promotion until the first commit on the new primary is acknowledged by its synchronous standby. */
  firstCommitMs: number;
  /** Where the time went (walkeeper only), ms from the start of the promotion. */
  steps?: string;
}

type Mode = 'native' | 'walkeeper';

/** Every server and process of a round, stopped and removed at its end (or killed when the process exits). */
class Round {
  private readonly servers: LocalPg[] = [];
  private readonly procs: WalkeeperProc[] = [];
  private readonly dirs: string[] = [];

  server(pg: LocalPg): LocalPg {
    this.servers.push(pg);
    return pg;
  }

  proc(p: WalkeeperProc): WalkeeperProc {
    this.procs.push(p);
    return p;
  }

  dir(name: string): string {
    const d = join(tmpdir(), `${name}-${process.pid}`);
    mkdirSync(d, { recursive: true });
    this.dirs.push(d);
    return d;
  }

  killNow(): void {
    for (const p of this.procs) p.kill();
    for (const s of this.servers) s.killNow();
  }

  async end(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    await Promise.all(this.servers.map((s) => s.remove()));
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** A primary with pgbench tables and the table the first commit after the promotion goes to. */
async function startPrimary(round: Round, prefix: string): Promise<LocalPg> {
  const primary = round.server(await LocalPg.init({ prefix, conf: { checkpoint_timeout: '30min' } }));
  await primary.start();
  await primary.pgbench(['-i', '-s', '1', '-q']);
  await primary.sql('create table failover_probe (round int, at timestamptz default now())');
  return primary;
}

async function makeSynchronous(primary: LocalPg, app: string, what: () => string): Promise<void> {
  await primary.sql(`alter system set synchronous_standby_names = '${app}'`);
  await primary.sql('select pg_reload_conf()');
  await waitSyncStandby(primary, app, what);
}

/**
 * Light load on the primary until the standby has replayed what was
 * committed when the load had run LOAD_MS, then the crash. Returns a
 * connection to the standby, opened before the crash.
 */
async function loadThenCrash(primary: LocalPg, standby: LocalPg, crash: () => Promise<void>): Promise<pg.Client> {
  const probe = new pg.Client({ host: '127.0.0.1', port: standby.port, user: 'postgres', database: 'postgres' });
  probe.on('error', () => {});
  await probe.connect();
  // The crash ends pgbench with an error: expected.
  const load = primary.pgbench(['-n', '-N', '-c', '2', '-j', '1', '-R', '100', '-T', '600']).catch(() => '');
  await sleep(LOAD_MS);
  const target = await primary.sql('select pg_current_wal_flush_lsn()');
  const deadline = Date.now() + 60_000;
  while ((await standby.sql(`select coalesce(pg_last_wal_replay_lsn() >= '${target}', false)`)) !== 't') {
    if (Date.now() > deadline) throw new Error(`the standby did not replay ${target} within 60 s (${standby.logFile})`);
    await sleep(50);
  }
  await crash();
  await load;
  return probe;
}

/** The first commit on the new primary; checks that `app`, its synchronous standby, acknowledged it. */
async function firstCommit(probe: pg.Client, round: number, app: string): Promise<void> {
  await probe.query('insert into failover_probe (round) values ($1)', [round]);
  const r = await probe.query<{ s: string }>("select coalesce(string_agg(sync_state, ','), 'none') as s from pg_stat_replication where application_name = $1", [app]);
  await probe.end();
  if (r.rows[0].s !== 'sync') throw new Error(`the first commit on the new primary was not waited for by ${app} (sync_state: ${r.rows[0].s})`);
}

async function walkeeperRound(round: Round, r: number): Promise<Times> {
  const primary = await startPrimary(round, 'wk-bf-primary-');
  const root = round.dir('wk-bf-sk');
  const ports: { pg: number; http: number }[] = [];
  for (let i = 0; i < 3; i++) ports.push({ pg: await freePort(), http: await freePort() });
  const sks = await Promise.all(
    ports.map((p, i) => {
      const dir = join(root, `sk${i}`);
      mkdirSync(dir);
      return startSafekeeper(dir, p.pg, p.http);
    }),
  );
  for (const s of sks) round.proc(s);
  const quorum = quorumArgs(ports.map((p) => p.pg), TENANT, TIMELINE);
  const proposer = round.proc(new WalkeeperProc(['propose', '--primary', primary.connString, ...quorum]));
  await makeSynchronous(primary, PROPOSER_APP, () => proposer.output.slice(-2000));
  const standby = round.server(
    await LocalPg.standbyOf(primary, {
      prefix: 'wk-bf-standby-',
      walMethod: 'none',
      conf: { ...STANDBY_CONF, primary_conninfo: safekeeperConninfo(ports[0].pg, TENANT, TIMELINE, 'wk_standby'), synchronous_standby_names: PROPOSER_APP },
    }),
  );
  await standby.start();
  const probe = await loadThenCrash(primary, standby, async () => {
    proposer.kill();
    await Promise.all([primary.kill9(), proposer.exited]);
  });

  const started = performance.now();
  const startedAt = Date.now();
  const promote = round.proc(new WalkeeperProc(['promote', '--standby', standby.connString, ...quorum, '--timeout', '60s']));
  if ((await promote.exited) !== 0) throw new Error(`walkeeper promote failed: ${promote.output.trim().slice(-2000)}`);
  const writableMs = performance.now() - started;
  const proposeAt = Date.now() - startedAt;
  const newProposer = round.proc(new WalkeeperProc(['propose', '--primary', standby.connString, ...quorum]));
  await firstCommit(probe, r, PROPOSER_APP);
  const firstCommitMs = performance.now() - started;
  const steps = `${stepTimes('promote', promote.output, startedAt, PROMOTE_STEPS)}; exit +${writableMs.toFixed(0)}\n    ${stepTimes(`propose (started +${proposeAt})`, newProposer.output, startedAt, PROPOSE_STEPS)}; first commit +${firstCommitMs.toFixed(0)}`;
  return { writableMs, firstCommitMs, steps };
}

async function nativeRound(round: Round, r: number): Promise<Times> {
  const primary = await startPrimary(round, 'wk-bf-native-primary-');
  const streamFrom = (port: number, app: string): string => `host=127.0.0.1 port=${port} user=postgres application_name=${app}`;
  const standby = round.server(
    await LocalPg.standbyOf(primary, {
      prefix: 'wk-bf-native-standby-',
      conf: { ...STANDBY_CONF, primary_conninfo: streamFrom(primary.port, 'native'), synchronous_standby_names: 'downstream' },
    }),
  );
  // Backed up after the standby, so that the standby it streams from holds all the WAL it needs.
  const downstream = round.server(
    await LocalPg.standbyOf(primary, { prefix: 'wk-bf-native-down-', conf: { ...STANDBY_CONF, primary_conninfo: streamFrom(standby.port, 'downstream') } }),
  );
  await standby.start();
  await downstream.start();
  await makeSynchronous(primary, 'native', () => standby.logFile);
  const probe = await loadThenCrash(primary, standby, () => primary.kill9());

  const started = performance.now();
  await runPgOk('pg_ctl', ['promote', '-w', '-t', '60', '-D', standby.dataDir]);
  const writableMs = performance.now() - started;
  await firstCommit(probe, r, 'downstream');
  return { writableMs, firstCommitMs: performance.now() - started };
}

export async function failoverRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_FAILOVER === '0') return [];
  const rounds = Number(process.env.WK_BENCH_FAILOVER_ROUNDS ?? 3);
  const results: Record<Mode, Times[]> = { native: [], walkeeper: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['native', 'walkeeper'] as Mode[]) {
      const round = new Round();
      const onExit = (): void => round.killNow();
      process.once('exit', onExit);
      // Ctrl-C: exit through the 'exit' handler, which stops the round's servers and processes.
      const onSignal = (): never => process.exit(130);
      process.once('SIGINT', onSignal);
      try {
        const times = await (mode === 'native' ? nativeRound(round, r) : walkeeperRound(round, r));
        results[mode].push(times);
        process.stderr.write(`\n  round ${r + 1} ${mode.padEnd(9)}: writable after ${times.writableMs.toFixed(0)} ms, first commit after ${times.firstCommitMs.toFixed(0)} ms`);
        if (times.steps) process.stderr.write(`\n    ${times.steps}`);
      } finally {
        await round.end().catch((err: Error) => {
          process.stderr.write(`\n  cleaning up the round: ${err.message}`);
          round.killNow();
        });
        process.off('exit', onExit);
        process.off('SIGINT', onSignal);
      }
    }
  }
  process.stderr.write('\n');
  const w = (k: 'writableMs' | 'firstCommitMs'): number => median(results.walkeeper.map((x) => x[k]));
  const n = (k: 'writableMs' | 'firstCommitMs'): number => median(results.native.map((x) => x[k]));
  const name = `failover after kill -9, ×${rounds}`;
  const subject = 'walkeeper promote + propose';
  const baseline = 'pg_ctl promote, native sync standby';
  return [
    { name: `${name}: promote → writable`, subject, subjectValue: `${w('writableMs').toFixed(0)} ms`, baseline, baselineValue: `${n('writableMs').toFixed(0)} ms`, ratio: n('writableMs') / w('writableMs') },
    {
      name: `${name}: promote → first sync commit`,
      subject,
      subjectValue: `${w('firstCommitMs').toFixed(0)} ms`,
      baseline,
      baselineValue: `${n('firstCommitMs').toFixed(0)} ms`,
      ratio: n('firstCommitMs') / w('firstCommitMs'),
    },
  ];
}

// `node dist/bench/failover.js` runs this group alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { printTable } = await import('./lib.js');
  printTable(await failoverRows());
}
