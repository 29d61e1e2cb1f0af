// Commit throughput through the quorum: pgbench -N (scale 10, 8 clients,
// 2 threads) on a PostgreSQL 15 primary whose synchronous standby is
// `walkeeper propose` in front of three safekeepers (each fsyncs before it
// acknowledges), against the same primary with a native PostgreSQL
// synchronous standby (physical streaming, fsync on), on the same machine
// in the same run. The modes alternate (native, quorum, native, quorum, ...)
// so that load drifting on a shared machine hits both; only one standby
// side runs at a time.
//
// p99 latency comes from pgbench's per-transaction log (--log): the third
// column of every line is the transaction's latency in µs; all lines of a
// run are sorted and the 99th percentile taken (nearest rank).
//
// WK_BENCH_QUORUM_SECONDS (default 30) and WK_BENCH_QUORUM_ROUNDS (default 2)
// shorten or lengthen it; WK_BENCH_QUORUM=0 skips it. WK_BENCH_QUORUM_SK_ARGS
// passes extra options to the safekeepers (e.g. "--no-sync"), WK_BENCH_QUORUM_SAFEKEEPERS
// changes their number and WK_BENCH_QUORUM_SEG_MB the WAL segment size, WK_BENCH_QUORUM_KEEP_LOGS=DIR
// keeps pgbench's per-transaction logs there, WK_BENCH_QUORUM_CLIENTS changes the number of
// clients (diagnosis only).
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type BenchRow } from './lib.js';
import { freePort, LocalPg, pgbenchSummary, pgTempDir, quorumArgs, sleep, startSafekeeper, waitSyncStandby, WalkeeperProc } from './pg-local.js';

const TENANT = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
const TIMELINE = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';

interface Run {
  tps: number;
  avgMs: number;
  p99Ms: number;
  transactions: number;
}

type Mode = 'native' | 'quorum';

/** p99 (nearest rank) and mean of the latencies in pgbench --log files under `dir`. */
export function latencyFromLogs(dir: string, prefix: string): { p99Ms: number; avgMs: number; count: number } {
  const lat: number[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(prefix + '.')) continue;
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      const cols = line.split(' ');
      if (cols.length >= 3) lat.push(Number(cols[2]));
    }
  }
  if (lat.length === 0) return { p99Ms: NaN, avgMs: NaN, count: 0 };
  const sorted = Float64Array.from(lat).sort();
  const rank = Math.max(0, Math.ceil(0.99 * sorted.length) - 1);
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p99Ms: sorted[rank] / 1000, avgMs: sum / sorted.length / 1000, count: sorted.length };
}

class QuorumSide {
  safekeepers: WalkeeperProc[] = [];
  proposer: WalkeeperProc | null = null;
  private ports: { pg: number; http: number }[] = [];

  constructor(
    private readonly root: string,
    private readonly primary: LocalPg,
  ) {}

  async start(): Promise<void> {
    const count = Number(process.env.WK_BENCH_QUORUM_SAFEKEEPERS ?? 3);
    if (this.ports.length === 0) for (let i = 0; i < count; i++) this.ports.push({ pg: await freePort(), http: await freePort() });
    this.safekeepers = await Promise.all(
      this.ports.map((p, i) => {
        const dir = join(this.root, `sk${i}`);
        mkdirSync(dir, { recursive: true });
        return startSafekeeper(dir, p.pg, p.http, (process.env.WK_BENCH_QUORUM_SK_ARGS ?? '').split(' ').filter(Boolean));
      }),
    );
    this.proposer = new WalkeeperProc([
      'propose',
      '--primary',
      `host=127.0.0.1 port=${this.primary.port} user=postgres`,
      ...quorumArgs(this.ports.map((p) => p.pg), TENANT, TIMELINE),
    ]);
  }

  async stop(): Promise<void> {
    await this.proposer?.stop();
    this.proposer = null;
    await Promise.all(this.safekeepers.map((s) => s.stop()));
    this.safekeepers = [];
  }

  kill(): void {
    this.proposer?.kill();
    for (const s of this.safekeepers) s.kill();
  }
}

