// Commit throughput, latency and standby-side CPU per commit: pgbench -N
// (scale 10, 2 threads) on a PostgreSQL 15 primary whose synchronous
// standby side is, in turn, PostgreSQL's own replication (`FIRST 1` of one
// physical standby; `ANY 2` of three physical standbys; `ANY 2` of three
// `pg_receivewal --synchronous`) and `walkeeper propose` in front of three
// safekeepers (each fsyncs before it acknowledges); see quorum-sides.ts.
// Everything runs on one machine in one run. Sides alternate (forward in
// even rounds, backward in odd ones) so that load drifting on a shared
// machine hits all of them; only one side runs at a time. Within a side,
// each client count runs back to back (default 8 clients, then 1).
//
// p99 latency comes from pgbench's per-transaction log (--log): the third
// column of every line is the transaction's latency in µs; all lines of a
// run are sorted and the 99th percentile taken (nearest rank). CPU per
// commit is the user and system time of the side's process trees (from
// /proc/<pid>/stat, before and after the pgbench run) divided by the
// transactions pgbench processed.
//
// Knobs (environment): WK_BENCH_QUORUM=0 skips the group;
// WK_BENCH_QUORUM_SECONDS (default 15) per pgbench run; WK_BENCH_QUORUM_ROUNDS
// (default 2); WK_BENCH_QUORUM_WARMUP (default 3: seconds of unmeasured
// pgbench after each side switch); WK_BENCH_QUORUM_CLIENTS (default "8,1", a list);
// WK_BENCH_QUORUM_SIDES (default "first1,any2,receivewal,walkeeper");
// WK_BENCH_QUORUM_RATE (pgbench -R: a fixed rate in tps instead of as fast
// as the side allows, so that sides compare their CPU at the same load);
// WK_BENCH_QUORUM_SK_ARGS (extra safekeeper options, e.g. "--no-sync");
// WK_BENCH_QUORUM_SAFEKEEPERS (default 3); WK_BENCH_QUORUM_SEG_MB (WAL
// segment size); WK_BENCH_QUORUM_KEEP_LOGS=DIR keeps pgbench's logs;
// WK_BENCH_QUORUM_BASE=DIR (a built walkeeper checkout) allows the side
// "base": the same quorum run from that build, for before/after figures in
// one run (e.g. WK_BENCH_QUORUM_SIDES=walkeeper,base).
import { cpSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, type BenchRow } from './lib.js';
import { LocalPg, pgbenchSummary, pgTempDir, sleep } from './pg-local.js';
import { cpuBetween, snapshotTrees } from './proc-cpu.js';
import { SIDE_LABELS, SIDE_NAMES, StandbySides, type SideName } from './quorum-sides.js';

interface Run {
  tps: number;
  avgMs: number;
  p99Ms: number;
  transactions: number;
  /** The standby side's CPU per transaction, in µs. */
  userUs: number;
  sysUs: number;
  /** The primary's CPU per transaction (all its processes), in µs: context, not compared. */
  primaryUs: number;
  /** Of the side's CPU, the proposer's (walkeeper sides; NaN otherwise). */
  proposerUs: number;
}


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

function list(env: string | undefined, dflt: string): string[] {
  return (env ?? dflt).split(',').map((s) => s.trim()).filter(Boolean);
}

interface Medians {
  tps: number;
  avgMs: number;
  p99Ms: number;
  cpuUs: number;
  userUs: number;
  sysUs: number;
  primaryUs: number;
  proposerUs: number;
}

function medians(runs: Run[]): Medians {
  const m = (f: (r: Run) => number): number => median(runs.map(f));
  return { tps: m((r) => r.tps), avgMs: m((r) => r.avgMs), p99Ms: m((r) => r.p99Ms), cpuUs: m((r) => r.userUs + r.sysUs), userUs: m((r) => r.userUs), sysUs: m((r) => r.sysUs), primaryUs: m((r) => r.primaryUs), proposerUs: m((r) => r.proposerUs) };
}

const cpuText = (m: Medians): string => `${m.cpuUs.toFixed(0)} µs (u ${m.userUs.toFixed(0)} + s ${m.sysUs.toFixed(0)})`;

