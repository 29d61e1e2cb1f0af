// Daemon-level archive tests without PostgreSQL: synthetic WAL laid out as
// PostgreSQL writes it (test/wal/synth.ts, 1 MiB segments), pushed by the
// raw WAL push client with the commit and restart positions each test
// chooses, and the daemon's status, metrics and archive read back.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeObject, objectKey } from '../../src/archive/object-format.js';
import type { RemoteStorage } from '../../src/archive/remote-storage.js';
import { segmentFileName, segmentStart, type Lsn } from '../../src/lsn.js';
import { MAX_WAL_PER_REQUEST } from '../../src/protocol/layout.js';
import type { NodeId } from '../../src/protocol/types.js';
import { waitFor } from '../helpers/support.js';
import { errorFields, query, RawClient } from '../pq/raw-client.js';
import { PROPOSER_UUID, PushClient, serverInfo, TENANT, TIMELINE, type DaemonProc, type RealWal } from '../daemon/helpers.js';
import { WalBuilder } from '../wal/synth.js';

export const SEG = 1 << 20;
export const MiB = BigInt(SEG);

/**
 * `segments` whole 1 MiB segments of synthetic WAL starting at segment 1,
 * then part of the next one (records of a size chosen from `seed`).
 */
export function synthWal(segments: number, seed = 1): RealWal {
  const b = new WalBuilder({ segSize: SEG, start: MiB });
  const size = 100 + (seed % 7) * 37;
  b.fill(segments * SEG + 20_000, size);
  const bytes = Buffer.from(b.bytes());
  return { bytes, startLsn: MiB, endLsn: b.end, segSize: SEG, systemId: 7000000000000000000n + BigInt(seed), recordEnds: [] };
}

/** The WAL push client params for another timeline of the same tenant. */
export function timelineParams(timelineId: string): Record<string, string> {
  return { options: `-c ztenantid=${TENANT} -c ztimelineid=${timelineId}` };
}

export interface Pusher {
  client: PushClient;
  nodeId: NodeId;
  /** Flush position of the last response. */
  acked: Lsn;
}

/** Connect to a timeline, greet from PostgreSQL timeline `pgTimeline`, elect (a term above any stored), ready to push. */
export async function connectPusher(d: DaemonProc, wal: RealWal, timelineId = TIMELINE, pgTimeline = 1): Promise<Pusher> {
  const client = await PushClient.connect(d.pgPort, timelineParams(timelineId));
  await client.startWalPush();
  const greeting = await client.greet(serverInfo(wal, 1n, { timelineId: Uint8Array.from(Buffer.from(timelineId, 'hex')), timeline: pgTimeline }));
  const nodeId = { term: greeting.server.nodeId.term + 1n, uuid: PROPOSER_UUID };
  const reply = await client.vote({ nodeId, vcl: greeting.flushLsn, epoch: nodeId.term });
  if (reply.term !== nodeId.term) throw new Error(`vote not granted: ${reply.term}`);
  return { client, nodeId, acked: greeting.flushLsn };
}

export interface PushRange {
  from: Lsn;
  to: Lsn;
  /** commit_lsn sent with every request (default: the last acknowledged position). */
  commit?: Lsn;
  /** restart_lsn sent with every request (default: the WAL's start). */
  restart?: Lsn;
}

/** Push wal[from, to) in 128 KiB requests, one at a time, each response checked. */
export async function pushRange(p: Pusher, wal: RealWal, r: PushRange): Promise<void> {
  for (let pos = r.from; pos < r.to; ) {
    const end = pos + BigInt(MAX_WAL_PER_REQUEST) > r.to ? r.to : pos + BigInt(MAX_WAL_PER_REQUEST);
    p.client.append({
      senderId: p.nodeId,
      beginLsn: pos,
      endLsn: end,
      restartLsn: r.restart ?? wal.startLsn,
      commitLsn: r.commit ?? p.acked,
      wal: wal.bytes.subarray(Number(pos - wal.startLsn), Number(end - wal.startLsn)),
    });
    const resp = await p.client.response();
    if (resp.flushLsn !== end) throw new Error(`acknowledged ${resp.flushLsn}, expected ${end}`);
    p.acked = end;
    pos = end;
  }
}

/** A request without WAL that moves commit_lsn (and restart_lsn) only. */
export async function heartbeat(p: Pusher, commit: Lsn, restart: Lsn): Promise<void> {
  p.client.append({ senderId: p.nodeId, beginLsn: p.acked, endLsn: p.acked, restartLsn: restart, commitLsn: commit, wal: new Uint8Array(0) });
  await p.client.response();
}

