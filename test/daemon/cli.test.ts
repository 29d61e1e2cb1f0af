// `walkeeper run` as an operator sees it: defaults, one clear line and a
// non-zero exit for every start-up problem, a clean stop on SIGINT/SIGTERM.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../helpers/pg.js';
import { BIN, runCli, startDaemon, tempDir, type DaemonProc } from './helpers.js';
import { until } from '../helpers/support.js';

/** The single line a failed start prints on stderr. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  return lines.length === 1 ? lines[0] : `(${lines.length} lines) ${stderr}`;
}

t.test('a second daemon on the same data directory is refused, naming the holder', async (t) => {
  const dir = tempDir(t);
  const d = await startDaemon(t, { dataDir: dir });
  const r = await runCli(['run', '-D', dir, '--listen-pg', `127.0.0.1:${await freePort()}`, '--listen-http', `127.0.0.1:${await freePort()}`]);
  t.equal(r.code, 1);
  t.match(oneLine(r.stderr), new RegExp(`^walkeeper run: data directory .* is in use by another walkeeper \\(pid ${d.pid}\\)`));
  t.equal(d.proc.exitCode, null, 'the first one keeps running');
  const st = await d.stop();
  t.equal(st.code, 0);
  t.notOk(existsSync(join(dir, 'safekeeper.pid')), 'lock released on stop');
});

t.test('start-up problems: one line, non-zero exit', async (t) => {
  const pg = `127.0.0.1:${await freePort()}`;
  const http = `127.0.0.1:${await freePort()}`;
  const dir = tempDir(t);

  let r = await runCli(['run', '-D', join(dir, 'missing'), '--listen-pg', pg, '--listen-http', http]);
  t.equal(r.code, 1, 'missing data dir');
  t.match(oneLine(r.stderr), /^walkeeper run: data directory .*missing does not exist/);

  const file = join(dir, 'afile');
  spawnSync('touch', [file]);
  r = await runCli(['run', '-D', file, '--listen-pg', pg, '--listen-http', http]);
  t.equal(r.code, 1, 'not a directory');
  t.match(oneLine(r.stderr), /is not a directory/);

  const ro = join(dir, 'ro');
  mkdirSync(ro);
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]).status === 0) {
    t.teardown(() => {
      spawnSync('umount', [ro]);
    });
    r = await runCli(['run', '-D', ro, '--listen-pg', pg, '--listen-http', http]);
    t.equal(r.code, 1, 'unwritable data dir');
    t.match(oneLine(r.stderr), /^walkeeper run: data directory .* is not writable: read-only file system/);
  } else {
    t.comment('skipped the read-only data directory case: mount failed (needs root)');
  }

  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const busyPort = (busy.address() as AddressInfo).port;
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  r = await runCli(['run', '-D', dir, '--listen-pg', `127.0.0.1:${busyPort}`, '--listen-http', http]);
  t.equal(r.code, 1, 'pg port in use');
  t.match(oneLine(r.stderr), new RegExp(`^walkeeper run: cannot listen for pg connections on 127.0.0.1:${busyPort}: address already in use`));
  t.notOk(existsSync(join(dir, 'safekeeper.pid')), 'a failed start releases the lock');
  r = await runCli(['run', '-D', dir, '--listen-pg', pg, '--listen-http', `127.0.0.1:${busyPort}`]);
  t.equal(r.code, 1, 'http port in use');
  t.match(oneLine(r.stderr), /cannot listen for HTTP connections on .*: address already in use/);

  r = await runCli(['run', '-D', dir, '--listen-pg', '192.0.2.1:5454', '--listen-http', http]);
  t.equal(r.code, 1, 'an address not on this machine');
  t.match(oneLine(r.stderr), /cannot listen for pg connections on 192\.0\.2\.1:5454: address not available/);

  for (const [args, re] of [
    [['--listen-pg', 'nonsense'], /--listen-pg: invalid address "nonsense"/],
    [['--listen-pg', '127.0.0.1:70000'], /invalid port 70000/],
    [['--listen-http', ':80'], /--listen-http: invalid address/],
    [['--id', 'x'], /--id: invalid node id/],
    [['--bogus'], /unknown option "--bogus"/],
    [['-D'], /-D needs a value/],
  ] as Array<[string[], RegExp]>) {
    r = await runCli(['run', ...args]);
    t.equal(r.code, 2, `usage error: ${args.join(' ')}`);
    t.match(oneLine(r.stderr), re);
  }
  r = await runCli(['run', '--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /--listen-pg HOST:PORT/);
});

t.test('defaults: ./.walkeeper is created; SIGINT and SIGTERM stop cleanly with exit 0', async (t) => {
  const cwd = tempDir(t);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const pgPort = await freePort();
    const httpPort = await freePort();
    const p = spawn(process.execPath, [BIN, 'run', '--listen-pg', `127.0.0.1:${pgPort}`, '--listen-http', `127.0.0.1:${httpPort}`, '--id', '7'], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WALKEEPER_LOG_FORMAT: '' },
    });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    await until('walkeeper ready', () => out.includes('walkeeper ready'), 30_000, 50);
    t.ok(existsSync(join(cwd, '.walkeeper', 'safekeeper.pid')), `${sig}: default data dir created and locked`);
    t.equal(readFileSync(join(cwd, '.walkeeper', 'safekeeper.id'), 'utf8').trim(), '7', '--id stored');
    const status = (await (await fetch(`http://127.0.0.1:${httpPort}/v1/status`)).json()) as Record<string, unknown>;
    t.equal(status.id, 7);
    t.equal(status.timelines, 0);
    t.equal(status.listen_pg, `127.0.0.1:${pgPort}`);
    t.equal(status.listen_http, `127.0.0.1:${httpPort}`);
    t.type(status.uptime_seconds, 'number');
    const first = out.split('\n')[0];
    t.doesNotThrow(() => JSON.parse(first), 'JSON log lines when stdout is not a terminal');
    p.kill(sig);
    t.equal(await exited, 0, `${sig}: exit 0`);
    t.match(out, /"msg":"walkeeper stopped"/);
    t.notOk(existsSync(join(cwd, '.walkeeper', 'safekeeper.pid')), `${sig}: lock released`);
  }
  const r = await runCli(['run', '--id', '8', '--listen-pg', `127.0.0.1:${await freePort()}`, '--listen-http', `127.0.0.1:${await freePort()}`], { cwd });
  t.equal(r.code, 1);
  t.match(oneLine(r.stderr), /--id 8 does not match the id 7 stored in/);
});

t.test('without --id: a node id is made on first use, stored, and kept across restarts', async (t) => {
  const dir = tempDir(t);
  const status = async (d: DaemonProc) => (await (await fetch(`http://127.0.0.1:${d.httpPort}/v1/status`)).json()) as Record<string, unknown>;
  const d = await startDaemon(t, { dataDir: dir });
  const first = await status(d);
  t.type(first.id, 'number');
  const id = first.id as number;
  t.ok(Number.isSafeInteger(id) && id > 0 && String(id).length <= 15, `${id}: an id --id would accept`);
  t.equal(readFileSync(join(dir, 'safekeeper.id'), 'utf8'), `${id}\n`, 'stored beside the lock');
  t.ok(d.logs.some((l) => l.msg === 'new node id stored' && l.id === id), 'the new id is logged');
  t.ok(d.logs.some((l) => l.msg === 'walkeeper ready' && l.id === id), 'and shown when ready');
  t.equal((await d.stop()).code, 0);

  const again = await startDaemon(t, { dataDir: dir });
  t.equal((await status(again)).id, id, 'the same id after a restart');
  t.notOk(again.logs.some((l) => l.msg === 'new node id stored'), 'no new id made');
  t.equal((await again.stop()).code, 0);

  const given = await startDaemon(t, { dataDir: dir, args: ['--id', String(id)] });
  t.equal((await status(given)).id, id, '--id equal to the stored one is accepted');
  await given.stop();
  const r = await runCli(['run', '-D', dir, '--id', String(id + 1), '--listen-pg', `127.0.0.1:${await freePort()}`, '--listen-http', `127.0.0.1:${await freePort()}`]);
  t.equal(r.code, 1, 'a different --id is refused');
  t.equal(oneLine(r.stderr), `walkeeper run: --id ${id + 1} does not match the id ${id} stored in ${join(dir, 'safekeeper.id')}`);
});

t.test('a node id file that holds no id is refused in one line', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'safekeeper.id'), 'seven\n');
  const r = await runCli(['run', '-D', dir, '--listen-pg', `127.0.0.1:${await freePort()}`, '--listen-http', `127.0.0.1:${await freePort()}`]);
  t.equal(r.code, 1);
  t.equal(oneLine(r.stderr), `walkeeper run: ${join(dir, 'safekeeper.id')} does not hold a node id: "seven"`);
});

t.test('a stale lock from a killed daemon is taken over', async (t) => {
  const dir = tempDir(t);
  const d = await startDaemon(t, { dataDir: dir });
  await d.kill9();
  t.ok(existsSync(join(dir, 'safekeeper.pid')), 'kill -9 leaves the lock file');
  const d2 = await startDaemon(t, { dataDir: dir });
  t.ok(d2.logs.some((l) => l.msg === 'took over a stale data directory lock' && l.stalePid === d.pid));
  await d2.stop();
});

t.test('pretty logs on request', async (t) => {
  const dir = tempDir(t);
  const p = spawn(process.execPath, [BIN, 'run', '-D', dir, '--listen-pg', `127.0.0.1:${await freePort()}`, '--listen-http', `127.0.0.1:${await freePort()}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WALKEEPER_LOG_FORMAT: 'pretty' },
  });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  await until('walkeeper ready', () => out.includes('walkeeper ready'), 30_000, 50);
  t.match(out, /INFO.*walkeeper ready/);
  t.throws(() => JSON.parse(out.split('\n')[0]));
  p.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('SIGTERM during a push: in-flight WAL is synced and acknowledged, then 57P01, exit 0', async (t) => {
  const { realWal, PushClient, elect, storedWal, commonPrefix, PushError } = await import('./helpers.js');
  const wal = await realWal(t);
  const dir = tempDir(t);
  const d = await startDaemon(t, { dataDir: dir });
  const c = await PushClient.connect(d.pgPort);
  const { nodeId } = await elect(c, wal);
  let pos = wal.startLsn;
  for (let i = 0; i < 40; i++) {
    const end = pos + 50_000n;
    c.append({ senderId: nodeId, beginLsn: pos, endLsn: end, restartLsn: 0n, commitLsn: 0n, wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)) });
    pos = end;
  }
  await c.response();
  d.proc.kill('SIGTERM');
  let acked = 0n;
  let err: unknown;
  try {
    for (;;) acked = (await c.response()).flushLsn;
  } catch (e) {
    err = e;
  }
  const st = await d.exited;
  t.equal(st.code, 0, 'exit 0');
  if (err instanceof PushError) t.equal(err.code, '57P01', 'the proposer is told the server is shutting down');
  else t.match((err as Error).message, /closed/, 'or the connection closes');
  t.ok(acked > wal.startLsn, `acknowledged up to ${acked}`);
  const n = Number(acked - wal.startLsn);
  t.equal(commonPrefix(storedWal(dir, wal.startLsn, n, wal.segSize), wal.bytes), n, 'acknowledged WAL on disk');
  t.notOk(existsSync(join(dir, 'safekeeper.pid')), 'lock released');
});
