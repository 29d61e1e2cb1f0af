// Timelines: the list (node scope), one timeline's status and its deletion
// (tenant scope).
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../log.js';
import { formatLsn } from '../../lsn.js';
import { deleteTimeline } from '../delete.js';
import { lookupTimeline, timelineView, type NodeAdmin } from '../node.js';
import { errorReplies, hsFeedbackSchema, idSchema, nullableLsn, timelineParams } from '../schemas.js';

const lsnOut = (description: string) => ({ type: 'string', description: `${description} (X/Y)` });

const listSchema = {
  type: 'object',
  required: ['timelines'],
  properties: {
    timelines: {
      type: 'array',
      items: {
        type: 'object',
        required: ['tenant_id', 'timeline_id', 'state', 'flush_lsn', 'commit_lsn'],
        properties: {
          tenant_id: idSchema('tenant id'),
          timeline_id: idSchema('timeline id'),
          state: { type: 'string', enum: ['active', 'failed', 'broken'], description: 'failed: a storage error, until restart; broken: could not be loaded' },
          flush_lsn: nullableLsn('end of durable WAL'),
          commit_lsn: nullableLsn('highest commit position reported by a proposer'),
        },
      },
    },
  },
};

const readerSchema = {
  type: 'object',
  required: ['application_name', 'address', 'since', 'sent_lsn', 'lag_bytes'],
  properties: {
    application_name: { type: 'string' },
    address: { type: 'string', description: 'host:port' },
    since: { type: 'string', format: 'date-time' },
    slot_name: { type: ['string', 'null'] },
    pg_timeline: { type: 'integer', description: 'PostgreSQL timeline it streams' },
    start_lsn: lsnOut('START_REPLICATION position'),
    sent_lsn: lsnOut('WAL sent up to'),
    write_lsn: nullableLsn('reported written'),
    flush_lsn: nullableLsn('reported flushed'),
    apply_lsn: nullableLsn('reported replayed'),
    lag_bytes: { type: 'integer', description: "this node's flush_lsn minus what the reader reported (flush, else write; sent before its first report)" },
    hot_standby_feedback: { anyOf: [hsFeedbackSchema, { type: 'null' }] },
  },
};

const archiveSchema = {
  type: 'object',
  required: ['location', 'lag_bytes', 'segments_uploaded', 'segments_already_present', 'segments_removed', 'upload_errors', 'last_error', 'conflicts', 'start_lsn'],
  properties: {
    location: { type: 'string', description: 's3://BUCKET/PREFIX or file:///DIR' },
    lag_bytes: { type: 'integer', description: 'commit_lsn minus backup_lsn' },
    segments_uploaded: { type: 'integer', description: 'segments and history files uploaded since the daemon started' },
    segments_already_present: { type: 'integer', description: 'found archived with the same checksum (another safekeeper uploaded them)' },
    segments_removed: { type: 'integer', description: 'local WAL segments removed since the daemon started' },
    upload_errors: { type: 'integer' },
    last_error: { type: ['string', 'null'] },
    conflicts: { type: 'array', items: { type: 'string' }, description: 'files whose archived object has a different checksum (never overwritten)' },
    start_lsn: { type: ['string', 'null'], description: 'where the archive starts when the timeline began mid-segment (that segment is not archived); else null' },
  },
};

const statusSchema = {
  type: 'object',
  required: [
    'tenant_id',
    'timeline_id',
    'state',
    'epoch',
    'vote',
    'server',
    'pg_timeline',
    'flush_lsn',
    'commit_lsn',
    'restart_lsn',
    'local_start_lsn',
    'backup_lsn',
    'disk_usage_bytes',
    'segments_removed',
    'archive',
    'local_wal',
    'proposers',
    'readers',
    'hot_standby_feedback',
  ],
  properties: {
    tenant_id: idSchema('tenant id'),
    timeline_id: idSchema('timeline id'),
    state: { type: 'string', enum: ['active', 'failed'] },
    error: { type: ['string', 'null'], description: 'why the timeline failed' },
    epoch: { type: 'integer', description: 'epoch of the WAL stored here' },
    vote: {
      type: 'object',
      required: ['term', 'proposer_uuid'],
      description: 'the highest proposer node id voted for',
      properties: { term: { type: 'integer' }, proposer_uuid: { type: 'string', description: '32 hex digits' } },
    },
    server: {
      type: 'object',
      required: ['pg_version', 'system_id', 'wal_seg_size', 'pg_timeline'],
      properties: {
        pg_version: { type: 'integer', description: 'server_version_num' },
        system_id: { type: 'string', description: 'PostgreSQL system identifier (decimal; u64)' },
        wal_seg_size: { type: 'integer' },
        pg_timeline: { type: 'integer', description: 'PostgreSQL TimeLineID' },
      },
    },
    pg_timeline: { type: 'integer', description: 'PostgreSQL timeline the stored WAL is on (0: none greeted yet); it changes when a proposer greets from a descendant timeline' },
    flush_lsn: lsnOut('end of the WAL durable here'),
    commit_lsn: lsnOut('highest commit position reported by a proposer'),
    restart_lsn: lsnOut("proposer's restart position"),
    local_start_lsn: lsnOut('start of the oldest WAL segment on local disk (0/0: none)'),
    backup_lsn: lsnOut('end of the contiguous archived WAL prefix (0/0: nothing archived, or no archive)'),
    disk_usage_bytes: { type: 'integer', description: "bytes of this timeline's files on disk" },
    segments_removed: { type: 'integer', description: 'local WAL segments removed since the daemon started' },
    archive: { anyOf: [archiveSchema, { type: 'null' }], description: 'the archive uploader; null without --remote-storage' },
    local_wal: {
      type: 'object',
      required: ['first_segment', 'last_segment', 'segments', 'bytes'],
      properties: {
        first_segment: { type: ['string', 'null'] },
        last_segment: { type: ['string', 'null'] },
        segments: { type: 'integer' },
        bytes: { type: 'integer', description: 'bytes of segment files on disk' },
      },
    },
    proposers: {
      type: 'array',
      description: 'WAL push sessions attached now',
      items: {
        type: 'object',
        required: ['address', 'since', 'appends', 'wal_bytes'],
        properties: {
          address: { type: 'string' },
          since: { type: 'string', format: 'date-time' },
          appends: { type: 'integer', description: 'WAL requests received in this session' },
          wal_bytes: { type: 'integer', description: 'WAL bytes received in this session' },
        },
      },
    },
    readers: { type: 'array', items: readerSchema },
    hot_standby_feedback: { ...hsFeedbackSchema, description: "readers' combined feedback, sent to proposers" },
  },
};

const deleteQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { force: { type: 'boolean', default: false, description: 'delete even while a proposer is connected (it is disconnected)' } },
};

const deleteSchema = {
  type: 'object',
  required: ['tenant_id', 'timeline_id', 'dir_existed', 'removed', 'disconnected'],
  properties: {
    tenant_id: idSchema('tenant id'),
    timeline_id: idSchema('timeline id'),
    dir_existed: { type: 'boolean' },
    removed: {
      type: 'object',
      required: ['files', 'bytes'],
      properties: {
        files: { type: 'array', items: { type: 'object', required: ['name', 'bytes'], properties: { name: { type: 'string' }, bytes: { type: 'integer' } } } },
        bytes: { type: 'integer' },
      },
    },
    disconnected: {
      type: 'object',
      required: ['proposers', 'connections'],
      properties: {
        proposers: { type: 'integer', description: 'WAL push sessions ended' },
        connections: { type: 'integer', description: 'PostgreSQL-protocol connections opened for the timeline that were closed (readers, proposers)' },
      },
    },
  },
};

interface TimelineParams {
  tenant_id: string;
  timeline_id: string;
}

export async function timelineRoutes(app: FastifyInstance, opts: { node: NodeAdmin; log?: Logger }): Promise<void> {
  const node = opts.node;

  app.get(
    '/v1/timelines',
    {
      config: { auth: 'node' },
      schema: { summary: 'Every timeline on this node', tags: ['timelines'], response: { 200: listSchema, ...errorReplies(401, 403) } },
    },
    async () => {
      const out: Array<{ tenant_id: string; timeline_id: string; state: string; flush_lsn: string | null; commit_lsn: string | null }> = [];
      for (const tl of node.registry.list()) {
        out.push({
          tenant_id: tl.key.tenantId,
          timeline_id: tl.key.timelineId,
          state: tl.failure ? 'failed' : 'active',
          flush_lsn: formatLsn(tl.syncedLsn),
          commit_lsn: formatLsn(tl.commitLsn),
        });
      }
      for (const b of node.registry.broken.values()) {
        out.push({ tenant_id: b.key.tenantId, timeline_id: b.key.timelineId, state: 'broken', flush_lsn: null, commit_lsn: null });
      }
      out.sort((a, b) => (a.tenant_id + a.timeline_id < b.tenant_id + b.timeline_id ? -1 : 1));
      return { timelines: out };
    },
  );

  app.get<{ Params: TimelineParams }>(
    '/v1/tenant/:tenant_id/timeline/:timeline_id',
    {
      config: { auth: 'tenant' },
      schema: {
        summary: "A timeline's state: vote, positions, local WAL, proposer and readers",
        tags: ['timelines'],
        params: timelineParams,
        response: { 200: statusSchema, ...errorReplies(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const tl = lookupTimeline(node, req.params);
      return timelineView(tl, node.readers(tl));
    },
  );

  app.delete<{ Params: TimelineParams; Querystring: { force: boolean } }>(
    '/v1/tenant/:tenant_id/timeline/:timeline_id',
    {
      config: { auth: 'tenant' },
      schema: {
        summary: 'Delete a timeline',
        description:
          'Refused with 409 while a proposer is connected, unless force=true. Disconnects its proposers and readers, renames the directory away, then deletes it; returns what was removed.',
        tags: ['timelines'],
        params: timelineParams,
        querystring: deleteQuery,
        response: { 200: deleteSchema, ...errorReplies(400, 401, 403, 404, 409) },
      },
    },
    async (req) => {
      const key = { tenantId: req.params.tenant_id.toLowerCase(), timelineId: req.params.timeline_id.toLowerCase() };
      const result = await deleteTimeline(node, key, req.query.force);
      opts.log?.info({ timeline: `${key.tenantId}/${key.timelineId}`, files: result.removed.files.length, bytes: result.removed.bytes, force: req.query.force }, 'timeline deleted');
      return result;
    },
  );
}
