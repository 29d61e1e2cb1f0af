// Reading WAL that was removed locally from the archive (docs/protocol.md
// §15.5). A stream positioned below the timeline's local start reads whole
// archived segments (fetched, decoded and verified by the daemon's archive
// side) and serves them from memory; at the local start it is back on the
// local files, whose reads keep their fast synchronous path. Without an
// archive the missing segment stays PostgreSQL's "has already been removed".
import { segmentNumber, segmentOffset, type Lsn } from '../lsn.js';
import { WalReadError, WalSegmentMissingError, type WalReader } from './source.js';

/** What the archive side offers a reader of one timeline. */
export interface ArchivedSegments {
  /** Start of the oldest local segment (null: no local WAL yet). */
  readonly localStartLsn?: Lsn | null;
  /** A whole archived segment, decoded and verified; null when not archived. The hook is null or absent without an archive. */
  readonly fetchArchivedSegment?: ((segno: bigint) => Promise<Uint8Array | null>) | null;
}

/** Copy bytes at `lsn` from a whole segment held in memory. */
function copyFromSegment(segment: Uint8Array, lsn: Lsn, walSegSize: number, buf: Uint8Array): number {
  const offset = segmentOffset(lsn, walSegSize);
  const n = Math.min(buf.length, walSegSize - offset);
  buf.set(segment.subarray(offset, offset + n));
  return n;
}

/**
 * Read through `local`; positions below the local start, and segments the
 * local read finds missing (removed between the check and the open), come
 * from the archive. One fetched segment is kept for the stream.
 */
export class ArchiveFallbackReader implements WalReader {
  private cached: { segno: bigint; bytes: Uint8Array } | null = null;

  constructor(
    private readonly local: WalReader,
    private readonly archive: ArchivedSegments,
    private readonly walSegSize: () => number,
    private readonly segmentName: (segno: bigint) => string,
  ) {}

  /** Bumped whenever the local reader's is: the stream's staleness check sees through this wrapper. */
  get generation(): number | undefined {
    return this.local.generation;
  }

  read(lsn: Lsn, buf: Uint8Array): number | Promise<number> {
    const start = this.archive.localStartLsn;
    // No archive: the local reader exactly as it is, its error included.
    if (!this.archive.fetchArchivedSegment) return this.local.read(lsn, buf);
    if (start != null && lsn < start) return this.readArchived(lsn, buf);
    const got = this.local.read(lsn, buf);
    if (typeof got === 'number') return got;
    return got.catch((err: unknown) => {
      if (err instanceof WalSegmentMissingError) return this.readArchived(lsn, buf);
      throw err;
    });
  }

  private async readArchived(lsn: Lsn, buf: Uint8Array): Promise<number> {
    const segSize = this.walSegSize();
    const segno = segmentNumber(lsn, segSize);
    const name = this.segmentName(segno);
    if (this.cached?.segno !== segno) {
      let bytes: Uint8Array | null | undefined;
      try {
        bytes = await this.archive.fetchArchivedSegment?.(segno);
      } catch (err) {
        throw new WalReadError(name, segmentOffset(lsn, segSize), `could not read WAL segment ${name} from the archive: ${(err as Error).message}`);
      }
      if (!bytes || bytes.length !== segSize) throw new WalSegmentMissingError(name);
      this.cached = { segno, bytes };
    }
    return copyFromSegment(this.cached.bytes, lsn, segSize, buf);
  }

  invalidate(): void {
    this.cached = null;
    (this.local as { invalidate?: () => void }).invalidate?.();
  }

  close(): void {
    this.cached = null;
    this.local.close?.();
  }
}
