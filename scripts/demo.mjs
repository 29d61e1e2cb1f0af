#!/usr/bin/env node
// `npm run demo`: vanilla PostgreSQL 15 with quorum commit through walkeeper,
// and a failover without losing an acknowledged commit.
//
// Starts, all on 127.0.0.1 and in temp directories:
//   * a throwaway PostgreSQL primary (pgbench scale 10),
//   * three safekeepers (`walkeeper run`),
//   * the proposer (`walkeeper propose`) as the primary's synchronous standby,
//   * a hot standby that streams its WAL from the first safekeeper,
// then runs pgbench and prints live status once a second: tps, the commit
// position, and each safekeeper's PostgreSQL timeline, flush LSN and lag from
// its admin API. Part way through one safekeeper is killed (kill -9) and
// later restarted, to show commits going on with two of three; a query then
// shows the same rows on the primary and the standby.
//
// Then the failover: pgbench again, the primary and its proposer are killed
// (kill -9) under it, `walkeeper promote` turns the standby into the new
// primary (PostgreSQL timeline 2), `walkeeper propose` starts in front of it,
// pgbench carries on there, and the rows pgbench had acknowledged before the
// crash are counted on the new primary. Everything is stopped and removed on
// exit or Ctrl-C.
//
// Environment: WK_DEMO_SECONDS (pgbench duration, default 30),
// WK_DEMO_FAULT=0 (no safekeeper kill), WK_DEMO_FAILOVER=0 (no failover),
// WK_PG_BIN (PostgreSQL binaries). When run as root, PostgreSQL runs as the
// `postgres` user.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = new URL('../dist/bench/pg-local.js', import.meta.url);
if (!existsSync(dist)) {
  process.stderr.write('demo: not built yet; run "npm run demo" (it builds first) or "npm run build"\n');
  process.exit(1);
}
const { LocalPg, PG_BIN, WalkeeperProc, freePort, quorumArgs, safekeeperConninfo, sleep, startSafekeeper, waitSyncStandby } = await import(dist.href);

const SECONDS = Number(process.env.WK_DEMO_SECONDS ?? 30);
const FAULT = process.env.WK_DEMO_FAULT !== '0';
const FAILOVER = process.env.WK_DEMO_FAILOVER !== '0';
const TENANT = 'de000000000000000000000000000001';
const TIMELINE = 'de000000000000000000000000000002';
const color = process.stdout.isTTY;
const dim = (s) => (color ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s) => (color ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s) => process.stdout.write(`${bold('demo')} ${s}\n`);

for (const bin of ['initdb', 'postgres', 'pgbench', 'pg_basebackup']) {
  if (!existsSync(join(PG_BIN, bin))) {
    process.stderr.write(`demo: ${join(PG_BIN, bin)} not found: install PostgreSQL 15 server binaries (Debian: apt-get install postgresql-15) or set WK_PG_BIN\n`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------- cleanup

const cleanups = [];
let cleaning = null;
let interrupted = false;
function cleanup() {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        /* best effort */
      }
    }
  })();
  return cleaning;
}
process.on('SIGINT', () => {
  interrupted = true;
  process.stdout.write('\n');
  say('interrupted: cleaning up');
  void cleanup().then(() => process.exit(130));
});
process.on('SIGTERM', () => {
  interrupted = true;
  void cleanup().then(() => process.exit(143));
});

// ---------------------------------------------------------------- helpers

const lsnNum = (s) => {
  if (!s) return 0n;
  const [hi, lo] = s.split('/');
  return (BigInt('0x' + hi) << 32n) | BigInt('0x' + lo);
};
const fmtLsn = (n) => `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
const bytes = (n) => {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  if (v < 1 << 20) return `${(v / 1024).toFixed(1)} kB`;
  return `${(v / (1 << 20)).toFixed(1)} MB`;
};

async function adminStatus(sk) {
  try {
    const r = await fetch(`http://127.0.0.1:${sk.http}/v1/tenant/${TENANT}/timeline/${TIMELINE}`, { signal: AbortSignal.timeout(500) });
    if (!r.ok) return null;
    return await r.json();
  } catch {
    return null;
  }
}

