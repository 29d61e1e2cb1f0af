// The same round against a real walkeeper daemon (fsync on): one AppendRequest
// of SIZE bytes of real WAL in flight at a time, through the proposer library,
// from the cached WAL the replication benchmark made (run `npm run bench` with
// the replication group once first). Prints the daemon's CPU per request.
// Usage: node daemon.mjs [ROUNDS] [SIZE]; NODE_EXTRA="--cpu-prof ..." passes flags to the daemon.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { WalFeeder } = await import(join(root, 'dist/test/replication-e2e/feeder.js'));
const { cpuBetween, snapshotTrees } = await import(join(root, 'dist/bench/proc-cpu.js'));
const [rounds = '5000', size = '300'] = process.argv.slice(2);
const benchDir = join(tmpdir(), 'walkeeper-bench');
const cache = existsSync(benchDir) ? readdirSync(benchDir).filter((d) => d.startsWith('replication-')).map((d) => join(benchDir, d))[0] : undefined;
if (!cache) throw new Error(`no cached WAL under ${benchDir}: run the replication benchmark once`);
const meta = JSON.parse(readFileSync(join(cache, 'meta.json'), 'utf8'));
const data = mkdtempSync(join(tmpdir(), 'wk-sync-floor-'));
const port = 20000 + Math.floor(Math.random() * 20000);
const extra = (process.env.NODE_EXTRA ?? '').split(' ').filter(Boolean);
const daemon = spawn(process.execPath, [...extra, join(root, 'bin/walkeeper.js'), 'run', '-D', data, '--listen-pg', `127.0.0.1:${port}`, '--listen-http', `127.0.0.1:${port + 1}`], {
  stdio: 'inherit',
  env: { ...process.env, WALKEEPER_LOG_LEVEL: 'warn' },
});
try {
  for (;;) {
    const up = await new Promise((r) => {
      const c = connect({ port, host: '127.0.0.1' }, () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const segSize = 16 << 20;
  const feeder = await WalFeeder.elect(
    { port, tenantId: 'be0c'.repeat(8), timelineId: 'feed'.repeat(8), walDir: join(cache, 'data', 'pg_wal'), systemId: BigInt(meta.systemId), segSize, pgVersion: meta.pgVersion, window: 1 },
    BigInt(meta.start) + 2n * BigInt(segSize),
  );
  const n = Number(rounds);
  const bytes = Number(size);
  await feeder.push(feeder.next + BigInt(bytes * 200), { chunks: () => bytes }); // warm-up
  const before = snapshotTrees([daemon.pid]);
  const t0 = process.hrtime.bigint();
  await feeder.push(feeder.next + BigInt(bytes * n), { chunks: () => bytes });
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
  const c = cpuBetween(before, snapshotTrees([daemon.pid]));
  console.log(`server CPU per round: ${((c.userUs + c.sysUs) / n).toFixed(1)} µs (user ${(c.userUs / n).toFixed(1)}, system ${(c.sysUs / n).toFixed(1)}); round trip ${us.toFixed(0)} µs`);
  await feeder.close();
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('exit', r));
  rmSync(data, { recursive: true, force: true });
}
