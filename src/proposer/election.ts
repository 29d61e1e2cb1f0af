// The proposer's arithmetic of an election, pure so that the simulation and
// a network proposer share it. How the pieces fit (docs/protocol.md §7):
//   1. greet a majority; term = nextTerm(highest vote term seen)
//   2. vote with that term; once a majority granted, greet them again: only
//      state read AFTER the vote is stable (an older leader may still append
//      between a greeting and the vote)
//   3. donor = pickDonor(those post-vote infos); VCL = donor's flush_lsn
//   4. vote again with (VCL, epoch = term) and stream from where each
//      acceptor's WAL stops matching the new leader's
//   5. commit = quorumCommitLsn(flushes acknowledged with epoch = term)
import type { Lsn } from '../lsn.js';

/** Acceptors needed for a quorum of `n`: a strict majority. */
export function quorumSize(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * The next term above `highestSeen`. With `slot`, terms are spread over the
 * proposers (term ≡ slot.index mod slot.count) so two proposers never pick
 * the same one: the epoch is the term, and two leaders sharing an epoch
 * would make (epoch, flush_lsn) ambiguous when the next leader picks its donor.
 */
export function nextTerm(highestSeen: bigint, slot?: { index: number; count: number }): bigint {
  const t = highestSeen + 1n;
  if (!slot) return t;
  const n = BigInt(slot.count);
  const want = BigInt(slot.index) % n;
  return t + ((want - (t % n) + n) % n);
}

/** Index of the most advanced acceptor: highest epoch, then highest flush_lsn (first on ties). */
export function pickDonor(infos: ReadonlyArray<{ epoch: bigint; flushLsn: Lsn }>): number {
  let best = -1;
  for (let i = 0; i < infos.length; i++) {
    const b = infos[best];
    if (!b || infos[i].epoch > b.epoch || (infos[i].epoch === b.epoch && infos[i].flushLsn > b.flushLsn)) best = i;
  }
  return best;
}

/** The quorum-th highest flush position: WAL below it is on a quorum. 0 when fewer report. */
export function quorumCommitLsn(flushes: readonly Lsn[], quorum: number): Lsn {
  if (flushes.length < quorum) return 0n;
  const sorted = [...flushes].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  return sorted[quorum - 1];
}

/**
 * Where to start streaming to an acceptor whose WAL from the same start is
 * `theirs`, when the leader's is `ours`: the first byte that differs, or the
 * end of the shorter one. Everything before it matches; the acceptor
 * truncates from there (docs/protocol.md §5.5, §7.4).
 */
export function divergence(ours: Uint8Array, theirs: Uint8Array): number {
  const n = Math.min(ours.length, theirs.length);
  for (let i = 0; i < n; i++) if (ours[i] !== theirs[i]) return i;
  return n;
}
