#!/usr/bin/env node
// `npm run demo`: vanilla PostgreSQL 15 with quorum commit through walkeeper.
//
// Starts, all on 127.0.0.1 and in temp directories:
//   * a throwaway PostgreSQL primary (pgbench scale 10),
//   * three safekeepers (`walkeeper run`),
//   * the proposer (`walkeeper propose`) as the primary's synchronous standby,
//   * a hot standby that streams its WAL from the first safekeeper,
// then runs pgbench and prints live status once a second: tps, the commit
// position, and each safekeeper's flush LSN and lag from its admin API. Part
// way through one safekeeper is killed (kill -9) and later restarted, to
// show commits going on with two of three. Finally it runs a query on the
// standby. Everything is stopped and removed on exit or Ctrl-C.
//
// Environment: WK_DEMO_SECONDS (pgbench duration, default 30),
// WK_DEMO_FAULT=0 (no safekeeper kill), WK_PG_BIN (PostgreSQL binaries).
// When run as root, PostgreSQL runs as the `postgres` user.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dist = new URL('../dist/bench/pg-local.js', import.meta.url);
if (!existsSync(dist)) {
  process.stderr.write('demo: not built yet; run "npm run demo" (it builds first) or "npm run build"\n');
  process.exit(1);
}
const { LocalPg, PG_BIN, WalkeeperProc, freePort, sleep, startSafekeeper } = await import(dist.href);

const SECONDS = Number(process.env.WK_DEMO_SECONDS ?? 30);
const FAULT = process.env.WK_DEMO_FAULT !== '0';
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

function proposerLogLine(line) {
  let j;
  try {
    j = JSON.parse(line);
  } catch {
    return;
  }
  if (j.level < 30 || j.msg === 'status') return;
  const extra = ['term', 'vcl', 'startLsn', 'commitLsn', 'safekeeper', 'from', 'err']
    .filter((k) => j[k] !== undefined)
    .map((k) => `${k}=${Array.isArray(j[k]) ? j[k].join(',') : j[k]}`)
    .join(' ');
  process.stdout.write(dim(`  [proposer] ${j.msg}${extra ? ` (${extra})` : ''}\n`));
}

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

  const proposer = new WalkeeperProc(
    [
      'propose',
      '--primary',
      `host=127.0.0.1 port=${primary.port} user=postgres`,
      '--safekeepers',
      sks.map((s) => `127.0.0.1:${s.pg}`).join(','),
      '--tenant',
      TENANT,
      '--timeline',
      TIMELINE,
    ],
    { onLine: proposerLogLine },
  );
  cleanups.push(() => proposer.stop());
  await primary.sql("alter system set synchronous_standby_names = 'walkeeper'");
  await primary.sql('select pg_reload_conf()');
  for (let i = 0; ; i++) {
    const v = await primary.sql("select sync_state from pg_stat_replication where application_name = 'walkeeper' and state = 'streaming'");
    if (v === 'sync') break;
    if (!proposer.alive || i > 300) throw new Error(`the proposer did not become the synchronous standby:\n${proposer.output.slice(-3000)}`);
    await sleep(100);
  }
  say(`the proposer is the primary's synchronous standby: a commit returns once its WAL is on 2 of 3 safekeepers`);

  say(`starting a hot standby from a base backup; it streams WAL from ${sks[0].name} ...`);
  const standby = await LocalPg.standbyOf(primary, {
    prefix: 'wk-demo-standby-',
    walMethod: 'none',
    conf: {
      primary_conninfo: `host=127.0.0.1 port=${sks[0].pg} user=postgres application_name=demo_standby options='-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}'`,
      hot_standby_feedback: 'on',
      wal_receiver_status_interval: 1,
      wal_retrieve_retry_interval: '200ms',
    },
  });
  cleanups.push(() => standby.remove());
  await standby.start();

  say(`pgbench -N -c 8 -j 2 -T ${SECONDS} through the quorum${FAULT ? `; ${sks[2].name} gets kill -9 at ${Math.round(SECONDS / 3)} s and comes back at ${Math.round((2 * SECONDS) / 3)} s` : ''}`);
  let tps = '-';
  const bench = primary.pgbench(['-n', '-N', '-c', '8', '-j', '2', '-T', String(SECONDS), '-P', '1'], {
    onStderr: (s) => {
      const m = /progress: [\d.]+ s, ([\d.]+) tps/.exec(s);
      if (m) tps = Math.round(Number(m[1])).toString();
    },
  });
  const started = Date.now();
  let done = false;
  bench.finally(() => (done = true)).catch(() => {});
  let killed = false;
  let restarted = false;
  while (!done && !interrupted) {
    await sleep(1000);
    if (interrupted) break;
    const t = (Date.now() - started) / 1000;
    if (FAULT && !killed && t >= SECONDS / 3) {
      killed = true;
      sks[2].proc.kill();
      sks[2].proc = null;
      say(`kill -9 ${sks[2].name}`);
    }
    if (FAULT && killed && !restarted && t >= (2 * SECONDS) / 3) {
      restarted = true;
      await startSk(sks[2]);
      say(`${sks[2].name} restarted`);
    }
    const st = await Promise.all(sks.map(adminStatus));
    const [current, replay] = await Promise.all([primary.sql('select pg_current_wal_flush_lsn()'), standby.sql('select pg_last_wal_replay_lsn()').catch(() => '')]);
    const cur = lsnNum(current);
    const lag = (lsn) => bytes(cur > lsnNum(lsn) ? cur - lsnNum(lsn) : 0n);
    const parts = st.map((s, i) => (s ? `${sks[i].name} ${s.flush_lsn} (lag ${lag(s.flush_lsn)})` : `${sks[i].name} down`));
    let commit = 0n;
    for (const s of st) if (s && lsnNum(s.commit_lsn) > commit) commit = lsnNum(s.commit_lsn);
    const fmt = (n) => `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
    process.stdout.write(`  ${t.toFixed(0).padStart(3)}s  tps ${tps.padStart(5)}  primary ${current}  commit ${fmt(commit)}  ${parts.join('  ')}  standby ${replay || '-'}\n`);
  }
  const out = await bench;
  const tpsTotal = /tps = ([\d.]+)/.exec(out)?.[1];
  const lat = /latency average = ([\d.]+ ms)/.exec(out)?.[1];
  say(`pgbench: ${Number(tpsTotal).toFixed(0)} tps, average latency ${lat}`);

  // The standby follows the safekeepers' commit position.
  const want = await primary.sql('select count(*) from pgbench_history');
  for (let i = 0; i < 100; i++) {
    const got = await standby.sql('select count(*) from pgbench_history');
    if (got === want) break;
    await sleep(200);
  }
  const q = "select count(*) as transactions, sum(delta) as total_delta, max(mtime) as last_commit from pgbench_history";
  say(`on the primary: ${q}`);
  process.stdout.write(`  ${await primary.sql(q)}\n`);
  say(`on the hot standby (WAL from ${sks[0].name} only):`);
  process.stdout.write(`  ${await standby.sql(q)}\n`);
  const slot = await primary.sql("select slot_name || ' restart_lsn=' || restart_lsn || ' xmin=' || coalesce(xmin::text, '-') from pg_replication_slots where slot_name = 'walkeeper'");
  say(`the proposer's slot on the primary: ${slot}`);
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