export interface ArchiveStatus {
  location: string;
  lag_bytes: number;
  segments_uploaded: number;
  segments_already_present: number;
  segments_removed: number;
  upload_errors: number;
  last_error: string | null;
  conflicts: string[];
  start_lsn: string | null;
}

export interface TimelineStatus {
  epoch: number;
  server: { pg_timeline: number; system_id: string };
  pg_timeline: number;
  flush_lsn: string;
  commit_lsn: string;
  local_start_lsn: string;
  backup_lsn: string;
  disk_usage_bytes: number;
  segments_removed: number;
  archive: ArchiveStatus | null;
}

export async function status(d: DaemonProc, timelineId = TIMELINE): Promise<TimelineStatus> {
  const res = await fetch(`http://127.0.0.1:${d.httpPort}/v1/tenant/${TENANT}/timeline/${timelineId}`);
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  return (await res.json()) as TimelineStatus;
}

export async function metrics(d: DaemonProc): Promise<string> {
  return (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`)).text();
}

/** The value of a per-timeline metric for the default timeline. */
export function metricValue(text: string, name: string, timelineId = TIMELINE): number | null {
  const re = new RegExp(`^${name}\\{[^}]*timeline_id="${timelineId}"[^}]*\\} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

export const lsnText = (lsn: Lsn): string => `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;

/** Wait (deadline 60 s) until the status satisfies `ok`. */
export function waitStatus(d: DaemonProc, what: string, ok: (s: TimelineStatus) => boolean, timelineId = TIMELINE): Promise<TimelineStatus> {
  return waitFor(what, () => status(d, timelineId), ok, 60_000, 100);
}

export const segName = (segno: bigint): string => segmentFileName(1, segno, SEG);

/** Bytes of segment `segno` as the source WAL has them. */
export function sourceSegment(wal: RealWal, segno: bigint): Buffer {
  const off = Number(segmentStart(segno, SEG) - wal.startLsn);
  return wal.bytes.subarray(off, off + SEG);
}

/** The decoded archived file for `name`, or null. */
export async function archivedFile(storage: RemoteStorage, name: string, timelineId = TIMELINE): Promise<Buffer | null> {
  const key = objectKey(TENANT, timelineId, name);
  const info = await storage.head(key);
  if (!info) return null;
  const body = await storage.get(key);
  return body ? decodeObject(key, body, info.metadata) : null;
}

export function timelineDir(d: DaemonProc, timelineId = TIMELINE): string {
  return join(d.dataDir, TENANT, timelineId);
}

export function localSegment(d: DaemonProc, segno: bigint, timelineId = TIMELINE): Buffer {
  return readFileSync(join(timelineDir(d, timelineId), segName(segno)));
}

async function replicationClient(d: DaemonProc): Promise<RawClient> {
  const c = await RawClient.connect(d.pgPort);
  const msgs = await c.startup({ user: 'reader', database: 'replication', replication: 'true', application_name: 'archive-reader', options: `-c ztenantid=${TENANT} -c ztimelineid=${TIMELINE}` });
  const last = msgs[msgs.length - 1];
  if (last.tag !== 'Z') throw new Error(`start-up failed: ${last.tag === 'E' ? errorFields(last.body).M : last.tag}`);
  return c;
}

/** START_REPLICATION at `from` on PostgreSQL timeline `tli`; collect the WAL streamed until `to` (XLogData checked to be contiguous). */
export async function stream(d: DaemonProc, from: Lsn, to: Lsn, tli = 1): Promise<Buffer> {
  const c = await replicationClient(d);
  try {
    c.write(query(`START_REPLICATION PHYSICAL ${lsnText(from)} TIMELINE ${tli}`));
    const first = await c.read(30_000);
    if (!first) throw new Error('closed');
    if (first.tag === 'E') throw Object.assign(new Error(errorFields(first.body).M), { fields: errorFields(first.body) });
    if (first.tag !== 'W') throw new Error(`expected CopyBothResponse, got ${first.tag}`);
    const parts: Buffer[] = [];
    let pos = from;
    while (pos < to) {
      const m = await c.read(30_000);
      if (!m) throw new Error(`stream closed at ${lsnText(pos)}`);
      if (m.tag === 'E') throw Object.assign(new Error(errorFields(m.body).M), { fields: errorFields(m.body) });
      if (m.tag !== 'd' || m.body[0] !== 0x77) continue; // keepalives
      const start = m.body.readBigUInt64BE(1);
      if (start !== pos) throw new Error(`XLogData at ${lsnText(start)}, expected ${lsnText(pos)}`);
      const data = m.body.subarray(25);
      parts.push(Buffer.from(data));
      pos += BigInt(data.length);
    }
    return Buffer.concat(parts).subarray(0, Number(to - from));
  } finally {
    c.destroy();
  }
}
