// What a safekeeper link reads of the term it streams in and what it
// reports back: a read-only view of the leader and a few events, so the
// link knows nothing of the primary or of whoever runs the term.
import type { Logger } from '../log.js';
import type { Lsn } from '../lsn.js';
import type { NodeId, ServerInfo } from '../protocol/types.js';
import type { CatchUpSource, CatchUpTarget } from './catch-up.js';
import type { SafekeeperLink } from './safekeeper.js';
import type { TimelineHistory } from './timeline-history.js';
import type { WalWindow } from './wal-window.js';

/** Fixed for the proposer's lifetime. */
export interface LinkSettings {
  readonly log: Logger;
  readonly tenantId: string;
  readonly timelineId: string;
  readonly password: string | undefined;
  /** WAL bytes in flight to one safekeeper. */
  readonly windowBytes: number;
  /** Requests in flight to one safekeeper when fed from memory (WAL arriving meanwhile goes into the next one). */
  readonly pipelineDepth: number;
  backoffMs(failures: number): number;
}

/** The term a link streams in, read-only. */
export interface LeaderView {
  readonly term: bigint;
  readonly nodeId: NodeId;
  readonly vcl: Lsn;
  readonly window: WalWindow;
  readonly commit: Lsn;
  readonly pgTimeline: number;
  readonly walSegSize: number;
  /** The history file of the primary's timeline, stored on a safekeeper before it is greeted; null on timeline 1. */
  readonly history: TimelineHistory | null;
  serverInfo(): ServerInfo;
  restartLsn(): Lsn;
  /** Where a safekeeper without any WAL starts. */
  emptyStart(): Lsn;
  /** The best peer to read WAL at `lsn` from, other than `exclude`. */
  peerFor(lsn: Lsn, exclude: CatchUpTarget): CatchUpSource | null;
}

/** What a link tells whoever runs the term. */
export interface LinkEvents {
  /** It joined and streams: it may serve WAL to its peers now. */
  joined(): void;
  /** Its flush acknowledged in this term moved. */
  acked(): void;
  /** Its hot standby feedback changed (or went away). */
  feedbackChanged(): void;
  /** It answered a request (any epoch): `commitAcked` may have moved. */
  answered?(link: SafekeeperLink): void;
  /** Lost leadership: stop everything. */
  fatal(err: Error): void;
}
