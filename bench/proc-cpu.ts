// CPU time of process trees from /proc, for "CPU per commit" rows: a
// standby side is several processes (a standby postmaster and its
// walreceiver and startup children, three pg_receivewal, a proposer and
// three safekeepers), and the figure is their user and system time summed
// over a measured interval.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const TICKS = 100;

export interface CpuTime {
  /** User and system time, in microseconds. */
  userUs: number;
  sysUs: number;
}

interface ProcStat {
  pid: number;
  ppid: number;
  /** Start time in ticks since boot: tells a reused pid from the process that had it. */
  start: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses; the fields after its last ')' do not.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // stat(5): fields 4 ppid, 14-17 utime stime cutime cstime, 22 starttime; f[0] is field 3.
    return { pid, ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]), start: Number(f[19]) };
  } catch {
    return null; // gone between listing and reading
  }
}

function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/** Per process of the trees rooted at `roots`: its own times, keyed by pid and start time. */
export type TreeSnapshot = Map<string, { utime: number; stime: number }>;

/**
 * The CPU times of every process in the trees rooted at `roots` (the roots
 * themselves and all their descendants). A root's reaped children count
 * through its cutime/cstime, so a child that exits inside the interval is
 * not lost.
 */
export function snapshotTrees(roots: number[]): TreeSnapshot {
  const stats = allStats();
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(s);
    else children.set(s.ppid, [s]);
  }
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  const snap: TreeSnapshot = new Map();
  const visit = (s: ProcStat, isRoot: boolean): void => {
    snap.set(`${s.pid}/${s.start}`, { utime: s.utime + (isRoot ? s.cutime : 0), stime: s.stime + (isRoot ? s.cstime : 0) });
    for (const c of children.get(s.pid) ?? []) visit(c, false);
  };
  for (const pid of roots) {
    const s = byPid.get(pid);
    if (s) visit(s, true);
  }
  return snap;
}

/** CPU used between two snapshots of the same trees (a process new in `after` counts from zero). */
export function cpuBetween(before: TreeSnapshot, after: TreeSnapshot): CpuTime {
  let u = 0;
  let s = 0;
  for (const [key, a] of after) {
    const b = before.get(key);
    u += a.utime - (b?.utime ?? 0);
    s += a.stime - (b?.stime ?? 0);
  }
  return { userUs: (u * 1e6) / TICKS, sysUs: (s * 1e6) / TICKS };
}
