// GET /metrics: Prometheus text exposition. Open even when auth is on.
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../metrics/metrics.js';

export async function metricsRoutes(app: FastifyInstance, opts: { metrics: Metrics }): Promise<void> {
  app.get(
    '/metrics',
    {
      config: { auth: 'open' },
      schema: {
        summary: 'Prometheus metrics',
        description: 'Text exposition format 0.0.4: per-timeline LSNs, WAL bytes, appends, sync latency, connected proposers and readers; errors, connections, process metrics.',
        tags: ['node'],
        response: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    async (_req, reply) => {
      const text = await opts.metrics.text();
      return reply.type(opts.metrics.contentType).send(text);
    },
  );
}
