// The HTTP admin API. For now only GET /v1/status (the health check);
// routes declare JSON schemas so validation and serialisation come from one
// place. `build()` makes the app without listening (tests use inject()).
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';

export interface StatusSource {
  /** This safekeeper's numeric id, or null when none is configured. */
  id: number | null;
  version: string;
  /** process start of the daemon, ms since the epoch */
  startedAt: number;
  listenPg: string | null;
  listenHttp: string | null;
  timelines: () => number;
}

export interface BuildOptions {
  status: () => StatusSource;
  /** pino logger (warnings and errors only: no per-request lines); none → logging off. */
  log?: Logger;
}

const statusSchema = {
  type: 'object',
  required: ['id', 'version', 'uptime_seconds', 'listen_pg', 'listen_http', 'timelines'],
  properties: {
    id: { type: ['integer', 'null'] },
    version: { type: 'string' },
    uptime_seconds: { type: 'number' },
    listen_pg: { type: ['string', 'null'] },
    listen_http: { type: ['string', 'null'] },
    timelines: { type: 'integer' },
  },
} as const;

export function build(opts: BuildOptions): FastifyInstance {
  const app: FastifyInstance = opts.log
    ? (Fastify({ loggerInstance: opts.log.child({ component: 'http' }, { level: 'warn' }) }) as unknown as FastifyInstance)
    : Fastify({ logger: false });
  app.get('/v1/status', { schema: { response: { 200: statusSchema } } }, async () => {
    const s = opts.status();
    return {
      id: s.id,
      version: s.version,
      uptime_seconds: Math.round((Date.now() - s.startedAt) / 10) / 100,
      listen_pg: s.listenPg,
      listen_http: s.listenHttp,
      timelines: s.timelines(),
    };
  });
  return app;
}
