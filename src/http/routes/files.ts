// GET /v1/tenant/:tenant_id/timeline/:timeline_id/file/:name: the bytes of
// a complete WAL segment or a `NNNNNNNN.history` file of the timeline, for
// `walkeeper restore-wal --safekeepers`. A segment is complete once its
// name has lost `.partial` (storage renames it only after its last byte is
// durable); a `.partial` one is never served: PostgreSQL would replay a
// segment whose end is still being written.
//
// The name is checked against the two file-name forms before it is joined
// to the timeline directory, so nothing path-like reaches the filesystem.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sha256Hex } from '../../archive/object-format.js';
import { walFileKind } from '../../wal/verify-segment.js';
import { badRequest, notFound } from '../errors.js';
import { lookupTimeline, type NodeAdmin } from '../node.js';
import { errorReplies, idSchema } from '../schemas.js';

interface FileParams {
  tenant_id: string;
  timeline_id: string;
  name: string;
}

const fileParams = {
  type: 'object',
  required: ['tenant_id', 'timeline_id', 'name'],
  additionalProperties: false,
  properties: {
    tenant_id: idSchema('tenant id'),
    timeline_id: idSchema('timeline id'),
    name: { type: 'string', description: 'a segment file name (24 upper-case hex digits) or NNNNNNNN.history', examples: ['000000010000000000000003', '00000002.history'] },
  },
} as const;

function printable(s: string): string {
  const cut = s.length > 80 ? s.slice(0, 80) + '…' : s;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}

export async function fileRoutes(app: FastifyInstance, opts: { node: NodeAdmin }): Promise<void> {
  app.get<{ Params: FileParams }>(
    '/v1/tenant/:tenant_id/timeline/:timeline_id/file/:name',
    {
      config: { auth: 'tenant' },
      schema: {
        summary: 'a complete WAL segment or timeline history file of the timeline (application/octet-stream, SHA-256 in x-walkeeper-sha256)',
        tags: ['timelines'],
        params: fileParams,
        response: { ...errorReplies(400, 401, 403, 503), 404: { ...errorReplies(404)[404] as object, description: 'unknown timeline, or no complete file of that name here' } },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const kind = walFileKind(name);
      if (kind === null) throw badRequest(`invalid path parameter name "${printable(name)}": expected a WAL segment file name (24 upper-case hex digits) or NNNNNNNN.history`);
      const tl = lookupTimeline(opts.node, req.params);
      const walSegSize = tl.storedState?.server.walSegSize ?? 0;
      const absent = () => notFound(`${name} is not on this safekeeper as a complete file of timeline ${tl.key.tenantId}/${tl.key.timelineId}`);
      if (!tl.onDisk) throw absent();
      let bytes: Buffer;
      try {
        bytes = await readFile(join(tl.dir, name));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EISDIR') throw absent();
        throw err;
      }
      // A complete segment has exactly the timeline's segment size.
      if (kind === 'segment' && bytes.length !== walSegSize) throw absent();
      return reply
        .header('content-type', 'application/octet-stream')
        .header('x-walkeeper-sha256', sha256Hex(bytes))
        .send(bytes);
    },
  );
}
