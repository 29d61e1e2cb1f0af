// Hand-written byte fixtures of the WAL push messages (docs/protocol.md §4), laid
// out field by field with their offsets, and the decoded values they mean.
import type { NodeId, ServerInfo, SafeKeeperInfo } from '../../src/protocol/types.js';

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|\|.*$/gm, ''), 'hex');
const range = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => from + i);

export const NODE_ID: NodeId = { term: 0x0102030405060708n, uuid: range(0x00, 16) };
export const NODE_ID_BYTES = hex(`
  0807060504030201                  | @0  term 0x0102030405060708
  000102030405060708090a0b0c0d0e0f  | @8  uuid 00..0f
`);

export const SERVER_INFO: ServerInfo = {
  protocolVersion: 1,
  pgVersion: 150004,
  nodeId: NODE_ID,
  systemId: 0x1122334455667788n,
  timelineId: range(0xa0, 16),
  walEnd: 0x16b3748n,
  timeline: 1,
  walSegSize: 16 << 20,
  tenantId: range(0xb0, 16),
};
export const SERVER_INFO_BYTES = hex(`
  01000000                          | @0  protocol_version 1
  f4490200                          | @4  pg_version 150004
  0807060504030201                  | @8  node_id.term
  000102030405060708090a0b0c0d0e0f  | @16 node_id.uuid
  8877665544332211                  | @32 system_id
  a0a1a2a3a4a5a6a7a8a9aaabacadaeaf  | @40 timeline_id
  48376b0100000000                  | @56 wal_end 0/16B3748
  01000000                          | @64 timeline 1
  00000001                          | @68 wal_seg_size 16 MiB
  b0b1b2b3b4b5b6b7b8b9babbbcbdbebf  | @72 tenant_id
`);

export const SAFEKEEPER_INFO: SafeKeeperInfo = {
  magic: 0xcafeceef,
  formatVersion: 2,
  epoch: 10n,
  server: SERVER_INFO,
  commitLsn: 0x100n,
  flushLsn: 0x200n,
  restartLsn: 0x80n,
};
export const SAFEKEEPER_INFO_BYTES = Buffer.concat([
  hex(`
  efcefeca                          | @0  magic 0xCAFECEEF
  02000000                          | @4  format_version 2
  0a00000000000000                  | @8  epoch 10
  `),
  SERVER_INFO_BYTES, //                  @16 server (88 bytes)
  hex(`
  0001000000000000                  | @104 commit_lsn 0x100
  0002000000000000                  | @112 flush_lsn 0x200
  8000000000000000                  | @120 restart_lsn 0x80
  `),
]);
