// Payloads carried in CopyData during physical streaming replication: the
// server's XLogData ('w') and keepalive ('k'), the client's standby status
// update ('r'), hot standby feedback ('h') and the original design's 24-byte
// feedback. All integers are big-endian; times are PostgreSQL timestamps
// (µs since 2000-01-01 00:00:00 UTC).
import type { Lsn } from '../lsn.js';
import type { HotStandbyFeedback } from '../protocol/types.js';
import { U64_MAX } from '../protocol/layout.js';
import { describeTag } from './tags.js';

/** Unix time of the PostgreSQL epoch, 2000-01-01 00:00:00 UTC, in µs. */
export const PG_EPOCH_UNIX_US = 946_684_800_000_000n;

const wallAtStartUs = BigInt(Date.now()) * 1000n;
const hrAtStartNs = process.hrtime.bigint();

/** Now as a PostgreSQL timestamp (µs since 2000-01-01 UTC). */
export function pgNow(): bigint {
  return wallAtStartUs + (process.hrtime.bigint() - hrAtStartNs) / 1000n - PG_EPOCH_UNIX_US;
}

export function pgTimeToDate(ts: bigint): Date {
  return new Date(Number((ts + PG_EPOCH_UNIX_US) / 1000n));
}

export function dateToPgTime(d: Date): bigint {
  return BigInt(d.getTime()) * 1000n - PG_EPOCH_UNIX_US;
}

/**
 * The application_name a catching-up safekeeper's proposer uses for its
 * recovery stream: the sender then serves up to the flush position, not only
 * the committed WAL, and ends the stream there.
 */
export const RECOVERY_APPLICATION_NAME = 'wal_proposer_recovery';

export const XLOGDATA_TAG = 0x77; // 'w'
export const KEEPALIVE_TAG = 0x6b; // 'k'
export const STATUS_UPDATE_TAG = 0x72; // 'r'
export const HS_FEEDBACK_TAG = 0x68; // 'h'

/** Bytes before the WAL in an XLogData payload. */
export const XLOGDATA_HEADER_SIZE = 25;
/** A keepalive payload is exactly this long (a standby refuses any other length). */
export const KEEPALIVE_SIZE = 18;
export const STATUS_UPDATE_SIZE = 34;
export const HS_FEEDBACK_SIZE = 25;
/** The original design's feedback: ts i64, xmin u64, catalog_xmin u64, no tag byte. */
export const LEGACY_FEEDBACK_SIZE = 24;

/** Bytes of a CopyData message header ('d' + int32 length). */
export const COPYDATA_HEADER_SIZE = 5;

/**
 * Allocate a whole CopyData(XLogData) message for `walBytes` bytes of WAL
 * and fill in both headers; the WAL goes at offset XLOGDATA_WAL_OFFSET.
 */
export function allocXLogData(dataStart: Lsn, walEnd: Lsn, sendTime: bigint, walBytes: number): Buffer {
  return writeXLogDataHeaders(Buffer.allocUnsafe(COPYDATA_HEADER_SIZE + XLOGDATA_HEADER_SIZE + walBytes), dataStart, walEnd, sendTime, walBytes);
}

/** Fill in both headers of a CopyData(XLogData) message in `msg` (at least XLOGDATA_WAL_OFFSET + walBytes long); returns it. */
export function writeXLogDataHeaders(msg: Buffer, dataStart: Lsn, walEnd: Lsn, sendTime: bigint, walBytes: number): Buffer {
  msg[0] = 0x64; // 'd'
  msg.writeInt32BE(4 + XLOGDATA_HEADER_SIZE + walBytes, 1);
  msg[5] = XLOGDATA_TAG;
  msg.writeBigUInt64BE(dataStart, 6);
  msg.writeBigUInt64BE(walEnd, 14);
  msg.writeBigInt64BE(sendTime, 22);
  return msg;
}

/** Offset of the WAL bytes inside a message from allocXLogData. */
export const XLOGDATA_WAL_OFFSET = COPYDATA_HEADER_SIZE + XLOGDATA_HEADER_SIZE;