/** Rows comparing walkeeper with each native quorum side (and FIRST 1 for throughput). */
function rowsFor(name: string, by: Partial<Record<SideName, Medians>>): BenchRow[] {
  const wk = by.walkeeper;
  if (!wk) return [];
  const rows: BenchRow[] = [];
  const subject = SIDE_LABELS.walkeeper;
  const pair = (metric: string, base: SideName, value: (m: Medians) => string, ratio: (w: Medians, b: Medians) => number): void => {
    const b = by[base];
    if (b) rows.push({ name: `${name}: ${metric}`, subject, subjectValue: value(wk), baseline: SIDE_LABELS[base], baselineValue: value(b), ratio: ratio(wk, b) });
  };
  const higherBetter = (f: (m: Medians) => number) => (w: Medians, b: Medians) => f(w) / f(b);
  const lowerBetter = (f: (m: Medians) => number) => (w: Medians, b: Medians) => f(b) / f(w);
  for (const base of ['any2', 'receivewal', 'first1', 'base'] as SideName[]) pair('tps', base, (m) => `${m.tps.toFixed(0)} tps`, higherBetter((m) => m.tps));
  for (const base of ['any2', 'receivewal', 'base'] as SideName[]) {
    pair('avg latency', base, (m) => `${m.avgMs.toFixed(2)} ms`, lowerBetter((m) => m.avgMs));
    pair('p99 latency', base, (m) => `${m.p99Ms.toFixed(2)} ms`, lowerBetter((m) => m.p99Ms));
    pair('standby-side CPU per commit', base, cpuText, lowerBetter((m) => m.cpuUs));
  }
  return rows;
}