/** Prints a walkeeper process's log lines (JSON) worth seeing, dimmed, tagged with `who`. */
function logLines(who) {
  return (line) => {
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      if (line.trim()) process.stdout.write(dim(`  [${who}] ${line}\n`));
      return;
    }
    if (j.level < 30 || j.msg === 'status') return;
    const extra = ['term', 'vcl', 'startLsn', 'commitLsn', 'switchLsn', 'timeline', 'safekeeper', 'from', 'err']
      .filter((k) => j[k] !== undefined)
      .map((k) => `${k}=${Array.isArray(j[k]) ? j[k].join(',') : j[k]}`)
      .join(' ');
    process.stdout.write(dim(`  [${who}] ${j.msg}${extra ? ` (${extra})` : ''}\n`));
  };
}

/** `walkeeper propose` in front of `server`, its synchronous standby (the server names it in synchronous_standby_names). */
async function startProposer(server, sks) {
  const proposer = new WalkeeperProc(['propose', '--primary', server.connString, ...quorumArgs(sks.map((s) => s.pg), TENANT, TIMELINE)], { onLine: logLines('proposer') });
  cleanups.push(() => proposer.stop());
  await waitSyncStandby(server, 'walkeeper', () => proposer.output.slice(-3000));
  return proposer;
}

/** One status line: tps, the primary's position and PostgreSQL timeline, the commit position, each safekeeper, the standby. */
async function printStatus(t, tps, primary, standby, sks) {
  const st = await Promise.all(sks.map(adminStatus));
  const [[current, tli], replay] = await Promise.all([
    primary.sql("select pg_current_wal_flush_lsn(), ('x' || substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8))::bit(32)::int").then((v) => v.split('|')),
    standby ? standby.sql('select pg_last_wal_replay_lsn()').catch(() => '') : Promise.resolve(null),
  ]);
  const cur = lsnNum(current);
  const lag = (lsn) => bytes(cur > lsnNum(lsn) ? cur - lsnNum(lsn) : 0n);
  const parts = st.map((s, i) => (s ? `${sks[i].name} tl${s.pg_timeline} ${s.flush_lsn} (lag ${lag(s.flush_lsn)})` : `${sks[i].name} down`));
  let commit = 0n;
  for (const s of st) if (s && lsnNum(s.commit_lsn) > commit) commit = lsnNum(s.commit_lsn);
  const standbyPart = replay === null ? '' : `  standby ${replay || '-'}`;
  process.stdout.write(`  ${t.toFixed(0).padStart(3)}s  tps ${tps.padStart(5)}  primary tl${tli} ${current}  commit ${fmtLsn(commit)}  ${parts.join('  ')}${standbyPart}\n`);
}

/**
 * pgbench -N on `primary` for `seconds` with a status line a second;
 * `tick(t)` runs before each line (to inject faults). Resolves to pgbench's
 * result, whatever its exit status (the primary may die under it).
 */
async function pgbenchLive(primary, standby, sks, seconds, tick = async () => {}) {
  let tps = '-';
  const bench = primary.pgbenchResult(['-n', '-N', '-c', '8', '-j', '2', '-T', String(seconds), '-P', '1'], {
    onStderr: (s) => {
      const m = /progress: [\d.]+ s, ([\d.]+) tps/.exec(s);
      if (m) tps = Math.round(Number(m[1])).toString();
    },
  });
  const started = Date.now();
  let done = false;
  bench.finally(() => (done = true)).catch(() => {});
  while (!done && !interrupted) {
    await sleep(1000);
    if (interrupted || done) break;
    const t = (Date.now() - started) / 1000;
    if ((await tick(t)) === 'stop') break;
    await printStatus(t, tps, primary, standby, sks).catch((err) => process.stdout.write(dim(`  status: ${err.message.split('\n')[0]}\n`)));
  }
  return bench;
}

