// Encoders and decoders of the WAL push protocol v1 messages: little-endian,
// fixed offsets, no padding (docs/protocol.md §4). Decoders check every length and
// throw ProtocolError; bytes after the last field are ignored, except in
// ServerInfo (exactly 88 bytes) and SafeKeeperRequest (the WAL is the rest).
import { Reader, Writer } from '../pq/buffer.js';
import { ProtocolError } from './errors.js';
import {
  MAX_WAL_PER_REQUEST,
  NODE_ID_SIZE,
  REQUEST_HEADER_SIZE,
  REQUEST_VOTE_SIZE,
  RESPONSE_SIZE,
  SAFEKEEPER_INFO_SIZE,
  SAFEKEEPER_MAGIC,
  SERVER_INFO_SIZE,
  TENANT_ID_SIZE,
  TIMELINE_ID_SIZE,
  UUID_SIZE,
} from './layout.js';
import type {
  NodeId,
  RequestVote,
  SafeKeeperInfo,
  SafeKeeperRequest,
  SafeKeeperResponse,
  ServerInfo,
} from './types.js';

const LE = true;

function atLeast(buf: Uint8Array, size: number, what: string): void {
  if (buf.length < size) throw new ProtocolError('too-short', what, 'length', `at least ${size} bytes`, `${buf.length}`);
}

function exactly(buf: Uint8Array, size: number, what: string): void {
  if (buf.length !== size) throw new ProtocolError('wrong-length', what, 'length', `exactly ${size} bytes`, `${buf.length}`);
}

function fixedBytes(w: Writer, b: Uint8Array, size: number, what: string, field: string): void {
  if (b.length !== size) throw new ProtocolError('bad-field', what, field, `${size} bytes`, `${b.length} bytes`);
  w.bytes(b);
}

function u32Field(w: Writer, v: number, what: string, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ProtocolError('bad-field', what, field, 'a u32', String(v));
  w.u32(v);
}

function u64Field(w: Writer, v: bigint, what: string, field: string): void {
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new ProtocolError('bad-field', what, field, 'a u64', String(v));
  w.u64(v);
}

// ---- NodeId (24): term u64 @0, uuid 16 bytes @8 ----

function writeNodeId(w: Writer, id: NodeId, what: string): void {
  u64Field(w, id.term, what, 'node_id.term');
  fixedBytes(w, id.uuid, UUID_SIZE, what, 'node_id.uuid');
}

function readNodeId(r: Reader): NodeId {
  const term = r.u64();
  return { term, uuid: Uint8Array.from(r.bytes(UUID_SIZE)) };
}

export function encodeNodeId(id: NodeId): Buffer {
  const w = new Writer(LE, NODE_ID_SIZE);
  writeNodeId(w, id, 'NodeId');
  return w.finish();
}

export function decodeNodeId(buf: Uint8Array): NodeId {
  atLeast(buf, NODE_ID_SIZE, 'NodeId');
  return readNodeId(new Reader(buf, LE));
}

// ---- ServerInfo (88) ----
// @0 protocol_version u32, @4 pg_version u32, @8 node_id, @32 system_id u64,
// @40 timeline_id 16, @56 wal_end u64, @64 timeline u32, @68 wal_seg_size u32,
// @72 tenant_id 16.

function writeServerInfo(w: Writer, s: ServerInfo, what: string): void {
  u32Field(w, s.protocolVersion, what, 'protocol_version');
  u32Field(w, s.pgVersion, what, 'pg_version');
  writeNodeId(w, s.nodeId, what);
  u64Field(w, s.systemId, what, 'system_id');
  fixedBytes(w, s.timelineId, TIMELINE_ID_SIZE, what, 'timeline_id');
  u64Field(w, s.walEnd, what, 'wal_end');
  u32Field(w, s.timeline, what, 'timeline');
  u32Field(w, s.walSegSize, what, 'wal_seg_size');
  fixedBytes(w, s.tenantId, TENANT_ID_SIZE, what, 'tenant_id');
}

function readServerInfo(r: Reader): ServerInfo {
  return {
    protocolVersion: r.u32(),
    pgVersion: r.u32(),
    nodeId: readNodeId(r),
    systemId: r.u64(),
    timelineId: Uint8Array.from(r.bytes(TIMELINE_ID_SIZE)),
    walEnd: r.u64(),
    timeline: r.u32(),
    walSegSize: r.u32(),
    tenantId: Uint8Array.from(r.bytes(TENANT_ID_SIZE)),
  };
}

