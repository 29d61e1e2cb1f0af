// Which file holds segment n of PostgreSQL timeline N: the file of the
// newest timeline t in N's ancestry (N and the timelines its history file
// lists) whose start segment is at or below n, where t starts at the switch
// point of its parent (the first timeline at 0). The segment holding a
// switch point thus belongs to the new timeline, whose file starts with a
// copy of the parent's bytes, as PostgreSQL writes it; the parent's file of
// that segment stays `.partial`. The storage, the readers, the archive and
// the file route all pick segment files through here.
import { segmentFileName, segmentNumber, type Lsn } from '../lsn.js';
import type { HistoryEntry } from './history.js';

/** One timeline of an ancestry and where it starts. */
export interface TimelineSpan {
  timeline: number;
  start: Lsn;
  /** Its switch point (where the next timeline starts); null for the newest. */
  end: Lsn | null;
}

export class TimelineAncestry {
  /** Oldest first; the last one is the timeline itself. */
  readonly spans: readonly TimelineSpan[];

  /** `timeline` with the parsed entries of its history file (none for a first timeline). */
  constructor(
    readonly timeline: number,
    history: readonly HistoryEntry[] = [],
  ) {
    const spans: TimelineSpan[] = [];
    let start = 0n;
    for (const e of history) {
      spans.push({ timeline: e.timeline, start, end: e.switchpoint });
      start = e.switchpoint;
    }
    spans.push({ timeline, start, end: null });
    this.spans = spans;
  }

  /** The timeline whose file holds segment `segno`. */
  timelineOfSegment(segno: bigint, walSegSize: number): number {
    for (let i = this.spans.length - 1; i > 0; i--) {
      if (segmentNumber(this.spans[i].start, walSegSize) <= segno) return this.spans[i].timeline;
    }
    return this.spans[0].timeline;
  }

  /** The name (without `.partial`) of the file holding segment `segno`. */
  fileName(segno: bigint, walSegSize: number): string {
    return segmentFileName(this.timelineOfSegment(segno, walSegSize), segno, walSegSize);
  }

  /** Whether `tli` is this timeline or one of its ancestors. */
  includes(tli: number): boolean {
    return this.spans.some((s) => s.timeline === tli);
  }

  /** Where ancestor `tli` ended and which timeline followed it; null when it is not an ancestor (or is the timeline itself). */
  fork(tli: number): { switchpoint: Lsn; nextTli: number } | null {
    const i = this.spans.findIndex((s) => s.timeline === tli);
    const end = i >= 0 ? this.spans[i].end : null;
    return end === null ? null : { switchpoint: end, nextTli: this.spans[i + 1].timeline };
  }
}
