// Running PostgreSQL 15 programs, shared by the tests and the benchmarks.
// PostgreSQL refuses to run as root, so when we are root every PostgreSQL
// program runs as the `postgres` system user, in directories that user owns.
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Where the PostgreSQL binaries are; WK_PG_BIN overrides. */
export const PG_BIN = process.env.WK_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export function pgBin(name: string): string {
  return join(PG_BIN, name);
}

interface Ids {
  uid: number;
  gid: number;
}

let ids: Ids | null | undefined;

/** uid/gid to run PostgreSQL programs as: the `postgres` user when we are root, else null (ourselves). */
export function pgUser(): Ids | null {
  if (ids !== undefined) return ids;
  if (process.getuid?.() !== 0) return (ids = null);
  try {
    ids = {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
    };
  } catch {
    throw new Error('running as root, but there is no "postgres" user to run PostgreSQL as');
  }
  return ids;
}

/** A temp directory the PostgreSQL user owns. */
export function pgTempDir(prefix = 'wk-pg-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const i = pgUser();
  if (i) chownSync(dir, i.uid, i.gid);
  chmodSync(dir, 0o755);
  return dir;
}

/** Give a file or directory tree to the PostgreSQL user (for files written as root). */
export function chownToPg(path: string): void {
  const i = pgUser();
  if (i) execFileSync('chown', ['-R', `${i.uid}:${i.gid}`, path]);
}

/** Spawn options that run a PostgreSQL program as the PostgreSQL user, in the C locale and UTC. */
export function pgSpawnOptions(extra: SpawnOptions = {}): SpawnOptions {
  const i = pgUser();
  return {
    ...extra,
    ...(i ? { uid: i.uid, gid: i.gid } : {}),
    env: { ...process.env, PGTZ: 'UTC', LC_ALL: 'C', HOME: tmpdir(), ...(extra.env ?? {}) },
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export type RunPgOptions = SpawnOptions & {
  /** Written to stdin, which is then closed. */
  input?: string;
  /** SIGKILL after this long; default 120 s, 0 for no limit. */
  timeoutMs?: number;
  /** Output as it arrives (it is collected in the result too). */
  onStdout?: (s: string) => void;
  onStderr?: (s: string) => void;
};

/** Run a PostgreSQL program (a bare name is looked up in PG_BIN) as the PostgreSQL user and collect its output. */
export function runPg(cmd: string, args: string[], opts: RunPgOptions = {}): Promise<RunResult> {
  const { input, timeoutMs = 120_000, onStdout, onStderr, ...spawnOpts } = opts;
  return new Promise((resolve, reject) => {
    // By default run in a directory the PostgreSQL user can enter; ours may be private to root.
    const child = spawn(cmd.includes('/') ? cmd : pgBin(cmd), args, pgSpawnOptions({ cwd: tmpdir(), ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] }));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => {
      out.push(d);
      onStdout?.(d.toString());
    });
    child.stderr!.on('data', (d: Buffer) => {
      err.push(d);
      onStderr?.(d.toString());
    });
    const timer = timeoutMs > 0 ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin!.end(input);
  });
}

/** runPg, throwing unless the program exits 0; resolves to its stdout. */
export async function runPgOk(cmd: string, args: string[], opts: RunPgOptions = {}): Promise<string> {
  const r = await runPg(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function logTail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').trim().slice(-4000);
  } catch {
    return '';
  }
}

/**
 * Start `postgres -D dataDir` as the PostgreSQL user, its stderr appended to
 * `logFile`. `child` is there at once, so a caller can stop the server even
 * if start-up fails; `ready` resolves once it answers on 127.0.0.1:port.
 */
export function startPostgres(dataDir: string, port: number, logFile: string): { child: ChildProcess; exited: Promise<void>; ready: Promise<void> } {
  const child = spawn(pgBin('postgres'), ['-D', dataDir], pgSpawnOptions({ stdio: ['ignore', 'ignore', 'pipe'] }));
  child.stderr!.on('data', (d: Buffer) => {
    try {
      writeFileSync(logFile, d, { flag: 'a' });
    } catch {
      /* the directory may be gone during teardown */
    }
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const ready = (async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited during start-up (${logFile}): ${logTail(logFile)}`);
      if ((await runPg('pg_isready', ['-h', '127.0.0.1', '-p', String(port), '-t', '1'])).code === 0) return;
      if (Date.now() > deadline) throw new Error(`postgres did not become ready (${logFile}): ${logTail(logFile)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return { child, exited, ready };
}

/**
 * A crash, as when the host dies: SIGKILL to the postmaster `child` and every
 * process it started, at once, so none of them writes or answers after it.
 * Waits until all are gone (a restart needs the shared memory released).
 */
export async function crashPostgres(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pids = [child.pid, ...childPids(child.pid)];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await exited;
  const deadline = Date.now() + 30_000;
  while (pids.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** The processes whose parent is `pid` (from /proc). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/PID/stat is the parent; the command name before it is in parentheses and may hold spaces.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * `restore_command` runs as the PostgreSQL user, so the Node binary and the
 * checkout it runs from must be reachable by that user. When they are not
 * (a checkout under a root-only directory), let that user traverse the
 * directories on the way (o+x: no listing, no reading of other files).
 * Left in place (test files run side by side and would race to undo it).
 * Returns the directories changed; a no-op when not root or when reachable.
 */
export function letPgReach(paths: string[]): string[] {
  const i = pgUser();
  if (!i || paths.every((p) => spawnSyncAs(i, 'test', ['-r', p]) === 0)) return [];
  const changed: string[] = [];
  for (const p of paths) {
    for (let dir = dirname(p); ; dir = dirname(dir)) {
      const mode = statSync(dir).mode & 0o7777;
      if ((mode & 0o001) === 0) {
        chmodSync(dir, mode | 0o001);
        changed.push(dir);
      }
      if (dir === dirname(dir)) break;
    }
  }
  return changed;
}

function spawnSyncAs(ids: Ids, cmd: string, args: string[]): number | null {
  return spawnSync(cmd, args, { uid: ids.uid, gid: ids.gid, stdio: 'ignore' }).status;
}
