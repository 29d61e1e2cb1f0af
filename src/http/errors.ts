// HTTP errors: every error reply is {error, message}, with a message that
// says what was wrong with which parameter.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.js';

export type ErrorKind = 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'too_large' | 'unavailable' | 'internal';

const KIND_BY_STATUS: Record<number, ErrorKind> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'too_large',
  503: 'unavailable',
};

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get kind(): ErrorKind {
    return KIND_BY_STATUS[this.statusCode] ?? (this.statusCode >= 500 ? 'internal' : 'bad_request');
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, message);
export const notFound = (message: string): HttpError => new HttpError(404, message);

/** What each validated parameter must look like, for the error message. */
const EXPECTED: Record<string, string> = {
  tenant_id: 'expected 32 hex digits',
  timeline_id: 'expected 32 hex digits',
  from: 'expected an LSN as X/Y, e.g. 0/16B3748 (hex, up to 8 digits on each side)',
  force: 'expected true or false',
};

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
  parentSchema?: Record<string, unknown>;
}

function printable(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  const cut = s.length > 80 ? s.slice(0, 80) + '…' : s;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}

/** One readable line for a schema validation failure of params or query string. */
export function validationMessage(err: FastifyError, req: FastifyRequest): string {
  const list = (err.validation ?? []) as unknown as AjvError[];
  const context = (err as FastifyError & { validationContext?: string }).validationContext ?? 'request';
  const where = context === 'querystring' ? 'query parameter' : context === 'params' ? 'path parameter' : `${context} field`;
  const first = list[0];
  if (!first) return err.message;
  if (first.keyword === 'additionalProperties') return `unknown ${where} "${printable(first.params.additionalProperty)}"`;
  if (first.keyword === 'required') return `missing ${where} "${printable(first.params.missingProperty)}"`;
  const field = first.instancePath.replace(/^\//, '').split('/')[0];
  const source = (context === 'querystring' ? req.query : context === 'params' ? req.params : undefined) as Record<string, unknown> | undefined;
  const value = source?.[field];
  let expected = EXPECTED[field];
  if (!expected) {
    const s = first.parentSchema ?? {};
    if (s.type === 'integer' && typeof s.minimum === 'number' && typeof s.maximum === 'number') expected = `expected an integer from ${s.minimum} to ${s.maximum}`;
    else expected = first.message ?? 'invalid value';
  }
  if (field === '') return `invalid ${context}: ${first.message ?? 'invalid value'}`;
  return `invalid ${where} ${field}${value === undefined ? '' : ` "${printable(value)}"`}: ${expected}`;
}

/** The app's error handler: validation → 400, HttpError → its status, the rest → 500 (logged). */
export function errorHandler(log: Logger | undefined) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    if (err.validation) {
      void reply.code(400).send({ error: 'bad_request', message: validationMessage(err, req) });
      return;
    }
    if (err instanceof HttpError) {
      void reply.code(err.statusCode).headers(err.headers).send({ error: err.kind, message: err.message });
      return;
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status < 500) {
      void reply.code(status).send({ error: KIND_BY_STATUS[status] ?? 'bad_request', message: err.message });
      return;
    }
    log?.error({ err, method: req.method, url: req.url }, 'HTTP request failed');
    void reply.code(status).send({ error: status === 503 ? 'unavailable' : 'internal', message: `internal error: ${err.message}` });
  };
}
