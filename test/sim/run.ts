// One simulation run from a seed: build the cluster, inject faults, run the
// virtual clock, return what the checker found. Same seed, same run.
import { Checker } from './checker.js';
import { SimAcceptorNode } from './node.js';
import type { SimOptions } from './options.js';
import { Prng } from './prng.js';
import { SimProposer } from './proposer.js';
import { World } from './world.js';

export interface SimResult {
  seed: number;
  violations: string[];
  /** The configuration the seed picked, for the failure report. */
  config: string;
  stats: { events: number; elections: number; committed: number; crashes: number };
  trace: string[];
}

export function runSimulation(opts: SimOptions): SimResult {
  const rng = new Prng(opts.seed);
  const nAcceptors = opts.acceptors ?? (rng.chance(0.3) ? 5 : 3);
  const nProposers = opts.proposers ?? rng.int(2, 3);
  const duration = opts.duration ?? 2500;
  const maxDelay = rng.int(2, 15);
  const breakChance = rng.pick([0, 0.002, 0.01]);
  const crashEvery = rng.pick([120, 300, 800]);
  const proposerCrashEvery = rng.pick([300, 1000, 1e9]);
  const maxSyncDelay = rng.pick([1, 4, 12]);
  const crashAfterPersist = rng.pick([0, 0.03, 0.1]);
  const partitionEvery = rng.pick([200, 600, 1e9]);
  const config =
    `${nAcceptors} acceptors, ${nProposers} proposers, delay 1..${maxDelay}, break ${breakChance}, ` +
    `acceptor crash ~${crashEvery} (+${crashAfterPersist} right after a control file write), proposer crash ~${proposerCrashEvery}, ` +
    `partition ~${partitionEvery}, sync within ${maxSyncDelay}` +
    (opts.acceptorBug ? `, bug ${opts.acceptorBug}` : '') +
    (opts.proposerFlaw ? `, flaw ${opts.proposerFlaw}` : '');

  const trace: string[] = [];
  const world = new World(rng.fork(), { minDelay: 1, maxDelay, breakChance });
  const log = opts.trace ? (line: string) => trace.push(`t=${world.now} ${line}`) : () => {};
  const checker = new Checker(() => world.now);
  world.afterEvent = () => checker.afterEvent();

  const nodes = Array.from({ length: nAcceptors }, (_, i) => new SimAcceptorNode(i, world, checker, rng.fork(), opts.acceptorBug, log, maxSyncDelay));
  checker.nodes = nodes;
  const proposers = Array.from({ length: nProposers }, (_, i) => new SimProposer(i, nProposers, world, nodes, checker, rng.fork(), opts.proposerFlaw, log));

  const faults = rng.fork();
  let crashes = 0;
  for (const p of proposers) {
    const every = faults.int(2, 8);
    const tick = () => {
      p.tick();
      world.after(every, tick);
    };
    world.after(faults.int(0, every), tick);
    const crash = () => {
      p.crash();
      world.after(faults.int(1, 2 * proposerCrashEvery), crash);
    };
    world.after(faults.int(1, 2 * proposerCrashEvery), crash);
  }
  for (const n of nodes) {
    const crashNow = () => {
      if (!n.up) return;
      crashes++;
      n.crash();
      world.after(faults.int(5, 80), () => n.restart());
    };
    const crash = () => {
      crashNow();
      world.after(faults.int(1, 2 * crashEvery), crash);
    };
    world.after(faults.int(1, 2 * crashEvery), crash);
    n.onPersisted = () => {
      if (faults.chance(crashAfterPersist)) world.after(faults.int(0, 3), crashNow);
    };
    const partition = () => {
      n.isolate();
      world.after(faults.int(10, 200), () => n.reconnect());
      world.after(faults.int(1, 2 * partitionEvery), partition);
    };
    world.after(faults.int(1, 2 * partitionEvery), partition);
  }

  world.run(duration);
  checker.afterEvent();
  return {
    seed: opts.seed,
    violations: checker.violations,
    config,
    stats: { events: world.events, elections: checker.elections, committed: checker.committedCount, crashes },
    trace,
  };
}
