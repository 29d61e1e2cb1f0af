// GET /openapi.json: the OpenAPI document @fastify/swagger builds from the
// route schemas (so it lists exactly the routes that exist).
import type { FastifyInstance } from 'fastify';

export async function openapiRoutes(app: FastifyInstance): Promise<void> {
  app.get(
    '/openapi.json',
    {
      config: { auth: 'open' },
      schema: {
        summary: 'This API as an OpenAPI 3.1 document',
        tags: ['node'],
        response: { 200: { type: 'object', additionalProperties: true, description: 'OpenAPI document' } },
      },
    },
    async () => app.swagger(),
  );
}
