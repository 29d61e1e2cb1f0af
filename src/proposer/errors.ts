// The conditions that end a proposer, as the caller tells them apart.

/** A condition the proposer cannot recover from by retrying. */
export class ProposerFatalError extends Error {
  override readonly name = 'ProposerFatalError';
}

/** Another proposer holds a higher term: this one must stop. */
export class LostLeadershipError extends Error {
  override readonly name = 'LostLeadershipError';
}

/** The primary moved to another PostgreSQL timeline: this term ends; a new election follows on the new timeline. */
export class TimelineSwitchError extends Error {
  override readonly name = 'TimelineSwitchError';
  constructor(readonly timeline: number, message: string) {
    super(message);
  }
}

/** Thrown out of a wait that stop() interrupted; never reported. */
export class Stopped extends Error {}
