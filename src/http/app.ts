// The HTTP admin API (Fastify). `build()` makes the app without listening
// (tests use inject()). One plugin per route group; every route declares
// JSON schemas for its params, query string and replies, from which
// validation, serialisation and the OpenAPI document (/openapi.json) come.
//
//   GET    /v1/status                                     open
//   GET    /metrics                                       open
//   GET    /openapi.json                                  open
//   POST   /v1/reload                                     safekeeperdata
//   GET    /v1/timelines                                  safekeeperdata
//   GET    /v1/tenant/:tenant_id/timeline/:timeline_id    tenant
//   DELETE /v1/tenant/:tenant_id/timeline/:timeline_id    tenant
//   GET    /v1/tenant/:tenant_id/timeline/:timeline_id/wal tenant
//   GET    /v1/tenant/:tenant_id/timeline/:timeline_id/file/:name tenant
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import type { JwtVerifier } from '../auth/jwt.js';
import type { Logger } from '../log.js';
import type { PemPair } from '../tls/material.js';
import { Metrics } from '../metrics/metrics.js';
import { version } from '../version.js';
import { httpAuth } from './auth.js';
import { errorHandler } from './errors.js';
import { HTTP_LIMITS } from './limits.js';
import type { NodeAdmin } from './node.js';
import { fileRoutes } from './routes/files.js';
import { metricsRoutes } from './routes/metrics.js';
import { openapiRoutes } from './routes/openapi.js';
import { reloadRoutes, type ReloadReport } from './routes/reload.js';
import { statusRoutes, type StatusSource } from './routes/status.js';
import { timelineRoutes } from './routes/timelines.js';
import { walRoutes } from './routes/wal.js';

export type { StatusSource } from './routes/status.js';
export type { NodeAdmin } from './node.js';
export type { ReloadItem, ReloadReport } from './routes/reload.js';

export interface BuildOptions {
  status: () => StatusSource;
  /** pino logger (warnings and errors only: no per-request lines); none → logging off. */
  log?: Logger;
  /** The timelines; without it the timeline routes are not served. */
  node?: NodeAdmin;
  /** Token verifier; null/absent = auth off (every route open). */
  auth?: JwtVerifier | null;
  /** The metrics registry to serve (a new one, without node sources, when absent). */
  metrics?: Metrics;
  /** Serve HTTPS with this certificate and key (absent: plain HTTP). */
  https?: PemPair;
  /** Re-read keys and certificates (POST /v1/reload); absent: the route is not served. */
  reload?: () => ReloadReport;
}

export function build(opts: BuildOptions): FastifyInstance {
  const ajv = { customOptions: { removeAdditional: false as const, verbose: true } };
  const https = opts.https ? { cert: opts.https.cert, key: opts.https.key } : null;
  const app: FastifyInstance = opts.log
    ? (Fastify({ loggerInstance: opts.log.child({ component: 'http' }, { level: 'warn' }), ajv, https, ...HTTP_LIMITS }) as unknown as FastifyInstance)
    : (Fastify({ logger: false, ajv, https, ...HTTP_LIMITS }) as unknown as FastifyInstance);
  const metrics = opts.metrics ?? new Metrics();
  const authEnabled = !!opts.auth;

  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'walkeeper admin API',
        version,
        description:
          'Inspect and manage the timelines of a walkeeper safekeeper. LSNs are X/Y strings. With --auth-public-key, every route but /v1/status, /metrics and /openapi.json needs "Authorization: Bearer <JWT>" (EdDSA): scope "safekeeperdata" for everything, scope "tenant" with tenant_id for that tenant\'s timelines.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (EdDSA)' } } },
    },
    transform: ({ schema, url, route }) => {
      const rule = route.config?.auth ?? 'node';
      const out = { ...(schema ?? {}) } as Record<string, unknown>;
      if (rule !== 'open') out.security = [{ bearer: [] }];
      return { schema: out as typeof schema, url };
    },
  });
  void app.register(httpAuth, { verifier: opts.auth ?? null, log: opts.log });

  app.setErrorHandler(errorHandler(opts.log));
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpResponse(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  void app.register(statusRoutes, { status: opts.status, authEnabled });
  void app.register(metricsRoutes, { metrics });
  void app.register(openapiRoutes);
  if (opts.reload) void app.register(reloadRoutes, { reload: opts.reload });
  if (opts.node) {
    void app.register(timelineRoutes, { node: opts.node, log: opts.log });
    void app.register(walRoutes, { node: opts.node });
    void app.register(fileRoutes, { node: opts.node });
  }
  return app;
}