export function encodeServerInfo(s: ServerInfo): Buffer {
  const w = new Writer(LE, SERVER_INFO_SIZE);
  writeServerInfo(w, s, 'ServerInfo');
  return w.finish();
}

/** Exactly 88 bytes; anything else is refused. */
export function decodeServerInfo(buf: Uint8Array): ServerInfo {
  exactly(buf, SERVER_INFO_SIZE, 'ServerInfo');
  return readServerInfo(new Reader(buf, LE));
}

// ---- SafeKeeperInfo (128) ----
// @0 magic u32, @4 format_version u32, @8 epoch u64, @16 server (88),
// @104 commit_lsn, @112 flush_lsn, @120 restart_lsn.

/** The 128 bytes, with format_version written as given (the control file forces 2). */
export function encodeSafeKeeperInfo(info: SafeKeeperInfo, formatVersion = info.formatVersion): Buffer {
  const what = 'SafeKeeperInfo';
  const w = new Writer(LE, SAFEKEEPER_INFO_SIZE);
  u32Field(w, info.magic, what, 'magic');
  u32Field(w, formatVersion, what, 'format_version');
  u64Field(w, info.epoch, what, 'epoch');
  writeServerInfo(w, info.server, what);
  u64Field(w, info.commitLsn, what, 'commit_lsn');
  u64Field(w, info.flushLsn, what, 'flush_lsn');
  u64Field(w, info.restartLsn, what, 'restart_lsn');
  return w.finish();
}

/** At least 128 bytes (the rest is ignored); the magic must be 0xCAFECEEF. */
export function decodeSafeKeeperInfo(buf: Uint8Array, what = 'SafeKeeperInfo'): SafeKeeperInfo {
  atLeast(buf, SAFEKEEPER_INFO_SIZE, what);
  const r = new Reader(buf, LE);
  const magic = r.u32();
  if (magic !== SAFEKEEPER_MAGIC) throw new ProtocolError('bad-magic', what, 'magic', hex32(SAFEKEEPER_MAGIC), hex32(magic));
  return {
    magic,
    formatVersion: r.u32(),
    epoch: r.u64(),
    server: readServerInfo(r),
    commitLsn: r.u64(),
    flushLsn: r.u64(),
    restartLsn: r.u64(),
  };
}

// ---- RequestVote (40): @0 node_id, @24 vcl, @32 epoch ----

export function encodeRequestVote(v: RequestVote): Buffer {
  const what = 'RequestVote';
  const w = new Writer(LE, REQUEST_VOTE_SIZE);
  writeNodeId(w, v.nodeId, what);
  u64Field(w, v.vcl, what, 'vcl');
  u64Field(w, v.epoch, what, 'epoch');
  return w.finish();
}

export function decodeRequestVote(buf: Uint8Array): RequestVote {
  atLeast(buf, REQUEST_VOTE_SIZE, 'RequestVote');
  const r = new Reader(buf, LE);
  return { nodeId: readNodeId(r), vcl: r.u64(), epoch: r.u64() };
}

// ---- SafeKeeperRequest (56 + WAL) ----
// @0 sender_id, @24 begin_lsn, @32 end_lsn, @40 restart_lsn, @48 commit_lsn,
// @56 WAL: exactly end_lsn - begin_lsn bytes, at most 128 KiB.

/** A request with begin_lsn 0: the proposer ends the stream. */
export function isEndOfStream(req: SafeKeeperRequest): boolean {
  return req.beginLsn === 0n;
}

/** Checks shared by the encoder and the decoder; `walBytes` is the payload size actually present. */
function checkWalRange(begin: bigint, end: bigint, walBytes: number, what: string): void {
  if (begin === 0n) return; // end of stream: no WAL
  if (end < begin) throw new ProtocolError('end-before-begin', what, 'end_lsn', `>= begin_lsn ${begin}`, String(end));
  const count = end - begin;
  if (count > BigInt(MAX_WAL_PER_REQUEST)) {
    throw new ProtocolError('wal-too-large', what, 'end_lsn - begin_lsn', `at most ${MAX_WAL_PER_REQUEST} bytes`, `${count} bytes`);
  }
  if (BigInt(walBytes) !== count) {
    throw new ProtocolError('wal-length-mismatch', what, 'WAL byte count', `${count} bytes (end_lsn - begin_lsn)`, `${walBytes} bytes`);
  }
}

