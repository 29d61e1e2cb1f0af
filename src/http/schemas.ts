// JSON schemas shared by the routes. Validation of params and query
// strings, serialisation of replies and the OpenAPI document all come from
// these, so the three cannot disagree.

/** 32 hex digits (tenant and timeline ids). */
export const ID_PATTERN = '^[0-9a-fA-F]{32}$';
/** An LSN as PostgreSQL writes it: X/Y, hex, up to 8 digits on each side. */
export const LSN_PATTERN = '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$';

export const idSchema = (what: string) => ({ type: 'string', pattern: ID_PATTERN, description: `${what} (32 hex digits)` }) as const;

export const lsnSchema = (description: string) => ({ type: 'string', pattern: LSN_PATTERN, description: `${description} (X/Y)`, examples: ['0/16B3748'] }) as const;

export const nullableLsn = (description: string) => ({ type: ['string', 'null'], description: `${description} (X/Y), null when unknown` }) as const;

export const timelineParams = {
  type: 'object',
  required: ['tenant_id', 'timeline_id'],
  additionalProperties: false,
  properties: {
    tenant_id: idSchema('tenant id'),
    timeline_id: idSchema('timeline id'),
  },
} as const;

export const errorSchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: {
      type: 'string',
      description: 'kind: bad_request, unauthorized, forbidden, not_found, conflict, unavailable, internal',
    },
    message: { type: 'string', description: 'what is wrong, for a human' },
  },
} as const;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'bad parameter (the message says which and why)',
  401: 'missing or invalid token (auth on)',
  403: 'the token does not allow this (scope or tenant)',
  404: 'unknown timeline',
  409: 'conflict with the timeline state',
  500: 'internal error',
  503: 'timeline unavailable (could not be loaded)',
};

/** Response schemas for these error statuses. */
export function errorReplies(...codes: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const c of codes) out[c] = { ...errorSchema, description: ERROR_DESCRIPTIONS[c] ?? 'error' };
  return out;
}

export const hsFeedbackSchema = {
  type: 'object',
  required: ['ts', 'xmin', 'catalog_xmin'],
  properties: {
    ts: { type: ['string', 'null'], description: 'time of the newest feedback (ISO 8601), null when none' },
    xmin: { type: ['integer', 'null'], description: 'oldest xmin a standby needs (64-bit full xid), null when none reported' },
    catalog_xmin: { type: ['integer', 'null'], description: 'oldest catalog xmin a standby needs, null when none reported' },
  },
} as const;
