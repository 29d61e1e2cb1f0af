// `npm run demo` and the failover benchmark group, run end to end as a user
// runs them (from the built dist/), each with its own TMPDIR so that what
// they leave behind can be checked: the demo fails over to PostgreSQL
// timeline 2 without losing an acknowledged transaction, the benchmark prints
// its two rows, and both remove every server, process and directory they made.
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { pgTempDir } from '../helpers/pg.js';
import { ROOT } from '../daemon/helpers.js';

interface ScriptResult {
  code: number | null;
  output: string;
  /** What is left in the script's TMPDIR once it exited. */
  left: string[];
}

/** Run `node <script>` with a private TMPDIR (owned by the PostgreSQL user, as the servers' directories must be). */
function runScript(t: Test, script: string, env: Record<string, string>, timeoutMs: number): Promise<ScriptResult> {
  const tmp = pgTempDir('wk-script-tmp-');
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const child = spawn(process.execPath, [join(ROOT, script)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env, TMPDIR: tmp } });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  // Past the deadline, SIGINT: the demo and the benchmark clean up on it; SIGKILL if that hangs.
  const interrupt = setTimeout(() => child.kill('SIGINT'), timeoutMs);
  const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 60_000);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(interrupt);
      clearTimeout(kill);
      // Node's module compile cache (walkeeper turns it on) lives in TMPDIR too, and is meant to stay.
      resolve({ code, output, left: readdirSync(tmp).filter((n) => n !== 'node-compile-cache') });
    }),
  );
}

t.test('npm run demo: quorum commits, then a failover that keeps every acknowledged transaction', async (t) => {
  const r = await runScript(t, 'scripts/demo.mjs', { WK_DEMO_SECONDS: '6', WK_DEMO_FAULT: '0' }, 240_000);
  t.equal(r.code, 0, 'the demo exits 0');
  t.match(r.output, /kill -9 the primary and its proposer/, 'the primary is killed');
  t.match(r.output, /promoted in \d+ ms: switch LSN [0-9A-F]+\/[0-9A-F]+, PostgreSQL timeline 2/, 'walkeeper promote moved the standby to timeline 2');
  t.match(r.output, /primary tl2 .*sk1 tl2 .*sk2 tl2 .*sk3 tl2/, 'the live status shows the new primary and every safekeeper on timeline 2');
  const kept = /of the (\d+) transactions acknowledged before the crash, (\d+) rows are on the new primary: none lost/.exec(r.output);
  t.ok(kept && Number(kept[1]) > 0 && Number(kept[2]) >= Number(kept[1]), `no acknowledged transaction lost (${kept?.[0] ?? 'no count printed'})`);
  t.match(r.output, /pgbench on the new primary: [1-9]\d* transactions/, 'pgbench commits on the new primary');
  t.same(r.left, [], `every temp directory is removed (left: ${r.left.join(', ') || 'none'})`);
  if (r.code !== 0) t.comment(r.output.slice(-4000));
});

t.test('the failover benchmark group: one round, both rows, everything removed', async (t) => {
  const r = await runScript(t, 'dist/bench/failover.js', { WK_BENCH_FAILOVER_ROUNDS: '1' }, 240_000);
  t.equal(r.code, 0, 'node dist/bench/failover.js exits 0');
  t.match(r.output, /promote → writable\s*\|\s*walkeeper promote \+ propose\s*\|\s*\d+ ms\s*\|\s*pg_ctl promote, native sync standby\s*\|\s*\d+ ms\s*\|\s*[\d.]+x/, 'the promote → writable row');
  t.match(r.output, /promote → first sync commit\s*\|\s*walkeeper promote \+ propose\s*\|\s*\d+ ms\s*\|\s*pg_ctl promote, native sync standby\s*\|\s*\d+ ms\s*\|\s*[\d.]+x/, 'the promote → first commit row');
  t.same(r.left, [], `every temp directory is removed (left: ${r.left.join(', ') || 'none'})`);
  if (r.code !== 0) t.comment(r.output.slice(-4000));
});
