// TLS on the pq listener: which context answers an SSLRequest, and the
// --tls-required rule (a plaintext start-up is refused before any password,
// i.e. before a token could cross the network in the clear).
import type { SecureContext } from 'node:tls';
import type { StartupInfo } from '../pq/connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import type { TlsMaterial } from '../tls/material.js';

export interface ServerTls {
  /** The certificate and key new connections get (reloadable). */
  material: TlsMaterial;
  /** --tls-required: refuse connections that did not negotiate TLS. */
  required: boolean;
}

/** The context an SSLRequest is accepted with, or null (answered `N`). */
export function tlsContextFor(tls: ServerTls | undefined): SecureContext | null {
  return tls ? tls.material.context : null;
}

/** Throws FATAL 28000 for a plaintext start-up when TLS is required (PostgreSQL's hostssl answer). */
export function checkEncryption(tls: ServerTls | undefined, encrypted: boolean, info: StartupInfo): void {
  if (!tls?.required || encrypted) return;
  throw new PgError({
    severity: 'FATAL',
    code: SqlState.INVALID_AUTHORIZATION_SPECIFICATION,
    message: `connection refused: user "${info.user}" connected without TLS, and this server accepts only TLS connections`,
    hint: 'Connect with sslmode=verify-full (or require).',
  });
}
