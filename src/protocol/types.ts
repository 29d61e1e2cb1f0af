// Decoded forms of the WAL push protocol (v1) messages; the byte layouts are
// in docs/protocol.md §4 and encoded/decoded only by src/protocol/.
import type { Lsn } from '../lsn.js';

/** term + proposer uuid; ordered by term, then uuid bytes. */
export interface NodeId {
  term: bigint;
  uuid: Uint8Array; // 16 bytes
}

/** 88 bytes, proposer → safekeeper, first message after START_WAL_PUSH. */
export interface ServerInfo {
  protocolVersion: number;
  pgVersion: number;
  nodeId: NodeId;
  systemId: bigint;
  timelineId: Uint8Array; // 16 bytes
  walEnd: Lsn;
  timeline: number; // PostgreSQL TimeLineID
  walSegSize: number;
  tenantId: Uint8Array; // 16 bytes
}

/** 128 bytes; the reply to ServerInfo and the body of the control file. */
export interface SafeKeeperInfo {
  magic: number;
  formatVersion: number;
  epoch: bigint;
  /** Last server info; server.nodeId is the vote (highest NodeId accepted). */
  server: ServerInfo;
  commitLsn: Lsn;
  flushLsn: Lsn;
  restartLsn: Lsn;
}

/** 40 bytes, proposer → safekeeper. */
export interface RequestVote {
  nodeId: NodeId;
  vcl: Lsn;
  epoch: bigint;
}

/** 56-byte header + WAL, proposer → safekeeper. beginLsn 0 ends the stream. */
export interface SafeKeeperRequest {
  senderId: NodeId;
  beginLsn: Lsn;
  endLsn: Lsn;
  restartLsn: Lsn;
  commitLsn: Lsn;
  wal: Uint8Array; // exactly endLsn - beginLsn bytes
}

/** Combined hot standby feedback of a timeline's readers. */
export interface HotStandbyFeedback {
  ts: bigint; // µs since 2000-01-01
  xmin: bigint; // u64::MAX when none reported
  catalogXmin: bigint;
}

/** 40 bytes, safekeeper → proposer. */
export interface SafeKeeperResponse {
  epoch: bigint;
  flushLsn: Lsn;
  hsFeedback: HotStandbyFeedback;
}
