// The removal horizon (docs/protocol.md §15.3): a local segment may go only
// when it is wholly below every one of
//   * backup_lsn, when there is an archive (it holds everything below);
//   * restart_lsn (WAL every safekeeper has), when there is none;
//   * flush_lsn − --wal-keep-size (retention operators set for readers);
//   * the start of the segment holding min(commit_lsn, flush_lsn): the end of
//     WAL a greeting reports is found by scanning from there (§10), so that
//     segment always stays;
// and, with --wal-keep-time, when it was completed at least that long ago.
import { segmentFloor, type Lsn } from '../lsn.js';

export interface HorizonInputs {
  /** Where the archive's contiguous prefix ends; null without an archive. */
  archivedBelow: Lsn | null;
  /** The proposer's restart_lsn from the acceptor state. */
  restartLsn: Lsn;
  /** End of the WAL durable here. */
  flushLsn: Lsn;
  /** The commit position (the acceptor state's). */
  commitLsn: Lsn;
  walSegSize: number;
  /** --wal-keep-size in bytes. */
  keepSize: number;
}

export interface RetentionSettings {
  /** --wal-keep-size in bytes. */
  keepSize: number;
  /** --wal-keep-time in ms (0: off). */
  keepTimeMs: number;
}

/** Segments ending at or below the returned LSN may be removed (the keep-time test aside). */
export function removalHorizon(i: HorizonInputs): Lsn {
  const keep = BigInt(i.keepSize);
  let h = i.flushLsn > keep ? i.flushLsn - keep : 0n;
  const peerOrArchive = i.archivedBelow ?? i.restartLsn;
  if (peerOrArchive < h) h = peerOrArchive;
  const kept = segmentFloor(i.commitLsn < i.flushLsn ? i.commitLsn : i.flushLsn, i.walSegSize);
  return kept < h ? kept : h;
}

/** Whether a segment completed at `completedAt` (ms) is old enough for --wal-keep-time. */
export function pastKeepTime(completedAt: number, keepTimeMs: number, now: number): boolean {
  return keepTimeMs <= 0 || now - completedAt >= keepTimeMs;
}
