// End-to-end helpers: the daemon as a child process (`node bin/walkeeper.js
// run`, from the built dist/), a byte-level WAL push client, and real WAL
// from a PostgreSQL 15 cluster with its record boundaries (pg_waldump).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { formatLsn, maxAlign, parseLsn, parseSegmentFileName, segmentFileName, segmentNumber, segmentOffset, XLOG_BLCKSZ, type Lsn } from '../../src/lsn.js';
import {
  decodeNodeId,
  decodeSafeKeeperInfo,
  decodeSafeKeeperResponse,
  encodeRequestVote,
  encodeSafeKeeperRequest,
  encodeServerInfo,
} from '../../src/protocol/messages.js';
import { Daemon, type DaemonOptions } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import type { NodeId, RequestVote, SafeKeeperInfo, SafeKeeperRequest, SafeKeeperResponse, ServerInfo } from '../../src/protocol/types.js';
import { chownToPg, freePort, pgTempDir, runPg, startCluster } from '../helpers/pg.js';
import { copyDataMsg, errorFields, query, RawClient, type RawMessage } from '../pq/raw-client.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'walkeeper.js');

export const TENANT = '0123456789abcdef0123456789abcdef';
export const TIMELINE = 'fedcba9876543210fedcba9876543210';

export { tempDir } from '../helpers/support.js';

// ---------------------------------------------------------------- daemon

export interface DaemonProc {
  proc: ChildProcess;
  pid: number;
  pgPort: number;
  httpPort: number;
  dataDir: string;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill9(): Promise<void>;
}

export interface StartOptions {
  dataDir: string;
  noSync?: boolean;
  args?: string[];
  pgPort?: number;
  httpPort?: number;
}

/** Spawn the daemon and wait for its "walkeeper ready" line. */
export async function startDaemon(t: Test | null, opts: StartOptions): Promise<DaemonProc> {
  const pgPort = opts.pgPort ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const args = [BIN, 'run', '-D', opts.dataDir, '--listen-pg', `127.0.0.1:${pgPort}`, '--listen-http', `127.0.0.1:${httpPort}`];
  if (opts.noSync) args.push('--no-sync');
  if (opts.args) args.push(...opts.args);
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WALKEEPER_LOG_FORMAT: 'json', WALKEEPER_LOG_LEVEL: 'info' },
  });
  const logs: Array<Record<string, unknown>> = [];
  let err = '';
  let out = '';
  let readyResolve: (() => void) | undefined;
  const ready = new Promise<void>((resolve) => {
    readyResolve = resolve;
  });
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        logs.push(j);
        if (j.msg === 'walkeeper ready') readyResolve?.();
      } catch {
        /* not JSON */
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const d: DaemonProc = {
    proc,
    pid: proc.pid!,
    pgPort,
    httpPort,
    dataDir: opts.dataDir,
    logs,
    stderr: () => err,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
  t?.teardown(() => d.kill9());
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`daemon did not become ready: ${err}`)), 30_000).unref());
  const early = exited.then((r) => {
    throw new Error(`daemon exited during start-up (${r.code ?? r.signal}): ${err.trim()}`);
  });
  await Promise.race([ready, timeout, early]);
  return d;
}

/** Run `walkeeper <args>` to completion. */
export function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WALKEEPER_LOG_FORMAT: 'json' } });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------- push client

export class PushError extends Error {
  constructor(readonly fields: Record<string, string>) {
    super(`${fields.S}: ${fields.M} (${fields.C})`);
  }
  get code(): string {
    return this.fields.C;
  }
}

/** A WAL push client over raw bytes: every message it sends is exactly what it is given. */
export class PushClient {
  private constructor(readonly raw: RawClient) {}