export async function quorumRows(): Promise<BenchRow[]> {
  if (process.env.WK_BENCH_QUORUM === '0') return [];
  const seconds = Number(process.env.WK_BENCH_QUORUM_SECONDS ?? 15);
  const rounds = Number(process.env.WK_BENCH_QUORUM_ROUNDS ?? 2);
  const warmup = Number(process.env.WK_BENCH_QUORUM_WARMUP ?? 3);
  const clientCounts = list(process.env.WK_BENCH_QUORUM_CLIENTS, '8,1').map(Number);
  const rate = process.env.WK_BENCH_QUORUM_RATE ? ['-R', process.env.WK_BENCH_QUORUM_RATE] : [];
  const sideNames = list(process.env.WK_BENCH_QUORUM_SIDES, SIDE_NAMES.join(',')) as SideName[];
  const baseDir = process.env.WK_BENCH_QUORUM_BASE;
  for (const s of sideNames) {
    if (!SIDE_NAMES.includes(s) && s !== 'base') throw new Error(`WK_BENCH_QUORUM_SIDES: unknown side "${s}" (known: ${SIDE_NAMES.join(', ')}, base)`);
    if (s === 'base' && !baseDir) throw new Error('WK_BENCH_QUORUM_SIDES: side "base" needs WK_BENCH_QUORUM_BASE, a built walkeeper checkout');
  }
  const segMb = process.env.WK_BENCH_QUORUM_SEG_MB ? Number(process.env.WK_BENCH_QUORUM_SEG_MB) : undefined;
  const primary = await LocalPg.init({ prefix: 'wk-bq-primary-', walSegSizeMb: segMb, conf: { max_wal_size: '4GB', checkpoint_timeout: '30min', wal_keep_size: 0 } });
  const skRoot = join(tmpdir(), `wk-bq-sk-${process.pid}`);
  const logDir = pgTempDir('wk-bq-log-');
  const keepLogs = process.env.WK_BENCH_QUORUM_KEEP_LOGS;
  const sides = new StandbySides(primary, skRoot, {
    safekeepers: Number(process.env.WK_BENCH_QUORUM_SAFEKEEPERS ?? 3),
    skArgs: (process.env.WK_BENCH_QUORUM_SK_ARGS ?? '').split(' ').filter(Boolean),
    baseBin: baseDir ? join(resolve(baseDir), 'bin', 'walkeeper.js') : undefined,
  });
  const onExit = (): void => {
    sides.kill();
    primary.killNow();
  };
  process.once('exit', onExit);
  const results = new Map<string, Run[]>();
  try {
    await primary.start();
    await primary.pgbench(['-i', '-s', '10', '-q']);
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 ? [...sideNames].reverse() : sideNames) {
        await sides.use(side);
        // Unmeasured: a side just started has cold caches and, for walkeeper, code not yet optimised.
        if (warmup > 0) await primary.pgbench(['-n', '-N', '-c', '8', '-j', '2', '-T', String(warmup)]);
        for (const clients of clientCounts) {
          await primary.sql('checkpoint');
          await sleep(1000);
          const prefix = `tx${r}${side}c${clients}`;
          const cpu0 = snapshotTrees(sides.pids());
          const prim0 = snapshotTrees([primary.pid!]);
          const proposerPid = sides.proposerPid();
          const prop0 = proposerPid ? snapshotTrees([proposerPid]) : null;
          const out = await primary.pgbench(['-n', '-N', '-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(seconds), ...rate, '--log', `--log-prefix=${join(logDir, prefix)}`], { cwd: logDir });
          const cpu = cpuBetween(cpu0, snapshotTrees(sides.pids()));
          const prim = cpuBetween(prim0, snapshotTrees([primary.pid!]));
          const prop = prop0 ? cpuBetween(prop0, snapshotTrees([proposerPid!])) : null;
          const s = pgbenchSummary(out);
          const l = latencyFromLogs(logDir, prefix);
          for (const f of readdirSync(logDir)) {
            if (!f.startsWith(prefix + '.')) continue;
            if (keepLogs) cpSync(join(logDir, f), join(keepLogs, f));
            rmSync(join(logDir, f));
          }
          const n = s.transactions;
          const run: Run = { tps: s.tps, avgMs: s.latencyMs, p99Ms: l.p99Ms, transactions: n, userUs: cpu.userUs / n, sysUs: cpu.sysUs / n, primaryUs: (prim.userUs + prim.sysUs) / n, proposerUs: prop ? (prop.userUs + prop.sysUs) / n : NaN };
          const proposerText = prop ? ` (proposer ${run.proposerUs.toFixed(0)})` : '';
          const key = `${clients}/${side}`;
          results.set(key, [...(results.get(key) ?? []), run]);
          process.stderr.write(
            `\n  round ${r + 1} c${clients} ${side.padEnd(10)}: ${run.tps.toFixed(0)} tps, avg ${run.avgMs.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, ` +
              `side CPU ${(run.userUs + run.sysUs).toFixed(0)} µs/tx (u ${run.userUs.toFixed(0)} s ${run.sysUs.toFixed(0)})${proposerText}, primary ${run.primaryUs.toFixed(0)} µs/tx (${n} tx)`,
          );
        }
      }
    }
    process.stderr.write('\n');
  } finally {
    await sides.stopAll();
    await primary.remove().catch(() => {});
    rmSync(skRoot, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
    process.off('exit', onExit);
  }
  const rows: BenchRow[] = [];
  for (const clients of clientCounts) {
    const by: Partial<Record<SideName, Medians>> = {};
    for (const side of sideNames) {
      const runs = results.get(`${clients}/${side}`);
      if (!runs?.length) continue;
      const m = (by[side] = medians(runs));
      process.stderr.write(
        `  c${clients} median ${side.padEnd(10)}: ${m.tps.toFixed(0)} tps, avg ${m.avgMs.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms, side CPU ${cpuText(m)} per tx${Number.isNaN(m.proposerUs) ? '' : ` (proposer ${m.proposerUs.toFixed(0)} µs)`}, primary ${m.primaryUs.toFixed(0)} µs per tx\n`,
      );
    }
    rows.push(...rowsFor(`pgbench -N s10 c${clients}${rate.length ? ` -R ${rate[1]}` : ''} ${seconds}s ×${rounds}`, by));
  }
  return rows;
}

// `node dist/bench/quorum.js` runs this group alone.
if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const { printTable } = await import('./lib.js');
  printTable(await quorumRows());
}