export function encodeSafeKeeperRequest(req: SafeKeeperRequest): Buffer {
  const head = encodeSafeKeeperRequestHeader(req);
  return req.beginLsn === 0n ? head : Buffer.concat([head, req.wal]);
}

/**
 * The fixed part of a SafeKeeperRequest, with the same checks as
 * encodeSafeKeeperRequest: on the wire, req.wal follows it (nothing when
 * begin_lsn is 0). Lets a sender write the WAL it already holds without
 * copying it into each request.
 */
export function encodeSafeKeeperRequestHeader(req: SafeKeeperRequest): Buffer {
  const what = 'SafeKeeperRequest';
  checkWalRange(req.beginLsn, req.endLsn, req.beginLsn === 0n ? 0 : req.wal.length, what);
  const w = new Writer(LE, REQUEST_HEADER_SIZE);
  writeNodeId(w, req.senderId, what);
  u64Field(w, req.beginLsn, what, 'begin_lsn');
  u64Field(w, req.endLsn, what, 'end_lsn');
  u64Field(w, req.restartLsn, what, 'restart_lsn');
  u64Field(w, req.commitLsn, what, 'commit_lsn');
  return w.finish();
}

/**
 * Header plus exactly end_lsn - begin_lsn WAL bytes (≤ 128 KiB). A request
 * with begin_lsn 0 ends the stream; its other fields and any bytes after
 * the header are not checked. `wal` is a view into `buf`, not a copy.
 */
export function decodeSafeKeeperRequest(buf: Uint8Array): SafeKeeperRequest {
  const what = 'SafeKeeperRequest';
  atLeast(buf, REQUEST_HEADER_SIZE, what);
  const r = new Reader(buf, LE);
  const senderId = readNodeId(r);
  const beginLsn = r.u64();
  const endLsn = r.u64();
  const restartLsn = r.u64();
  const commitLsn = r.u64();
  const walBytes = buf.length - REQUEST_HEADER_SIZE;
  if (beginLsn === 0n) return { senderId, beginLsn, endLsn, restartLsn, commitLsn, wal: new Uint8Array(0) };
  checkWalRange(beginLsn, endLsn, walBytes, what);
  return { senderId, beginLsn, endLsn, restartLsn, commitLsn, wal: buf.subarray(REQUEST_HEADER_SIZE) };
}

// ---- SafeKeeperResponse (40) ----
// @0 epoch u64, @8 flush_lsn, @16 hs_feedback.ts i64, @24 xmin u64, @32 catalog_xmin u64.

export function encodeSafeKeeperResponse(resp: SafeKeeperResponse): Buffer {
  const what = 'SafeKeeperResponse';
  const w = new Writer(LE, RESPONSE_SIZE);
  u64Field(w, resp.epoch, what, 'epoch');
  u64Field(w, resp.flushLsn, what, 'flush_lsn');
  const ts = resp.hsFeedback.ts;
  if (ts < -(1n << 63n) || ts >= 1n << 63n) throw new ProtocolError('bad-field', what, 'hs_feedback.ts', 'an i64', String(ts));
  w.i64(ts);
  u64Field(w, resp.hsFeedback.xmin, what, 'hs_feedback.xmin');
  u64Field(w, resp.hsFeedback.catalogXmin, what, 'hs_feedback.catalog_xmin');
  return w.finish();
}

export function decodeSafeKeeperResponse(buf: Uint8Array): SafeKeeperResponse {
  atLeast(buf, RESPONSE_SIZE, 'SafeKeeperResponse');
  const r = new Reader(buf, LE);
  return {
    epoch: r.u64(),
    flushLsn: r.u64(),
    hsFeedback: { ts: r.i64(), xmin: r.u64(), catalogXmin: r.u64() },
  };
}

export function hex32(v: number): string {
  return '0x' + (v >>> 0).toString(16).toUpperCase().padStart(8, '0');
}