  static async connect(port: number, params: Record<string, string> = { options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` }): Promise<PushClient> {
    const raw = await RawClient.connect(port);
    const msgs = await raw.startup({ user: 'walproposer', database: 'postgres', application_name: 'test-proposer', ...params });
    const last = msgs[msgs.length - 1];
    if (last.tag === 'E') throw new PushError(errorFields(last.body));
    return new PushClient(raw);
  }

  async startWalPush(): Promise<void> {
    this.raw.write(query('START_WAL_PUSH'));
    const m = await this.next();
    if (m.tag !== 'W') throw new Error(`expected CopyBothResponse, got ${m.tag}`);
  }

  /** Next message; an ErrorResponse becomes a thrown PushError. */
  async next(timeoutMs = 30_000): Promise<RawMessage> {
    const m = await this.raw.read(timeoutMs);
    if (!m) throw new Error('connection closed by the server');
    if (m.tag === 'E') throw new PushError(errorFields(m.body));
    return m;
  }

  private async copyData(what: string): Promise<Buffer> {
    const m = await this.next();
    if (m.tag !== 'd') throw new Error(`expected CopyData (${what}), got '${m.tag}'`);
    return m.body;
  }

  sendRaw(payload: Uint8Array): void {
    this.raw.write(copyDataMsg(payload));
  }

  async greet(info: ServerInfo): Promise<SafeKeeperInfo> {
    this.sendRaw(encodeServerInfo(info));
    return decodeSafeKeeperInfo(await this.copyData('SafeKeeperInfo'));
  }

  async vote(v: RequestVote): Promise<NodeId> {
    this.sendRaw(encodeRequestVote(v));
    return decodeNodeId(await this.copyData('NodeId'));
  }

  append(req: SafeKeeperRequest): void {
    this.sendRaw(encodeSafeKeeperRequest(req));
  }

  async response(timeoutMs = 30_000): Promise<SafeKeeperResponse> {
    const m = await this.next(timeoutMs);
    if (m.tag !== 'd') throw new Error(`expected CopyData (SafeKeeperResponse), got '${m.tag}'`);
    return decodeSafeKeeperResponse(m.body);
  }

  close(): void {
    this.raw.destroy();
  }
}

export function serverInfo(wal: RealWal, term = 1n, overrides: Partial<ServerInfo> = {}): ServerInfo {
  return {
    protocolVersion: 1,
    pgVersion: 150018,
    nodeId: { term, uuid: Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i) },
    systemId: wal.systemId,
    timelineId: Uint8Array.from(Buffer.from(TIMELINE, 'hex')),
    walEnd: wal.endLsn,
    timeline: 1,
    walSegSize: wal.segSize,
    tenantId: Uint8Array.from(Buffer.from(TENANT, 'hex')),
    ...overrides,
  };
}

export const PROPOSER_UUID = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);

/** Greet and win a vote with a term above any stored one; returns the greeting. */
export async function elect(c: PushClient, wal: RealWal): Promise<{ greeting: SafeKeeperInfo; nodeId: NodeId }> {
  await c.startWalPush();
  const greeting = await c.greet(serverInfo(wal));
  const nodeId = { term: greeting.server.nodeId.term + 1n, uuid: PROPOSER_UUID };
  const reply = await c.vote({ nodeId, vcl: greeting.flushLsn, epoch: nodeId.term });
  if (reply.term !== nodeId.term) throw new Error(`vote not granted: ${reply.term}`);
  return { greeting, nodeId };
}

// ---------------------------------------------------------------- real WAL

export interface RealWal {
  /** The WAL bytes from startLsn on (whole segment files, concatenated). */
  bytes: Buffer;
  startLsn: Lsn;
  /** End of the last record (MAXALIGN), where pushing stops. */
  endLsn: Lsn;
  segSize: number;
  systemId: bigint;
  /** Sorted MAXALIGN'd record ends: the positions flush_lsn may take after a scan. */
  recordEnds: Lsn[];
}

const SHORT_PHD = 24;
const LONG_PHD = 40;

/** Where a record of `tot` bytes starting at `lsn` ends in the byte stream, page headers included. */
export function recordEndInStream(lsn: Lsn, tot: number, segSize: number): Lsn {
  let pos = lsn;
  let rem = BigInt(tot);
  const page = BigInt(XLOG_BLCKSZ);
  for (;;) {
    const pageEnd = (pos / page + 1n) * page;
    const take = rem < pageEnd - pos ? rem : pageEnd - pos;
    pos += take;
    rem -= take;
    if (rem === 0n) return pos;
    pos += BigInt(segmentOffset(pos, segSize) === 0 ? LONG_PHD : SHORT_PHD);
  }
}

const RECORD = /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (\S+)/;

/** Record ends of the WAL in `dir` according to pg_waldump. */
async function waldumpEnds(dir: string, start: Lsn, segSize: number): Promise<Lsn[]> {
  const r = await runPg('pg_waldump', ['-p', dir, '-t', '1', '-s', formatLsn(start)], { timeoutMs: 300_000 });
  const ends: Lsn[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = RECORD.exec(line);
    if (!m) continue;
    const lsn = parseLsn(m[3]);
    let end = maxAlign(recordEndInStream(lsn, Number(m[2]), segSize));
    if (m[1] === 'XLOG' && m[4] === 'SWITCH') end = (segmentNumber(end - 1n, segSize) + 1n) * BigInt(segSize);
    ends.push(end);
  }
  if (ends.length === 0) throw new Error(`pg_waldump found no records: ${r.stderr}`);
  return ends;
}

const CACHE = join(tmpdir(), 'walkeeper-test-wal-v1');

/**
 * About `mb` MiB of real WAL (1 MiB segments) from a throwaway PostgreSQL 15
 * cluster: initdb, pgbench -i, some updates. Made once and cached in the temp
 * directory for the other test files.
 */
export async function realWal(t: Test, mb = 12): Promise<RealWal> {
  const dir = `${CACHE}-${mb}`;
  if (!existsSync(join(dir, 'meta.json'))) await makeWal(t, dir, mb);
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { start: string; end: string; segSize: number; systemId: string; ends: string[] };
  const segs = readdirSync(join(dir, 'wal')).sort();
  const bytes = Buffer.concat(segs.map((f) => readFileSync(join(dir, 'wal', f))));
  return {
    bytes,
    startLsn: BigInt(meta.start),
    endLsn: BigInt(meta.end),
    segSize: meta.segSize,
    systemId: BigInt(meta.systemId),
    recordEnds: meta.ends.map((e) => BigInt(e)),
  };
}

async function makeWal(t: Test, dir: string, mb: number): Promise<void> {
  const segSize = 1 << 20;
  const pg = await startCluster(t, { walSegSizeMb: 1, conf: { wal_keep_size: '1GB', checkpoint_timeout: '1h', max_wal_size: '4GB' } });
  await pg.pgbench(['-i', '-s', '1', '-q']);
  for (let i = 0; i < 40; i++) {
    const lsn = parseLsn(await pg.sql('select pg_current_wal_insert_lsn()'));
    if (lsn > BigInt(mb) * BigInt(segSize) + BigInt(segSize)) break;
    await pg.sql(`update pgbench_accounts set abalance = abalance + ${i + 1} where aid % 7 = ${i % 7}`);
  }
  await pg.stop();
  const work = pgTempDir('wk-wal-');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const all = readdirSync(pg.walDir).filter((f) => parseSegmentFileName(f, segSize)).sort();
  // Keep the first `mb` segments; the dump of those gives the record ends.
  const keep = all.slice(0, mb);
  mkdirSync(join(work, 'wal'));
  for (const f of keep) writeFileSync(join(work, 'wal', f), readFileSync(join(pg.walDir, f)));
  chownToPg(work);
  const first = parseSegmentFileName(keep[0], segSize)!;
  const start = first.segno * BigInt(segSize);
  const lastSeg = parseSegmentFileName(keep[keep.length - 1], segSize)!.segno;
  const limit = (lastSeg + 1n) * BigInt(segSize);
  const ends = (await waldumpEnds(join(work, 'wal'), start, segSize)).filter((e) => e <= limit);
  const head = readFileSync(join(work, 'wal', keep[0]));
  const systemId = head.readBigUInt64LE(8);
  const meta = { start: String(start), end: String(ends[ends.length - 1]), segSize, systemId: String(systemId), ends: ends.map(String) };
  writeFileSync(join(work, 'meta.json'), JSON.stringify(meta));
  try {
    renameSync(work, dir);
  } catch {
    /* another test file made it first */
  }
}

// ---------------------------------------------------------------- checking the stored WAL

/** The stored WAL of the timeline from `start`, segment by segment (.partial preferred), zeros for missing ones. */
export function storedWal(dataDir: string, start: Lsn, length: number, segSize: number): Buffer {
  const dir = join(dataDir, TENANT, TIMELINE);
  const out = Buffer.alloc(length);
  let pos = 0;
  while (pos < length) {
    const lsn = start + BigInt(pos);
    const segno = segmentNumber(lsn, segSize);
    const name = segmentFileName(1, segno, segSize);
    const off = segmentOffset(lsn, segSize);
    const n = Math.min(segSize - off, length - pos);
    const path = existsSync(join(dir, name + '.partial')) ? join(dir, name + '.partial') : join(dir, name);
    if (existsSync(path)) readFileSync(path).copy(out, pos, off, off + n);
    pos += n;
  }
  return out;
}

/** Length of the common prefix of two buffers. */
export function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** The last record end at or before `pos`. */
export function lastRecordEndAtOrBefore(ends: Lsn[], pos: Lsn): Lsn | null {
  let lo = 0;
  let hi = ends.length - 1;
  let best: Lsn | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ends[mid] <= pos) {
      best = ends[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

/** An in-process daemon on loopback ports with `--no-sync` and a silent log, stopped when `t` ends. */
export async function startInProcessDaemon(t: Test, dataDir: string, extra: Partial<DaemonOptions> = {}): Promise<Daemon> {
  const daemon = await Daemon.start({
    dataDir,
    createDataDir: true,
    listenPg: { host: '127.0.0.1', port: 0 },
    listenHttp: { host: '127.0.0.1', port: 0 },
    noSync: true,
    log: silentLogger(),
    ...extra,
  });
  t.teardown(() => daemon.stop());
  return daemon;
}
