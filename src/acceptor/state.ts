// The acceptor's persistent state (SafeKeeperInfo): its empty value and copies.
import { CONTROL_FORMAT_V2, PROTOCOL_VERSION, SAFEKEEPER_MAGIC } from '../protocol/layout.js';
import { copyNodeId, zeroNodeId } from '../protocol/node-id.js';
import type { HotStandbyFeedback, SafeKeeperInfo, ServerInfo } from '../protocol/types.js';
import { U64_MAX } from '../protocol/layout.js';

/** What a new timeline starts from: nothing voted, no WAL, unknown server. */
export function emptyState(): SafeKeeperInfo {
  return {
    magic: SAFEKEEPER_MAGIC,
    formatVersion: CONTROL_FORMAT_V2,
    epoch: 0n,
    server: {
      protocolVersion: PROTOCOL_VERSION,
      pgVersion: 0,
      nodeId: zeroNodeId(),
      systemId: 0n,
      timelineId: new Uint8Array(16),
      walEnd: 0n,
      timeline: 0,
      walSegSize: 0,
      tenantId: new Uint8Array(16),
    },
    commitLsn: 0n,
    flushLsn: 0n,
    restartLsn: 0n,
  };
}

export function copyServerInfo(s: ServerInfo): ServerInfo {
  return {
    ...s,
    nodeId: copyNodeId(s.nodeId),
    timelineId: Uint8Array.from(s.timelineId),
    tenantId: Uint8Array.from(s.tenantId),
  };
}

export function copyState(s: SafeKeeperInfo): SafeKeeperInfo {
  return { ...s, server: copyServerInfo(s.server) };
}

/** hs_feedback when no replica has reported: ts 0, xmin and catalog_xmin u64::MAX. */
export function noHsFeedback(): HotStandbyFeedback {
  return { ts: 0n, xmin: U64_MAX, catalogXmin: U64_MAX };
}
