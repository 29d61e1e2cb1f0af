// The conditions that end a proposer, as the caller tells them apart.

/** A condition the proposer cannot recover from by retrying. */
export class ProposerFatalError extends Error {
  override readonly name = 'ProposerFatalError';
}

/** Another proposer holds a higher term: this one must stop. */
export class LostLeadershipError extends Error {
  override readonly name = 'LostLeadershipError';
}

/** Thrown out of a wait that stop() interrupted; never reported. */
export class Stopped extends Error {}
