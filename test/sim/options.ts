// Knobs of one simulation run, and the deliberate faults a test can inject
// into the harness (never into production code) to prove the checker bites.

/** Bugs planted in an acceptor node's storage or host. */
export type AcceptorBug =
  /** persistControl is not durable until the next WAL sync: a crash forgets a vote already granted. */
  | 'vote-not-durable'
  /** truncateWal does nothing: stale WAL of an old leader stays after a new leader's data. */
  | 'no-truncate'
  /** truncateWal only cuts valid WAL (before the scanned end), leaving a torn tail after a crash in place. */
  | 'keep-torn-tail'
  /** syncWal does nothing: a vote or epoch switch can be persisted before the WAL it relies on. */
  | 'no-sync-before-persist'
  /** The host sends a response before the WAL behind it is durable. */
  | 'ack-before-sync';

/** Proposer shortcuts that the protocol does not survive (demonstrations of hazards). */
export type ProposerFlaw =
  /** term = highest seen + 1 with no per-proposer uniqueness: two leaders can share a term (and epoch). */
  | 'shared-terms'
  /** VCL from the greetings taken before the vote, no second look after it. */
  | 'single-round'
  /** Count every acknowledged flush toward commit, also from acceptors not yet in the leader's epoch. */
  | 'any-epoch-acks';

export interface SimOptions {
  seed: number;
  acceptors?: number;
  proposers?: number;
  /** Virtual time units to run. */
  duration?: number;
  acceptorBug?: AcceptorBug;
  proposerFlaw?: ProposerFlaw;
  /** Keep a trace of every event (printed for a replayed seed). */
  trace?: boolean;
}

export const BASE_LSN = 0x1000000n; // WAL starts at 0/1000000, like a fresh cluster's first segment
export const WAL_SEG_SIZE = 16 << 20;
export const SYSTEM_ID = 0x5eed5eed5eedn;
export const TENANT_ID = new Uint8Array(16).fill(0x7a);
export const TIMELINE_ID = new Uint8Array(16).fill(0x3c);
