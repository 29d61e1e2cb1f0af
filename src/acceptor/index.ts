// The acceptor: consensus state machine of one timeline, storage injected.
export { Acceptor, AcceptorSession, type AcceptorOptions, type AppendResult, type SessionPhase } from './acceptor.js';
export { AcceptorError, type AcceptorErrorCode } from './errors.js';
export { emptyState, copyState, noHsFeedback } from './state.js';
export type { AcceptorStorage } from './storage.js';