export async function quorumRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_QUORUM === '0') return [];
  const seconds = Number(process.env.WK_BENCH_QUORUM_SECONDS ?? 30);
  const rounds = Number(process.env.WK_BENCH_QUORUM_ROUNDS ?? 2);
  const segMb = process.env.WK_BENCH_QUORUM_SEG_MB ? Number(process.env.WK_BENCH_QUORUM_SEG_MB) : undefined;
  const primary = await LocalPg.init({ prefix: 'wk-bq-primary-', walSegSizeMb: segMb, conf: { max_wal_size: '4GB', checkpoint_timeout: '30min', wal_keep_size: 0 } });
  const skRoot = join(tmpdir(), `wk-bq-sk-${process.pid}`);
  const logDir = pgTempDir('wk-bq-log-');
  const keepLogs = process.env.WK_BENCH_QUORUM_KEEP_LOGS;
  const clients = Number(process.env.WK_BENCH_QUORUM_CLIENTS ?? 8);
  let native: LocalPg | null = null;
  const side = new QuorumSide(skRoot, primary);
  const onExit = (): void => {
    side.kill();
    native?.killNow();
    primary.killNow();
  };
  process.once('exit', onExit);
  const results: Record<Mode, Run[]> = { native: [], quorum: [] };
  try {
    await primary.start();
    await primary.pgbench(['-i', '-s', '10', '-q']);
    await primary.sql("select pg_create_physical_replication_slot('native')");
    native = await LocalPg.standbyOf(primary, {
      prefix: 'wk-bq-native-',
      conf: { primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres application_name=native`, primary_slot_name: 'native' },
    });

    const setMode = async (mode: Mode): Promise<void> => {
      if (mode === 'native') {
        await side.stop();
        if (!native!.running) await native!.start();
      } else {
        if (native!.running) await native!.stop();
        if (!side.proposer) await side.start();
      }
      const app = mode === 'native' ? 'native' : 'walkeeper';
      await primary.sql(`alter system set synchronous_standby_names = '${app}'`);
      await primary.sql('select pg_reload_conf()');
      await waitSyncStandby(primary, app, () => (mode === 'quorum' ? (side.proposer?.output ?? '').slice(-2000) : native!.logFile));
    };

    for (let r = 0; r < rounds; r++) {
      for (const mode of ['native', 'quorum'] as Mode[]) {
        await setMode(mode);
        await primary.sql('checkpoint');
        await sleep(1000);
        const prefix = `tx${r}${mode}`;
        const out = await primary.pgbench(['-n', '-N', '-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(seconds), '--log', `--log-prefix=${join(logDir, prefix)}`], { cwd: logDir });
        const s = pgbenchSummary(out);
        const l = latencyFromLogs(logDir, prefix);
        for (const f of readdirSync(logDir)) {
          if (!f.startsWith(prefix + '.')) continue;
          if (keepLogs) cpSync(join(logDir, f), join(keepLogs, f));
          rmSync(join(logDir, f));
        }
        const run: Run = { tps: s.tps, avgMs: s.latencyMs, p99Ms: l.p99Ms, transactions: s.transactions };
        results[mode].push(run);
        process.stderr.write(`\n  round ${r + 1} ${mode.padEnd(6)}: ${run.tps.toFixed(0)} tps, avg ${run.avgMs.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms (${run.transactions} tx)`);
      }
    }
    process.stderr.write('\n');
  } finally {
    await side.stop().catch(() => side.kill());
    await native?.remove().catch(() => {});
    await primary.remove().catch(() => {});
    rmSync(skRoot, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
    process.off('exit', onExit);
  }
  const q = (k: keyof Run): number => median(results.quorum.map((x) => x[k]));
  const n = (k: keyof Run): number => median(results.native.map((x) => x[k]));
  const name = `pgbench -N s10 c${clients} ${seconds}s ×${rounds}`;
  const subject = 'quorum of 3 (walkeeper propose)';
  const baseline = 'native sync standby';
  return [
    { name: `${name}: tps`, subject, subjectValue: `${q('tps').toFixed(0)} tps`, baseline, baselineValue: `${n('tps').toFixed(0)} tps`, ratio: q('tps') / n('tps') },
    { name: `${name}: avg latency`, subject, subjectValue: `${q('avgMs').toFixed(2)} ms`, baseline, baselineValue: `${n('avgMs').toFixed(2)} ms`, ratio: n('avgMs') / q('avgMs') },
    { name: `${name}: p99 latency`, subject, subjectValue: `${q('p99Ms').toFixed(2)} ms`, baseline, baselineValue: `${n('p99Ms').toFixed(2)} ms`, ratio: n('p99Ms') / q('p99Ms') },
  ];
}

// `node dist/bench/quorum.js` runs this group alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { printTable } = await import('./lib.js');
  printTable(await quorumRows());
}