const processed = (r) => Number(/actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0);
const ROWS = 'select count(*) as transactions, sum(delta) as total_delta, max(mtime) as last_commit from pgbench_history';

// ---------------------------------------------------------------- the run

async function main() {
  say(`PostgreSQL binaries: ${PG_BIN}`);
  say('starting a throwaway primary (initdb, pgbench -i -s 10) ...');
  const primary = await LocalPg.init({ prefix: 'wk-demo-primary-', conf: { max_wal_size: '2GB', checkpoint_timeout: '30min' } });
  cleanups.push(() => primary.remove());
  await primary.start();
  await primary.pgbench(['-i', '-s', '10', '-q']);

  const skRoot = mkdtempSync(join(tmpdir(), 'wk-demo-sk-'));
  cleanups.push(() => rmSync(skRoot, { recursive: true, force: true }));
  const sks = [];
  for (let i = 0; i < 3; i++) sks.push({ name: `sk${i + 1}`, pg: await freePort(), http: await freePort(), dir: join(skRoot, `sk${i + 1}`), proc: null });
  const startSk = async (sk) => {
    mkdirSync(sk.dir, { recursive: true });
    sk.proc = await startSafekeeper(sk.dir, sk.pg, sk.http);
  };
  cleanups.push(async () => {
    for (const sk of sks) sk.proc?.kill();
  });
  await Promise.all(sks.map(startSk));
  say(`3 safekeepers: ${sks.map((s) => `${s.name} pg 127.0.0.1:${s.pg} http :${s.http}`).join(', ')}`);

  await primary.sql("alter system set synchronous_standby_names = 'walkeeper'");
  await primary.sql('select pg_reload_conf()');
  const proposer = await startProposer(primary, sks);
  say(`the proposer is the primary's synchronous standby: a commit returns once its WAL is on 2 of 3 safekeepers`);

  say(`starting a hot standby from a base backup; it streams WAL from ${sks[0].name} ...`);
  const standby = await LocalPg.standbyOf(primary, {
    prefix: 'wk-demo-standby-',
    walMethod: 'none',
    conf: {
      primary_conninfo: safekeeperConninfo(sks[0].pg, TENANT, TIMELINE, 'demo_standby'),
      hot_standby_feedback: 'on',
      wal_receiver_status_interval: 1,
      wal_retrieve_retry_interval: '200ms',
      // Ignored while it is a standby; once promoted, its first commit already waits for the quorum.
      synchronous_standby_names: 'walkeeper',
    },
  });
  cleanups.push(() => standby.remove());
  await standby.start();

  say(`pgbench -N -c 8 -j 2 -T ${SECONDS} through the quorum${FAULT ? `; ${sks[2].name} gets kill -9 at ${Math.round(SECONDS / 3)} s and comes back at ${Math.round((2 * SECONDS) / 3)} s` : ''}`);
  const out = await pgbenchLive(primary, standby, sks, SECONDS, async (t) => {
    if (FAULT && sks[2].proc && t >= SECONDS / 3 && t < (2 * SECONDS) / 3) {
      sks[2].proc.kill();
      sks[2].proc = null;
      say(`kill -9 ${sks[2].name}`);
    } else if (FAULT && !sks[2].proc && t >= (2 * SECONDS) / 3) {
      await startSk(sks[2]);
      say(`${sks[2].name} restarted`);
    }
  });
  if (out.code !== 0) throw new Error(`pgbench failed: ${out.stderr.trim().slice(-2000)}`);
  const tpsTotal = /tps = ([\d.]+)/.exec(out.stdout)?.[1];
  const lat = /latency average = ([\d.]+ ms)/.exec(out.stdout)?.[1];
  say(`pgbench: ${Number(tpsTotal).toFixed(0)} tps, average latency ${lat}`);

  // The standby follows the safekeepers' commit position.
  const want = await primary.sql('select count(*) from pgbench_history');
  for (let i = 0; i < 100; i++) {
    const got = await standby.sql('select count(*) from pgbench_history');
    if (got === want) break;
    await sleep(200);
  }
  say(`on the primary: ${ROWS}`);
  process.stdout.write(`  ${await primary.sql(ROWS)}\n`);
  say(`on the hot standby (WAL from ${sks[0].name} only):`);
  process.stdout.write(`  ${await standby.sql(ROWS)}\n`);
  const slot = await primary.sql("select slot_name || ' restart_lsn=' || restart_lsn || ' xmin=' || coalesce(xmin::text, '-') from pg_replication_slots where slot_name = 'walkeeper'");
  say(`the proposer's slot on the primary: ${slot}`);

  if (FAILOVER && !interrupted) await failover(primary, proposer, standby, sks);
}