/** The XLogData payload alone (tests, tools). */
export function encodeXLogData(dataStart: Lsn, walEnd: Lsn, sendTime: bigint, wal: Uint8Array): Buffer {
  const msg = allocXLogData(dataStart, walEnd, sendTime, wal.length);
  msg.set(wal, XLOGDATA_WAL_OFFSET);
  return msg.subarray(COPYDATA_HEADER_SIZE);
}

/** Keepalive payload, exactly 18 bytes. */
export function encodeKeepalive(walEnd: Lsn, sendTime: bigint, replyRequested: boolean): Buffer {
  const b = Buffer.allocUnsafe(KEEPALIVE_SIZE);
  b[0] = KEEPALIVE_TAG;
  b.writeBigUInt64BE(walEnd, 1);
  b.writeBigInt64BE(sendTime, 9);
  b[17] = replyRequested ? 1 : 0;
  return b;
}

/** Keepalive wrapped in CopyData, ready to send (23 bytes). */
export function keepaliveMessage(walEnd: Lsn, sendTime: bigint, replyRequested: boolean): Buffer {
  const b = Buffer.allocUnsafe(COPYDATA_HEADER_SIZE + KEEPALIVE_SIZE);
  b[0] = 0x64;
  b.writeInt32BE(4 + KEEPALIVE_SIZE, 1);
  encodeKeepalive(walEnd, sendTime, replyRequested).copy(b, COPYDATA_HEADER_SIZE);
  return b;
}

export interface XLogData {
  dataStart: Lsn;
  walEnd: Lsn;
  sendTime: bigint;
  wal: Uint8Array;
}

export interface Keepalive {
  walEnd: Lsn;
  sendTime: bigint;
  replyRequested: boolean;
}

export interface StandbyStatusUpdate {
  writeLsn: Lsn;
  /** 0 = not reported. */
  flushLsn: Lsn;
  /** 0 = not reported. */
  applyLsn: Lsn;
  clientTime: bigint;
  replyRequested: boolean;
}

/** PostgreSQL's 'h': 32-bit xids with their epochs; xid 0 = none. */
export interface PgHotStandbyFeedback {
  clientTime: bigint;
  xmin: number;
  xminEpoch: number;
  catalogXmin: number;
  catalogXminEpoch: number;
}

export type ClientCopyMessage =
  | { kind: 'status'; msg: StandbyStatusUpdate }
  | { kind: 'hs'; msg: PgHotStandbyFeedback }
  | { kind: 'legacy-hs'; msg: HotStandbyFeedback };

export class StreamMessageError extends Error {
  override readonly name = 'StreamMessageError';
}

