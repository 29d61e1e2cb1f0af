// fast-check generators of the decoded forms the fuzz tests encode and
// decode again: WAL push protocol messages and their parts.
import fc from 'fast-check';
import { MAX_WAL_PER_REQUEST, SAFEKEEPER_MAGIC } from '../../src/protocol/layout.js';
import type { NodeId, RequestVote, SafeKeeperInfo, SafeKeeperRequest, SafeKeeperResponse, ServerInfo } from '../../src/protocol/types.js';

export const u32 = fc.nat({ max: 0xffffffff });
export const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
export const i64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
export const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });

export const nodeIdArb: fc.Arbitrary<NodeId> = fc.record({ term: u64, uuid: bytes16 });

export const serverInfoArb: fc.Arbitrary<ServerInfo> = fc.record({
  protocolVersion: u32,
  pgVersion: u32,
  nodeId: nodeIdArb,
  systemId: u64,
  timelineId: bytes16,
  walEnd: u64,
  timeline: u32,
  walSegSize: u32,
  tenantId: bytes16,
});

/** format_version 2, as the wire carries it. */
export const safeKeeperInfoArb: fc.Arbitrary<SafeKeeperInfo> = fc.record({
  magic: fc.constant(SAFEKEEPER_MAGIC),
  formatVersion: fc.constant(2),
  epoch: u64,
  server: serverInfoArb,
  commitLsn: u64,
  flushLsn: u64,
  restartLsn: u64,
});

export const requestVoteArb: fc.Arbitrary<RequestVote> = fc.record({ nodeId: nodeIdArb, vcl: u64, epoch: u64 });

/** A request with WAL (begin ≥ 1, end - begin ≤ 128 KiB; the payload kept small), or an end-of-stream one. */
export const safeKeeperRequestArb: fc.Arbitrary<SafeKeeperRequest> = fc.oneof(
  fc
    .record({
      senderId: nodeIdArb,
      beginLsn: fc.bigInt({ min: 1n, max: 0xffff_ffff_ffff_ffffn - BigInt(MAX_WAL_PER_REQUEST) }),
      restartLsn: u64,
      commitLsn: u64,
      wal: fc.uint8Array({ maxLength: 2048 }),
    })
    .map((r) => ({ ...r, endLsn: r.beginLsn + BigInt(r.wal.length) })),
  fc.record({ senderId: nodeIdArb, beginLsn: fc.constant(0n), endLsn: fc.constant(0n), restartLsn: u64, commitLsn: u64, wal: fc.constant(new Uint8Array(0)) }),
);

export const safeKeeperResponseArb: fc.Arbitrary<SafeKeeperResponse> = fc.record({
  epoch: u64,
  flushLsn: u64,
  hsFeedback: fc.record({ ts: i64, xmin: u64, catalogXmin: u64 }),
});

/** Byte arrays as hex, so Buffer and Uint8Array views compare equal by content. */
export function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}
