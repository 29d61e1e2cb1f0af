// A proposer that feeds a walkeeper timeline with a real PostgreSQL
// primary's WAL, read straight from the primary's pg_wal. It is elected the
// safe way (docs/protocol.md §7.2–§7.4): greet, vote, greet again
// on a new START_WAL_PUSH, vote with the VCL = the flush position read after
// the vote. Then it pushes WAL in chunks that end wherever the chooser says
// (record boundaries are not needed: the safekeeper stores bytes), with
// commit_lsn = the flush position acknowledged in its epoch. With one
// safekeeper the quorum is that safekeeper, so "acknowledged" is "committed".
//
// No tap here: the replication benchmark uses it too.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { segmentFileName, segmentNumber, segmentOffset, type Lsn } from '../../src/lsn.js';
import { MAX_WAL_PER_REQUEST } from '../../src/protocol/layout.js';
import type { NodeId, SafeKeeperInfo, SafeKeeperResponse, ServerInfo } from '../../src/protocol/types.js';
import { nextTerm } from '../../src/proposer/election.js';
import { ProposerClient } from '../../src/proposer/client.js';
import { idToBytes } from '../../src/timeline/ids.js';

/**
 * WAL [from, to) as stored in the segment files of `walDir` (timeline 1):
 * the bytes PostgreSQL wrote there, page headers included. Only positions
 * below the primary's flush position are meaningful.
 */
export function readWal(walDir: string, from: Lsn, to: Lsn, segSize: number, tli = 1): Buffer {
  return readWalFiles((segno) => join(walDir, segmentFileName(tli, segno, segSize)), from, to, segSize);
}

/** WAL [from, to) read from the file `pathOf` names for each segment. */
export function readWalFiles(pathOf: (segno: bigint) => string, from: Lsn, to: Lsn, segSize: number): Buffer {
  const out = Buffer.allocUnsafe(Number(to - from));
  let pos = 0;
  while (pos < out.length) {
    const lsn = from + BigInt(pos);
    const path = pathOf(segmentNumber(lsn, segSize));
    const name = path;
    const off = segmentOffset(lsn, segSize);
    const n = Math.min(segSize - off, out.length - pos);
    const fd = openSync(path, 'r');
    try {
      let got = 0;
      while (got < n) {
        const r = readSync(fd, out, pos + got, n - got, off + got);
        if (r === 0) throw new Error(`${name} ends before offset ${off + n}`);
        got += r;
      }
    } finally {
      closeSync(fd);
    }
    pos += n;
  }
  return out;
}

export interface FeederOptions {
  host?: string;
  port: number;
  tenantId: string;
  timelineId: string;
  /** The primary's pg_wal (or a copy of it). */
  walDir: string;
  systemId: bigint;
  segSize: number;
  /** server_version_num of the primary. */
  pgVersion: number;
  /** Proposer uuid (16 bytes); a fixed default. */
  uuid?: Uint8Array;
  /** Requests in flight before waiting for responses (default 64, i.e. up to 8 MiB). */
  window?: number;
  /** The primary's PostgreSQL timeline, sent in ServerInfo (default 1). */
  pgTimeline?: number;
  /** The file holding each segment (default: walDir's timeline-1 files). */
  walFile?: (segno: bigint) => string;
}

/** Sizes of the chunks a push is cut into: the next chunk's size given how many bytes are left (1..128 KiB). */
export type ChunkChooser = (left: number) => number;

/** Full 128 KiB requests. */
export const fullChunks: ChunkChooser = (left) => Math.min(left, MAX_WAL_PER_REQUEST);

/** Random sizes from 1 byte to 128 KiB, so chunks end at arbitrary points (inside records, inside page headers). */
export function randomChunks(rng: () => number): ChunkChooser {
  return (left) => {
    const r = rng();
    // A third of the chunks small, the rest up to the limit.
    const max = r < 0.33 ? 512 : MAX_WAL_PER_REQUEST;
    return Math.min(left, 1 + Math.floor(rng() * max));
  };
}

export class WalFeeder {
  /** Next WAL byte to push. */
  next: Lsn;
  /** Highest flush position acknowledged in this proposer's epoch. */
  acked: Lsn = 0n;
  /** commit_lsn sent in the last request. */
  commitSent: Lsn = 0n;
  /** The last response received. */
  last: SafeKeeperResponse | null = null;
  readonly responses: SafeKeeperResponse[] = [];
  readonly stats = { requests: 0, bytes: 0 };
  private inflight = 0;

  private constructor(
    readonly client: ProposerClient,
    readonly opts: FeederOptions,
    readonly nodeId: NodeId,
    /** The greeting after the vote: the safekeeper's stable state. */
    readonly greeting: SafeKeeperInfo,
    /** Where the first push starts. */
    readonly start: Lsn,
  ) {
    this.next = start;
  }

