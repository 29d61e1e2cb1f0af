// Bearer-token authorization for the HTTP API. Each route says in its
// config what it needs:
//
//   auth: 'open'    no token needed (GET /v1/status, /metrics, /openapi.json)
//   auth: 'node'    a "safekeeperdata" token (node-wide routes)
//   auth: 'tenant'  a "safekeeperdata" token, or a "tenant" token for the
//                   tenant_id in the path
//
// With no verifier (auth off, the default) every route is open. The token
// is checked before the request is validated (no token: 401 whatever the
// parameters), the scope after (it needs the parsed tenant_id).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AuthError, checkScope, ForbiddenError, type Claims, type JwtVerifier } from '../auth/jwt.js';
import type { Logger } from '../log.js';
import { HttpError } from './errors.js';

export type AuthRule = 'open' | 'node' | 'tenant';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs when auth is on (default 'node'). */
    auth?: AuthRule;
  }
  interface FastifyRequest {
    /** Verified token claims (auth on, non-open routes). */
    claims: Claims | null;
  }
}

export interface HttpAuthOptions {
  verifier: JwtVerifier | null;
  log?: Logger;
}

function ruleOf(req: FastifyRequest): AuthRule {
  // Unknown routes (404) need nothing: there is nothing behind them.
  if (!req.routeOptions.url) return 'open';
  return req.routeOptions.config.auth ?? 'node';
}

function unauthorized(message: string, error = 'invalid_token'): HttpError {
  return new HttpError(401, message, { 'www-authenticate': `Bearer realm="walkeeper", error="${error}"` });
}

/** The token of an `Authorization: Bearer <token>` header; 401 when missing or not Bearer. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header === '') {
    throw new HttpError(401, 'missing Authorization header: send "Authorization: Bearer <token>"', { 'www-authenticate': 'Bearer realm="walkeeper"' });
  }
  const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header);
  if (!m) throw unauthorized('malformed Authorization header: expected "Bearer <token>"', 'invalid_request');
  return m[1];
}

export const httpAuth = fp<HttpAuthOptions>(
  async (app: FastifyInstance, opts: HttpAuthOptions) => {
    app.decorateRequest('claims', null);
    const verifier = opts.verifier;
    if (!verifier) return;

    app.addHook('onRequest', async (req) => {
      if (ruleOf(req) === 'open') return;
      const token = bearerToken(req.headers.authorization);
      try {
        req.claims = verifier.verify(token);
      } catch (err) {
        if (err instanceof AuthError) {
          opts.log?.warn({ method: req.method, url: req.url, reason: err.reason, err: err.message }, 'HTTP authentication failed');
          throw unauthorized(err.message);
        }
        throw err;
      }
    });

    app.addHook('preHandler', async (req) => {
      const rule = ruleOf(req);
      if (rule === 'open') return;
      const claims = req.claims;
      if (!claims) throw unauthorized('no verified token');
      const tenantId = rule === 'tenant' ? (req.params as { tenant_id?: string }).tenant_id : undefined;
      try {
        checkScope(claims, tenantId);
      } catch (err) {
        if (err instanceof ForbiddenError) {
          opts.log?.warn({ method: req.method, url: req.url, scope: claims.scope, tokenTenant: claims.tenantId }, 'HTTP request refused by token scope');
          throw new HttpError(403, err.message);
        }
        throw err;
      }
    });
  },
  { name: 'walkeeper-auth', fastify: '5.x' },
);