function tagText(t: number | undefined): string {
  return t === undefined ? '(empty)' : describeTag(t, 'bare');
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Server → client payloads ('w', 'k'); used by tests and by a client. */
export function decodeServerCopyData(p: Uint8Array): { kind: 'xlogdata'; msg: XLogData } | { kind: 'keepalive'; msg: Keepalive } {
  const v = view(p);
  if (p[0] === XLOGDATA_TAG) {
    if (p.length < XLOGDATA_HEADER_SIZE) throw new StreamMessageError(`streaming header too small: ${p.length}`);
    return { kind: 'xlogdata', msg: { dataStart: v.getBigUint64(1), walEnd: v.getBigUint64(9), sendTime: v.getBigInt64(17), wal: p.subarray(XLOGDATA_HEADER_SIZE) } };
  }
  if (p[0] === KEEPALIVE_TAG) {
    if (p.length !== KEEPALIVE_SIZE) throw new StreamMessageError(`invalid keepalive message: ${p.length} bytes, expected ${KEEPALIVE_SIZE}`);
    return { kind: 'keepalive', msg: { walEnd: v.getBigUint64(1), sendTime: v.getBigInt64(9), replyRequested: p[17] !== 0 } };
  }
  throw new StreamMessageError(`unrecognized streaming header: "${tagText(p[0])}"`);
}

/**
 * Client → server CopyData payloads. A payload of exactly 24 bytes is the
 * original design's untagged feedback (no PostgreSQL message has that size);
 * otherwise the first byte is the type. Throws StreamMessageError on an
 * unknown type or a wrong length.
 */
export function decodeClientCopyData(p: Uint8Array): ClientCopyMessage {
  const v = view(p);
  if (p.length === LEGACY_FEEDBACK_SIZE) {
    return { kind: 'legacy-hs', msg: { ts: v.getBigInt64(0), xmin: v.getBigUint64(8), catalogXmin: v.getBigUint64(16) } };
  }
  switch (p[0]) {
    case STATUS_UPDATE_TAG:
      if (p.length < STATUS_UPDATE_SIZE) throw new StreamMessageError(`standby status update too short: ${p.length} bytes, expected ${STATUS_UPDATE_SIZE}`);
      return {
        kind: 'status',
        msg: { writeLsn: v.getBigUint64(1), flushLsn: v.getBigUint64(9), applyLsn: v.getBigUint64(17), clientTime: v.getBigInt64(25), replyRequested: p[33] !== 0 },
      };
    case HS_FEEDBACK_TAG:
      if (p.length < HS_FEEDBACK_SIZE) throw new StreamMessageError(`hot standby feedback too short: ${p.length} bytes, expected ${HS_FEEDBACK_SIZE}`);
      return {
        kind: 'hs',
        msg: { clientTime: v.getBigInt64(1), xmin: v.getUint32(9), xminEpoch: v.getUint32(13), catalogXmin: v.getUint32(17), catalogXminEpoch: v.getUint32(21) },
      };
    default:
      throw new StreamMessageError(`unexpected message type "${tagText(p[0])}"`);
  }
}

export function encodeStatusUpdate(m: StandbyStatusUpdate): Buffer {
  const b = Buffer.allocUnsafe(STATUS_UPDATE_SIZE);
  b[0] = STATUS_UPDATE_TAG;
  b.writeBigUInt64BE(m.writeLsn, 1);
  b.writeBigUInt64BE(m.flushLsn, 9);
  b.writeBigUInt64BE(m.applyLsn, 17);
  b.writeBigInt64BE(m.clientTime, 25);
  b[33] = m.replyRequested ? 1 : 0;
  return b;
}

export function encodePgHsFeedback(m: PgHotStandbyFeedback): Buffer {
  const b = Buffer.allocUnsafe(HS_FEEDBACK_SIZE);
  b[0] = HS_FEEDBACK_TAG;
  b.writeBigInt64BE(m.clientTime, 1);
  b.writeUInt32BE(m.xmin >>> 0, 9);
  b.writeUInt32BE(m.xminEpoch >>> 0, 13);
  b.writeUInt32BE(m.catalogXmin >>> 0, 17);
  b.writeUInt32BE(m.catalogXminEpoch >>> 0, 21);
  return b;
}

export function encodeLegacyHsFeedback(m: HotStandbyFeedback): Buffer {
  const b = Buffer.allocUnsafe(LEGACY_FEEDBACK_SIZE);
  b.writeBigInt64BE(m.ts, 0);
  b.writeBigUInt64BE(BigInt.asUintN(64, m.xmin), 8);
  b.writeBigUInt64BE(BigInt.asUintN(64, m.catalogXmin), 16);
  return b;
}

/** First normal xid: 0 is invalid, 1 bootstrap, 2 frozen; none of them holds anything back. */
const FIRST_NORMAL_XID = 3;

/** A 32-bit xid and its epoch as a full 64-bit xid; u64::MAX when the xid is not a normal one. */
export function fullXid(xid: number, epoch: number): bigint {
  if (xid >>> 0 < FIRST_NORMAL_XID) return U64_MAX;
  return (BigInt(epoch >>> 0) << 32n) | BigInt(xid >>> 0);
}

/** PostgreSQL's 'h' as walkeeper keeps it. */
export function feedbackFromPg(m: PgHotStandbyFeedback): HotStandbyFeedback {
  return { ts: m.clientTime, xmin: fullXid(m.xmin, m.xminEpoch), catalogXmin: fullXid(m.catalogXmin, m.catalogXminEpoch) };
}

/** The 24-byte form as walkeeper keeps it: 0 (InvalidFullTransactionId) means none. */
export function feedbackFromLegacy(m: HotStandbyFeedback): HotStandbyFeedback {
  return { ts: m.ts, xmin: m.xmin === 0n ? U64_MAX : m.xmin, catalogXmin: m.catalogXmin === 0n ? U64_MAX : m.catalogXmin };
}
