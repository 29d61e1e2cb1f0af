// The replication side: serving stored WAL to PostgreSQL clients over the
// streaming replication protocol. The daemon needs handleReplicationQuery()
// and a WalSource for the connection's timeline; the rest is for tools and
// tests.
export * from './source.js';
export * from './positions.js';
export * from './file-source.js';
export * from '../wal/history.js';
export * from './commands.js';
export * from '../pq/streaming.js';
export * from './connection.js';
export * from './sender.js';
export * from './handler.js';
