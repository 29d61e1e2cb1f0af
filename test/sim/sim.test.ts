// Deterministic simulation of the WAL push protocol: the real Acceptor on
// simulated disks and networks, competing proposers, crashes, partitions.
// Every run replays exactly from its seed:
//   SIM_SEED=1234 npx tap test/sim/sim.test.ts              one seed, with a trace
//   SIM_SEED=1234 SIM_BUG=no-truncate npx tap test/sim/...  one seed with a planted bug
//   SIM_SEEDS=5000 npx tap test/sim/sim.test.ts             more seeds
import t from 'tap';
import type { AcceptorBug, ProposerFlaw } from './options.js';
import { runSimulation, type SimResult } from './run.js';

const env = process.env;
const SEEDS = Number(env.SIM_SEEDS ?? 500);

function replayCommand(r: SimResult, bug?: string, flaw?: string): string {
  return [`SIM_SEED=${r.seed}`, bug && `SIM_BUG=${bug}`, flaw && `SIM_FLAW=${flaw}`, 'npx tap test/sim/sim.test.ts'].filter(Boolean).join(' ');
}

function report(r: SimResult, bug?: string, flaw?: string): string {
  const shown = r.violations.slice(0, 8).map((v) => `  ${v}`);
  const more = r.violations.length > shown.length ? [`  ... and ${r.violations.length - shown.length} more`] : [];
  return [`seed ${r.seed} (${r.config}): ${r.violations.length} violation(s)`, ...shown, ...more, `replay: ${replayCommand(r, bug, flaw)}`].join('\n');
}

/** The first seed from 1 to `limit` whose run breaks an invariant. */
function firstViolation(limit: number, acceptorBug?: AcceptorBug, proposerFlaw?: ProposerFlaw): SimResult | null {
  for (let seed = 1; seed <= limit; seed++) {
    const r = runSimulation({ seed, acceptorBug, proposerFlaw });
    if (r.violations.length > 0) return r;
  }
  return null;
}

if (env.SIM_SEED !== undefined) {
  const seed = Number(env.SIM_SEED);
  const bug = env.SIM_BUG as AcceptorBug | undefined;
  const flaw = env.SIM_FLAW as ProposerFlaw | undefined;
  t.test(`replay of seed ${seed}`, (t) => {
    const r = runSimulation({ seed, acceptorBug: bug, proposerFlaw: flaw, trace: true });
    t.comment(r.config);
    if (r.violations.length > 0 || env.SIM_TRACE) for (const line of r.trace) t.comment(line);
    t.comment(`stats: ${JSON.stringify(r.stats)}`);
    t.same(r.violations, [], r.violations.length ? report(r, bug, flaw) : 'no violation');
    t.end();
  });
} else {
  t.test(`${SEEDS} seeded runs keep every invariant`, (t) => {
    const started = Date.now();
    const failed: SimResult[] = [];
    let committing = 0;
    const total = { events: 0, elections: 0, committed: 0, crashes: 0 };
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = runSimulation({ seed });
      if (r.violations.length > 0) failed.push(r);
      if (r.stats.committed > 0) committing++;
      for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r.stats[k];
    }
    for (const r of failed.slice(0, 5)) t.fail(report(r));
    t.equal(failed.length, 0, `seeds with a violation: ${failed.map((r) => r.seed).join(', ') || 'none'}`);
    // Not vacuous: most runs elect leaders and commit WAL despite the faults.
    t.ok(committing >= SEEDS * 0.75, `${committing} of ${SEEDS} runs committed WAL`);
    t.comment(`${SEEDS} seeds in ${Date.now() - started} ms: ${total.events} events, ${total.elections} elections, ${total.committed} records committed, ${total.crashes} acceptor crashes`);
    t.end();
  });

  t.test('the simulation finds planted acceptor bugs', (t) => {
    // Limits are a few times the first seed that catches each bug today.
    const bugs: Array<[AcceptorBug, number]> = [
      ['ack-before-sync', 50],
      ['vote-not-durable', 50],
      ['no-truncate', 300],
      ['no-sync-before-persist', 400],
    ];
    for (const [bug, limit] of bugs) {
      const r = firstViolation(limit, bug);
      t.ok(r, `${bug}: caught within ${limit} seeds`);
      if (r) t.comment(`${bug}: seed ${r.seed}: ${r.violations[0]}\n  replay: ${replayCommand(r, bug)}`);
    }
    t.end();
  });

  t.test('the simulation finds unsafe proposer shortcuts', (t) => {
    const flaws: Array<[ProposerFlaw, number, string]> = [
      ['single-round', 100, 'VCL from greetings made before the vote'],
      ['any-epoch-acks', 400, 'commit counted from acceptors not yet in the leader epoch'],
    ];
    for (const [flaw, limit, what] of flaws) {
      const r = firstViolation(limit, undefined, flaw);
      t.ok(r, `${flaw} (${what}): caught within ${limit} seeds`);
      if (r) t.comment(`${flaw}: seed ${r.seed}: ${r.violations[0]}\n  replay: ${replayCommand(r, undefined, flaw)}`);
    }
    t.end();
  });
}
