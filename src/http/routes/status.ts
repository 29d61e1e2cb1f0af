// GET /v1/status: the health check. Open even when auth is on.
import type { FastifyInstance } from 'fastify';

export interface StatusSource {
  /** This safekeeper's numeric id (the daemon always has one; null for an app built without a node). */
  id: number | null;
  version: string;
  /** process start of the daemon, ms since the epoch */
  startedAt: number;
  listenPg: string | null;
  listenHttp: string | null;
  timelines: () => number;
}

const statusSchema = {
  type: 'object',
  required: ['id', 'version', 'uptime_seconds', 'listen_pg', 'listen_http', 'timelines', 'auth'],
  properties: {
    id: { type: ['integer', 'null'], description: 'node id (safekeeper.id: --id, or made on the first start)' },
    version: { type: 'string' },
    uptime_seconds: { type: 'number' },
    listen_pg: { type: ['string', 'null'], description: 'PostgreSQL-protocol listener, host:port' },
    listen_http: { type: ['string', 'null'], description: 'HTTP listener, host:port' },
    timelines: { type: 'integer', description: 'timelines loaded' },
    auth: { type: 'boolean', description: 'whether tokens are required (--auth-public-key)' },
  },
};

export interface StatusRouteOptions {
  status: () => StatusSource;
  authEnabled: boolean;
}

export async function statusRoutes(app: FastifyInstance, opts: StatusRouteOptions): Promise<void> {
  app.get(
    '/v1/status',
    {
      config: { auth: 'open' },
      schema: { summary: 'Node status (health check)', tags: ['node'], response: { 200: statusSchema } },
    },
    async () => {
      const s = opts.status();
      return {
        id: s.id,
        version: s.version,
        uptime_seconds: Math.round((Date.now() - s.startedAt) / 10) / 100,
        listen_pg: s.listenPg,
        listen_http: s.listenHttp,
        timelines: s.timelines(),
        auth: opts.authEnabled,
      };
    },
  );
}
