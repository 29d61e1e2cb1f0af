// The proposer side of the WAL push protocol: a client and the election arithmetic.
export { ProposerClient, type ProposerConnectOptions } from './client.js';
export { PgServerError, type QueryResult } from './frontend-connection.js';
export { divergence, nextTerm, pickDonor, quorumCommitLsn, quorumSize } from './election.js';
export { parseConnString, resolveConnString, type ConnTarget } from './connstr.js';
export { PgClient, type PgClientOptions } from './pg-client.js';
export { QuorumProposer, ProposerFatalError, LostLeadershipError, type QuorumProposerOptions, type ProposerStatus } from './quorum.js';
export { WalWindow } from './wal-window.js';
