// Token authentication on the PostgreSQL-protocol port: the server asks for
// a cleartext password (AuthenticationCleartextPassword) and the client
// sends the JWT as the password, as Neon's safekeeper does.
//
// * no token, or one that cannot be trusted (bad signature, expired,
//   malformed): FATAL 28P01, as PostgreSQL answers a wrong password;
// * a genuine token that does not allow the connection (another tenant, a
//   scope other than "tenant"/"safekeeperdata", a tenant token on a
//   connection that names no tenant): FATAL 28000, as PostgreSQL refuses a
//   connection pg_hba.conf does not allow.
//
// A tenant token must name its tenant in the start-up parameters
// (`options='-c ztenantid=...'`). Everything the connection does later is
// bound to that name: START_WAL_PUSH refuses a ServerInfo for another
// timeline, replication serves only the named timeline.
import type { Logger } from '../log.js';
import { askCleartextPassword, type AuthExchange, type Authenticator } from '../pq/auth.js';
import { StartupInfo } from '../pq/connection.js';
import { PgError, SqlState } from '../pq/errors.js';
import { parseStartupOptions } from '../pq/startup.js';
import { namedTimeline } from '../server/context.js';
import { AuthError, checkScope, ForbiddenError, type Claims, type JwtVerifier } from './jwt.js';

export interface PgTokenAuthOptions {
  log?: Logger;
}

function failed(user: string, why: string): PgError {
  return new PgError({ severity: 'FATAL', code: SqlState.INVALID_PASSWORD, message: `password authentication failed for user "${user}"`, detail: why });
}

function refused(why: string, hint?: string): PgError {
  return new PgError({ severity: 'FATAL', code: SqlState.INVALID_AUTHORIZATION_SPECIFICATION, message: `connection refused: ${why}`, hint });
}

/** The JWT-as-password authenticator for the pg port. */
export function pgTokenAuth(verifier: JwtVerifier, opts: PgTokenAuthOptions = {}): Authenticator {
  return {
    name: 'jwt',
    async authenticate(x: AuthExchange): Promise<void> {
      const user = x.params.get('user') ?? '';
      const token = await askCleartextPassword(x);
      let claims: Claims;
      try {
        claims = verifier.verify(token);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        opts.log?.warn({ user, reason: err.reason, err: err.message }, 'pg authentication failed');
        throw failed(user, err.message);
      }
      // validateStartup has already checked the ids' syntax.
      const options = x.params.get('options');
      const named = namedTimeline(new StartupInfo(x.params, options ? parseStartupOptions(options) : new Map(), 0));
      try {
        if (claims.scope === 'tenant' && claims.tenantId && named.tenantId === undefined) {
          throw new ForbiddenError('a tenant token must name its tenant in the connection parameters');
        }
        checkScope(claims, claims.scope === 'safekeeperdata' ? undefined : named.tenantId);
      } catch (err) {
        if (!(err instanceof ForbiddenError)) throw err;
        opts.log?.warn({ user, scope: claims.scope, tokenTenant: claims.tenantId, tenant: named.tenantId }, 'pg connection refused by token scope');
        throw refused(err.message, named.tenantId === undefined ? "Connect with options '-c ztenantid=<32 hex digits> -c ztimelineid=<32 hex digits>'." : undefined);
      }
    },
  };
}
