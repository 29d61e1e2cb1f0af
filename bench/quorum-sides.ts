// The standby sides the quorum benchmark puts behind one primary, one side
// at a time: PostgreSQL's own synchronous replication (one physical standby
// as `FIRST 1`; `ANY 2` of three physical standbys; `ANY 2` of three
// `pg_receivewal --synchronous`, each on its own slot, as Barman runs it for
// RPO 0) and `walkeeper propose` in front of three safekeepers. A side is a
// set of members; switching sides stops the members the next side does not
// use and starts the ones it does, so a physical standby shared by two
// sides keeps running between them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pgBin, pgSpawnOptions } from '../support/pg-proc.js';
import { freePort, LocalPg, pgTempDir, quorumArgs, sleep, startSafekeeper, WalkeeperProc } from './pg-local.js';

const TENANT = 'b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0';
const TIMELINE = 'c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0';

/** One process group of a standby side, started and stopped as a unit. */
interface Member {
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): void;
  /** Roots of its process trees, for CPU accounting. */
  pids(): number[];
  /** What to show when it does not become a synchronous standby. */
  describe(): string;
}

/** A physical streaming standby made from a base backup on first use, on its own slot. */
class PhysicalStandby implements Member {
  private pg: LocalPg | null = null;

  constructor(
    private readonly primary: LocalPg,
    readonly app: string,
  ) {}

  get running(): boolean {
    return this.pg?.running ?? false;
  }

  async start(): Promise<void> {
    if (!this.pg) {
      await this.primary.sql(`select pg_create_physical_replication_slot('${this.app}')`);
      this.pg = await LocalPg.standbyOf(this.primary, {
        prefix: `wk-bq-${this.app}-`,
        conf: { primary_conninfo: `host=127.0.0.1 port=${this.primary.port} user=postgres application_name=${this.app}`, primary_slot_name: this.app },
      });
    }
    await this.pg.start();
  }

  async stop(): Promise<void> {
    await this.pg?.stop();
  }

  kill(): void {
    this.pg?.killNow();
  }

  async remove(): Promise<void> {
    await this.pg?.remove();
  }

  pids(): number[] {
    return this.pg?.pid ? [this.pg.pid] : [];
  }

  describe(): string {
    return this.pg?.logFile ?? this.app;
  }
}

/** `pg_receivewal --synchronous` on its own slot (fdatasync after every write, flush position reported at once). */
class Receiver implements Member {
  private child: ChildProcess | null = null;
  private exited: Promise<void> | null = null;
  private dir: string | null = null;
  private err = '';

  constructor(
    private readonly primary: LocalPg,
    readonly app: string,
  ) {}

  get running(): boolean {
    return this.child !== null;
  }

