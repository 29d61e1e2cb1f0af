// GET /v1/tenant/:tenant_id/timeline/:timeline_id/wal: the WAL records
// stored here from an LSN, as the wasm record walker decodes them (the
// fields pg_waldump prints for the same range).
import type { FastifyInstance } from 'fastify';
import { formatLsn, isValidWalSegSize, parseLsn } from '../../lsn.js';
import { rmgrName } from '../../wal/rmgr.js';
import { WalDirError } from '../../wal/errors.js';
import { badRequest } from '../errors.js';
import { lookupTimeline, type NodeAdmin } from '../node.js';
import { errorReplies, idSchema, lsnSchema, timelineParams } from '../schemas.js';
import { listRecords, WalNotLocalError } from '../wal-listing.js';

export const DEFAULT_WAL_LIMIT = 100;
export const MAX_WAL_LIMIT = 10_000;

const lsnOut = (description: string) => ({ type: 'string', description: `${description} (X/Y)` });

const walQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: lsnSchema('first LSN of interest; a position inside a record starts at the next record, as pg_waldump -s does; default: the start of the local WAL'),
    limit: { type: 'integer', minimum: 1, maximum: MAX_WAL_LIMIT, default: DEFAULT_WAL_LIMIT, description: 'most records to return' },
  },
};

const walReply = {
  type: 'object',
  required: ['tenant_id', 'timeline_id', 'from', 'flush_lsn', 'wal_seg_size', 'pg_timeline', 'records', 'next_lsn', 'more', 'end_reason'],
  properties: {
    tenant_id: idSchema('tenant id'),
    timeline_id: idSchema('timeline id'),
    from: lsnOut('the start asked for'),
    flush_lsn: lsnOut('records end at or below this durable position'),
    wal_seg_size: { type: 'integer' },
    pg_timeline: { type: 'integer' },
    records: {
      type: 'array',
      items: {
        type: 'object',
        required: ['lsn', 'total_length', 'rmgr', 'rmgr_id', 'info', 'xid', 'prev', 'crc_valid'],
        properties: {
          lsn: lsnOut('record start'),
          total_length: { type: 'integer', description: 'xl_tot_len: header and data, page headers not counted' },
          rmgr: { type: 'string', description: 'resource manager name as pg_waldump prints it' },
          rmgr_id: { type: 'integer' },
          info: { type: 'integer', description: 'xl_info' },
          xid: { type: 'integer', description: 'xl_xid (0 when none)' },
          prev: lsnOut('xl_prev'),
          crc_valid: { type: 'boolean', description: 'false only for a last record whose CRC failed (the walk stopped there)' },
        },
      },
    },
    next_lsn: lsnOut('where the record after the last one listed starts: the "from" of the next page'),
    more: { type: 'boolean', description: 'limit reached; more records may follow' },
    end_reason: {
      type: 'string',
      description: 'limit; flush_lsn (the durable end); no-wal; or where the walker stopped: zero-length (end of WAL), incomplete (missing segment), bad-crc, bad-pageaddr, ...',
    },
  },
};

interface WalParams {
  tenant_id: string;
  timeline_id: string;
}

export async function walRoutes(app: FastifyInstance, opts: { node: NodeAdmin }): Promise<void> {
  app.get<{ Params: WalParams; Querystring: { from?: string; limit: number } }>(
    '/v1/tenant/:tenant_id/timeline/:timeline_id/wal',
    {
      config: { auth: 'tenant' },
      schema: {
        summary: 'WAL records from an LSN, decoded by the wasm record walker',
        tags: ['timelines'],
        params: timelineParams,
        querystring: walQuery,
        response: { 200: walReply, ...errorReplies(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const tl = lookupTimeline(opts.node, req.params);
      const from = req.query.from !== undefined ? parseLsn(req.query.from) : undefined;
      const limit = req.query.limit;
      const server = tl.storedState?.server;
      const flush = tl.syncedLsn;
      const base = {
        tenant_id: tl.key.tenantId,
        timeline_id: tl.key.timelineId,
        flush_lsn: formatLsn(flush),
        wal_seg_size: server?.walSegSize ?? 0,
        pg_timeline: server ? server.timeline || 1 : 0,
      };
      const empty = (reason: string) => ({ ...base, from: formatLsn(from ?? 0n), records: [], next_lsn: formatLsn(from ?? 0n), more: false, end_reason: reason });
      if (!server || !isValidWalSegSize(server.walSegSize) || !tl.onDisk) return empty('no-wal');
      let r;
      try {
        r = await listRecords(tl.dir, { walSegSize: server.walSegSize, ancestry: tl.ancestry, from, limit, until: flush });
      } catch (err) {
        if (err instanceof WalNotLocalError) {
          throw badRequest(`invalid query parameter from "${req.query.from}": WAL before ${formatLsn(err.firstLsn)} is not on this safekeeper's disk`);
        }
        if (err instanceof WalDirError && (err.code === 'no-segments' || err.code === 'not-found')) return empty('no-wal');
        throw err;
      }
      return {
        ...base,
        from: formatLsn(r.from),
        records: r.records.map((x) => ({
          lsn: formatLsn(x.lsn),
          total_length: x.totLen,
          rmgr: rmgrName(x.rmid),
          rmgr_id: x.rmid,
          info: x.info,
          xid: x.xid,
          prev: formatLsn(x.prev),
          crc_valid: x.crcValid,
        })),
        next_lsn: formatLsn(r.nextLsn),
        more: r.more,
        end_reason: r.endReason,
      };
    },
  );
}
