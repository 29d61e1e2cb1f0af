// The proposer side of the WAL push protocol: a client and the election arithmetic.
export { ProposerClient, PgServerError, type ProposerConnectOptions, type QueryResult } from './client.js';
export { divergence, nextTerm, pickDonor, quorumCommitLsn, quorumSize } from './election.js';