  async start(): Promise<void> {
    if (!this.dir) {
      // Reserve WAL at once, so pg_receivewal starts from the slot's restart_lsn.
      await this.primary.sql(`select pg_create_physical_replication_slot('${this.app}', true)`);
      this.dir = pgTempDir(`wk-bq-${this.app}-`);
    }
    const conninfo = `host=127.0.0.1 port=${this.primary.port} user=postgres application_name=${this.app}`;
    const child = spawn(pgBin('pg_receivewal'), ['-d', conninfo, '-D', this.dir, '-S', this.app, '--synchronous', '-n'], pgSpawnOptions({ stdio: ['ignore', 'ignore', 'pipe'] }));
    child.stderr!.on('data', (d: Buffer) => (this.err = (this.err + d.toString()).slice(-4000)));
    this.exited = new Promise((r) => child.on('exit', () => r()));
    this.child = child;
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGINT'); // pg_receivewal's clean exit
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  kill(): void {
    this.child?.kill('SIGKILL');
  }

  remove(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  pids(): number[] {
    return this.child?.pid ? [this.child.pid] : [];
  }

  describe(): string {
    return `pg_receivewal ${this.app}: ${this.err.trim()}`;
  }
}

/** `walkeeper propose` in front of `count` safekeepers (each fsyncs before it acknowledges). */
class WalkeeperQuorum implements Member {
  private safekeepers: WalkeeperProc[] = [];
  private proposer: WalkeeperProc | null = null;
  private ports: { pg: number; http: number }[] = [];

  constructor(
    private readonly root: string,
    private readonly primary: LocalPg,
    private readonly count: number,
    private readonly skArgs: string[],
    /** Its application_name and slot on the primary. */
    readonly app: string,
    /** The walkeeper entry point to run (undefined: this checkout's). */
    private readonly bin?: string,
  ) {}

  get running(): boolean {
    return this.proposer !== null;
  }

  async start(): Promise<void> {
    if (this.ports.length === 0) for (let i = 0; i < this.count; i++) this.ports.push({ pg: await freePort(), http: await freePort() });
    this.safekeepers = await Promise.all(
      this.ports.map((p, i) => {
        const dir = join(this.root, `sk${i}`);
        mkdirSync(dir, { recursive: true });
        return startSafekeeper(dir, p.pg, p.http, this.skArgs, this.bin);
      }),
    );
    this.proposer = new WalkeeperProc(
      [
        'propose',
        '--slot',
        this.app,
        '--application-name',
        this.app,
        '--primary',
        `host=127.0.0.1 port=${this.primary.port} user=postgres`,
        ...quorumArgs(this.ports.map((p) => p.pg), TENANT, TIMELINE),
      ],
      { bin: this.bin },
    );
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

  pids(): number[] {
    return [this.proposer, ...this.safekeepers].flatMap((p) => (p?.child.pid ? [p.child.pid] : []));
  }

  proposerPid(): number | undefined {
    return this.proposer?.child.pid;
  }

  describe(): string {
    return (this.proposer?.output ?? '').slice(-2000);
  }
}

export type SideName = 'first1' | 'any2' | 'receivewal' | 'walkeeper' | 'base';
/** The sides run by default; 'base' (another build of walkeeper, for before/after figures) only on request. */
export const SIDE_NAMES: SideName[] = ['first1', 'any2', 'receivewal', 'walkeeper'];

export const SIDE_LABELS: Record<SideName, string> = {
  first1: 'native FIRST 1 (one physical standby)',
  any2: 'native ANY 2 of 3 physical standbys',
  receivewal: 'native ANY 2 of 3 pg_receivewal --synchronous',
  walkeeper: 'walkeeper propose + 3 safekeepers',
  base: 'the same, built from WK_BENCH_QUORUM_BASE',
};

interface Side {
  members: Member[];
  /** application_names that must be streaming, caught up and in `state`. */
  apps: string[];
  standbyNames: string;
  state: 'sync' | 'quorum';
}

/** All standby sides of one primary; only the members of the current side run. */
export class StandbySides {
  private readonly physical: PhysicalStandby[];
  private readonly receivers: Receiver[];
  private readonly walkeeper: WalkeeperQuorum;
  private readonly base: WalkeeperQuorum | undefined;
  private readonly sides: Record<SideName, Side>;
  private current: Side | null = null;

  constructor(
    private readonly primary: LocalPg,
    skRoot: string,
    opts: { safekeepers: number; skArgs: string[]; baseBin?: string },
  ) {
    this.physical = ['s1', 's2', 's3'].map((app) => new PhysicalStandby(primary, app));
    this.receivers = ['r1', 'r2', 'r3'].map((app) => new Receiver(primary, app));
    this.walkeeper = new WalkeeperQuorum(join(skRoot, 'walkeeper'), primary, opts.safekeepers, opts.skArgs, 'walkeeper');
    if (opts.baseBin) this.base = new WalkeeperQuorum(join(skRoot, 'base'), primary, opts.safekeepers, opts.skArgs, 'walkeeper_base', opts.baseBin);
    const any2 = (apps: string[]): string => `ANY 2 (${apps.join(', ')})`;
    this.sides = {
      first1: { members: [this.physical[0]], apps: ['s1'], standbyNames: 'FIRST 1 (s1)', state: 'sync' },
      any2: { members: this.physical, apps: ['s1', 's2', 's3'], standbyNames: any2(['s1', 's2', 's3']), state: 'quorum' },
      receivewal: { members: this.receivers, apps: ['r1', 'r2', 'r3'], standbyNames: any2(['r1', 'r2', 'r3']), state: 'quorum' },
      walkeeper: { members: [this.walkeeper], apps: ['walkeeper'], standbyNames: 'FIRST 1 (walkeeper)', state: 'sync' },
      base: { members: this.base ? [this.base] : [], apps: ['walkeeper_base'], standbyNames: 'FIRST 1 (walkeeper_base)', state: 'sync' },
    };
  }

  private get all(): Member[] {
    return [...this.physical, ...this.receivers, this.walkeeper, ...(this.base ? [this.base] : [])];
  }

  /** Stop what `name` does not use, start what it does, and wait until it is a caught-up synchronous standby side. */
  async use(name: SideName): Promise<void> {
    const side = this.sides[name];
    for (const m of this.all) if (m.running && !side.members.includes(m)) await m.stop();
    for (const m of side.members) if (!m.running) await m.start();
    this.current = side;
    await this.primary.sql(`alter system set synchronous_standby_names = '${side.standbyNames}'`);
    await this.primary.sql('select pg_reload_conf()');
    await this.waitCaughtUp(side);
  }

  /** Process trees of the side in use. */
  pids(): number[] {
    return this.current?.members.flatMap((m) => m.pids()) ?? [];
  }

  /** The proposer of the side in use, when it is a walkeeper side: its share of the side's CPU is shown apart. */
  proposerPid(): number | undefined {
    for (const m of this.current?.members ?? []) if (m instanceof WalkeeperQuorum) return m.proposerPid();
    return undefined;
  }

  private async waitCaughtUp(side: Side): Promise<void> {
    const deadline = Date.now() + 300_000;
    const list = side.apps.map((a) => `'${a}'`).join(', ');
    for (;;) {
      const ready = await this.primary.sql(
        `select count(*) from pg_stat_replication where application_name in (${list}) and state = 'streaming' and sync_state = '${side.state}' and flush_lsn >= pg_current_wal_flush_lsn()`,
      );
      if (Number(ready) === side.apps.length) return;
      if (Date.now() > deadline) {
        throw new Error(`${side.apps.join(', ')} did not become caught-up ${side.state} standbys (${ready} did): ${side.members.map((m) => m.describe()).join('\n')}`);
      }
      await sleep(200);
    }
  }

  async stopAll(): Promise<void> {
    for (const m of this.all) await m.stop().catch(() => m.kill());
    for (const p of this.physical) await p.remove().catch(() => {});
    for (const r of this.receivers) r.remove();
  }

  kill(): void {
    for (const m of this.all) m.kill();
  }
}
