// Token authentication: Ed25519 JWTs with Neon's scopes, for the HTTP API
// and the PostgreSQL-protocol port.
export { AuthError, checkScope, ForbiddenError, JwtVerifier, loadPrivateKey, MAX_TOKEN_LENGTH, signToken, type Claims, type Scope, type TokenClaims } from './jwt.js';
export { pgTokenAuth, type PgTokenAuthOptions } from './pg.js';