  /**
   * Connect and win the election. `start` is where pushing begins when the
   * safekeeper has no WAL; otherwise it continues from the safekeeper's
   * flush position (the VCL).
   */
  static async elect(opts: FeederOptions, start: Lsn): Promise<WalFeeder> {
    const client = await ProposerClient.connect({
      host: opts.host ?? '127.0.0.1',
      port: opts.port,
      tenantId: opts.tenantId,
      timelineId: opts.timelineId,
      applicationName: 'e2e-proposer',
    });
    const uuid = opts.uuid ?? Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    try {
      // Round 1: greet, then vote with a term above every vote seen.
      await client.startWalPush();
      const first = await client.greet(serverInfoFor(opts, { term: 0n, uuid }, 0n));
      const nodeId: NodeId = { term: nextTerm(first.server.nodeId.term), uuid };
      const v1 = await client.vote({ nodeId, vcl: 0n, epoch: 0n });
      if (v1.term !== nodeId.term) throw new Error(`vote refused: the safekeeper answered term ${v1.term}`);
      await client.endStream();
      // Round 2: only state read after the vote is stable; its flush position is the VCL.
      await client.startWalPush();
      const greeting = await client.greet(serverInfoFor(opts, nodeId, 0n));
      const vcl = greeting.flushLsn;
      const v2 = await client.vote({ nodeId, vcl, epoch: nodeId.term });
      if (v2.term !== nodeId.term) throw new Error(`second vote refused: term ${v2.term}`);
      return new WalFeeder(client, opts, nodeId, greeting, vcl > 0n ? vcl : start);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  private commitFor(maxCommit: Lsn | undefined): Lsn {
    return maxCommit !== undefined && maxCommit < this.acked ? maxCommit : this.acked;
  }

  private take(r: SafeKeeperResponse): void {
    this.inflight--;
    this.last = r;
    this.responses.push(r);
    if (this.responses.length > 1000) this.responses.splice(0, 500);
    if (r.epoch === this.nodeId.term && r.flushLsn > this.acked) this.acked = r.flushLsn;
  }

  /**
   * Push WAL up to `to` (read from the primary's pg_wal), pipelined, wait for
   * every response, then send a heartbeat so that commit_lsn catches up with
   * what was acknowledged (capped at `maxCommit` when given). Returns the
   * heartbeat's response.
   */
  async push(to: Lsn, opts: { chunks?: ChunkChooser; maxCommit?: Lsn } = {}): Promise<SafeKeeperResponse> {
    const chunks = opts.chunks ?? fullChunks;
    const window = this.opts.window ?? 64;
    // Read at most 16 MiB at a time, so a big push does not hold it all in memory.
    while (this.next < to) {
      const sliceEnd = to - this.next > 16n << 20n ? this.next + (16n << 20n) : to;
      const { walDir, walFile, segSize } = this.opts;
      const bytes = walFile ? readWalFiles(walFile, this.next, sliceEnd, segSize) : readWal(walDir, this.next, sliceEnd, segSize);
      let off = 0;
      while (off < bytes.length) {
        const size = Math.max(1, Math.min(chunks(bytes.length - off), bytes.length - off, MAX_WAL_PER_REQUEST));
        const begin = this.next;
        const end = begin + BigInt(size);
        this.client.append({
          senderId: this.nodeId,
          beginLsn: begin,
          endLsn: end,
          restartLsn: this.start,
          commitLsn: (this.commitSent = this.commitFor(opts.maxCommit)),
          wal: bytes.subarray(off, off + size),
        });
        this.inflight++;
        this.stats.requests++;
        this.stats.bytes += size;
        this.next = end;
        off += size;
        while (this.inflight >= window) this.take(await this.client.nextResponse());
      }
    }
    while (this.inflight > 0) this.take(await this.client.nextResponse());
    return this.heartbeat(opts.maxCommit);
  }

  /** A request without WAL: carries commit_lsn (= acknowledged, capped at `maxCommit`) forward. */
  async heartbeat(maxCommit?: Lsn): Promise<SafeKeeperResponse> {
    this.client.append({
      senderId: this.nodeId,
      beginLsn: this.next,
      endLsn: this.next,
      restartLsn: this.start,
      commitLsn: (this.commitSent = this.commitFor(maxCommit)),
      wal: new Uint8Array(0),
    });
    this.inflight++;
    const r = await this.client.nextResponse();
    this.take(r);
    return r;
  }

  async close(): Promise<void> {
    try {
      await this.client.endStream();
    } finally {
      this.client.close();
    }
  }
}

function serverInfoFor(o: FeederOptions, nodeId: NodeId, walEnd: Lsn): ServerInfo {
  return {
    protocolVersion: 1,
    pgVersion: o.pgVersion,
    nodeId,
    systemId: o.systemId,
    timelineId: idToBytes(o.timelineId),
    walEnd,
    timeline: o.pgTimeline ?? 1,
    walSegSize: o.segSize,
    tenantId: idToBytes(o.tenantId),
  };
}