/** kill -9 the primary under pgbench, promote the standby, carry the quorum on there, count what survived. */
async function failover(primary, proposer, standby, sks) {
  for (const sk of sks) if (!sk.proc) await startSk(sk);
  const killAt = Math.max(3, Math.round(SECONDS / 3));
  const before = Number(await primary.sql('select count(*) from pgbench_history'));
  say(`failover: pgbench again; at ${killAt} s the primary and its proposer get kill -9 (the host dies)`);
  const crashed = await pgbenchLive(primary, standby, sks, 600, async (t) => {
    if (t < killAt) return;
    proposer.kill();
    await Promise.all([primary.kill9(), proposer.exited]);
    say('kill -9 the primary and its proposer');
    return 'stop';
  });
  const acked = processed(crashed);
  say(`pgbench had ${acked} transactions acknowledged when the primary died (${before} rows in pgbench_history before it started)`);

  const quorum = quorumArgs(sks.map((s) => s.pg), TENANT, TIMELINE);
  say(`walkeeper promote --standby "${standby.connString}" ${quorum.join(' ')}`);
  const started = Date.now();
  const promote = new WalkeeperProc(['promote', '--standby', standby.connString, ...quorum, '--timeout', '60s'], { onLine: logLines('promote') });
  cleanups.push(() => promote.stop());
  if ((await promote.exited) !== 0) throw new Error(`walkeeper promote failed: ${promote.output.trim().slice(-2000)}`);
  const switched = /switch LSN \S+, PostgreSQL timeline \d+/.exec(promote.output)?.[0];
  say(`promoted in ${Date.now() - started} ms: ${switched}`);

  await startProposer(standby, sks);
  say(`walkeeper propose in front of the new primary: commits go through the quorum again, ${Date.now() - started} ms after promote started`);
  // Nothing has written to the new primary yet: what pgbench left there is what survived the crash.
  const survived = Number(await standby.sql('select count(*) from pgbench_history')) - before;
  const verdict = survived >= acked ? 'none lost' : `${acked - survived} LOST`;
  say(`of the ${acked} transactions acknowledged before the crash, ${survived} rows are on the new primary: ${verdict}${survived > acked ? ` (${survived - acked} in flight at the crash made it too)` : ''}`);
  if (survived < acked) throw new Error('acknowledged transactions are missing on the new primary');

  const rest = Math.max(5, Math.round(SECONDS / 2));
  say(`pgbench -N -c 8 -j 2 -T ${rest} on the new primary`);
  const after = await pgbenchLive(standby, null, sks, rest);
  if (after.code !== 0) throw new Error(`pgbench on the new primary failed: ${after.stderr.trim().slice(-2000)}`);
  say(`pgbench on the new primary: ${processed(after)} transactions`);

  say(`on the new primary: ${ROWS}`);
  process.stdout.write(`  ${await standby.sql(ROWS)}\n`);
}

try {
  await main();
  say('done: stopping everything and removing the temp directories');
  await cleanup();
  process.exit(0);
} catch (err) {
  // After Ctrl-C the signal handler finishes the cleanup and exits.
  if (interrupted) await new Promise(() => {});
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  await cleanup();
  process.exit(1);
}
