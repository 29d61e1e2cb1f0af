// The proposer side of the WAL push protocol: a client and the election arithmetic.
export { ProposerClient, PgServerError, type ProposerConnectOptions, type QueryResult } from './client.js';
export { divergence, nextTerm, pickDonor, quorumCommitLsn, quorumSize } from './election.js';
export { parseConnString, resolveConnString, type ConnTarget } from './connstr.js';
export { PgClient, type PgClientOptions } from './pg-client.js';
export { QuorumProposer, ProposerFatalError, LostLeadershipError, type QuorumProposerOptions, type ProposerStatus } from './quorum.js';
export { WalWindow } from './wal-window.js';
