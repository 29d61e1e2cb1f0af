// POST /v1/reload: re-read the auth public keys and the TLS certificates
// and keys (as SIGHUP does). Node scope. 200 when everything was reloaded;
// 422 when a file was refused (what was refused stays as it was, and the
// reply says why).
import type { FastifyInstance } from 'fastify';
import { errorReplies } from '../schemas.js';

/** One piece of reloadable material and what became of it. */
export interface ReloadItem {
  /** auth_public_keys, or tls (the pq port, and HTTPS when it shares the pair), or http_tls. */
  what: 'auth_public_keys' | 'tls' | 'http_tls';
  path: string;
  /** What is in force now: the key count, or the certificate's subject, SHA-256 fingerprint and expiry. */
  keys?: number;
  subject?: string;
  fingerprint256?: string;
  valid_to?: string;
  /** Why the new file was refused (the old material stays). */
  error?: string;
}

export interface ReloadReport {
  reloaded: ReloadItem[];
  refused: ReloadItem[];
}

const itemSchema = {
  type: 'object',
  required: ['what', 'path'],
  properties: {
    what: { type: 'string', enum: ['auth_public_keys', 'tls', 'http_tls'], description: 'tls: the pq port (and HTTPS when it uses the same files)' },
    path: { type: 'string', description: 'the file re-read (for TLS: the certificate)' },
    keys: { type: 'integer', description: 'public keys in force' },
    subject: { type: 'string', description: 'subject of the certificate in force' },
    fingerprint256: { type: 'string', description: 'its SHA-256 fingerprint' },
    valid_to: { type: 'string', description: 'its expiry' },
    error: { type: 'string', description: 'why the new file was refused; the old material stays in force' },
  },
} as const;

const reportSchema = {
  type: 'object',
  required: ['reloaded', 'refused'],
  properties: {
    error: { type: 'string', description: 'reload_refused when anything was refused' },
    message: { type: 'string' },
    reloaded: { type: 'array', items: itemSchema, description: 'material now in force' },
    refused: { type: 'array', items: itemSchema, description: 'material kept because its new file could not be used' },
  },
} as const;

export interface ReloadRouteOptions {
  reload: () => ReloadReport;
}

export async function reloadRoutes(app: FastifyInstance, opts: ReloadRouteOptions): Promise<void> {
  app.post(
    '/v1/reload',
    {
      config: { auth: 'node' },
      schema: {
        summary: 'Re-read the auth public keys and TLS certificates and keys (as SIGHUP)',
        tags: ['node'],
        response: { 200: reportSchema, 422: { ...reportSchema, description: 'a file was refused; the old material stays in force' }, ...errorReplies(401, 403) },
      },
    },
    async (_req, reply) => {
      const report = opts.reload();
      if (report.refused.length === 0) return report;
      const message = report.refused.map((r) => `${r.what}: ${r.error}`).join('; ');
      return reply.code(422).send({ error: 'reload_refused', message, ...report });
    },
  );
}
