// What a timeline knows about the life of its WAL after it is written:
// where the local WAL starts, how far it is archived, what the archive
// uploader has done, and the disk cap appends must stay under. The archive
// and removal code (src/archive/) keeps it current; the push path, the
// replication sender, the admin API and the metrics read it.
import { segmentNumber, type Lsn } from '../lsn.js';

/** The archive uploader's counters and alarms for one timeline. */
export interface ArchiveProgress {
  /** Where the archive is (`s3://bucket/prefix`, `file:///dir`). */
  location: string;
  segmentsUploaded: number;
  /** Segments found already archived with the same checksum (another safekeeper uploaded them). */
  segmentsAlreadyPresent: number;
  uploadErrors: number;
  lastError: string | null;
  /** Files whose archived object has a different checksum: never overwritten. */
  conflicts: Set<string>;
  /** Conflicts found since the daemon started (a resolved one stays counted). */
  conflictsFound: number;
  /**
   * First LSN the archive covers when the timeline began mid-segment (that
   * segment cannot be uploaded byte-identical to PostgreSQL's); else null.
   */
  startLsn: Lsn | null;
}

export function newArchiveProgress(location: string): ArchiveProgress {
  return { location, segmentsUploaded: 0, segmentsAlreadyPresent: 0, uploadErrors: 0, lastError: null, conflicts: new Set(), conflictsFound: 0, startLsn: null };
}

/** Refused append: the timeline is at its disk cap (SQLSTATE 53100 on the wire). */
export class DiskCapError extends Error {
  constructor(
    readonly timeline: string,
    readonly usage: number,
    readonly cap: number,
  ) {
    super(`timeline disk usage would reach ${usage} bytes, over the cap of ${cap} bytes (--max-timeline-disk-usage) for timeline ${timeline}; WAL is removed once it is archived or past retention`);
    this.name = 'DiskCapError';
  }
}

/**
 * Bytes of WAL segment files an append ending at `endLsn` leaves on disk:
 * every segment from the local start through the one holding the last
 * byte (segment files are preallocated to full size).
 */
export function walFootprint(localStart: Lsn, endLsn: Lsn, walSegSize: number): number {
  if (endLsn <= localStart) return 0;
  const segments = segmentNumber(endLsn - 1n, walSegSize) - segmentNumber(localStart, walSegSize) + 1n;
  return Number(segments) * walSegSize;
}
