// The admin API's path and query parameters against generated input, through
// inject() on an in-process daemon holding two timelines: random ids, file
// names (with "..", encoded slashes, NULs, long strings), LSNs and limits
// never get a 5xx, every error is a JSON {error, message}, and no file
// changes anywhere: not the timelines' files, not a file next to the data
// directory that a path traversal would reach.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Daemon } from '../../src/daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import { connectPusher, pushRange, synthWal } from '../archive/daemon-helpers.js';
import type { DaemonProc } from '../daemon/helpers.js';
import { TENANT, TIMELINE } from '../daemon/helpers.js';
import { announceFuzz, checkAsyncProperty } from '../helpers/fuzz.js';
import { tempDir } from '../helpers/support.js';
import { treeHash } from './sessions.js';

announceFuzz(t);

const OTHER_TIMELINE = 'ab'.repeat(16);

/** Every file under `dir` with its SHA-256, as one sorted listing. */
const hexId = fc.stringMatching(/^[0-9a-fA-F]{32}$/);
/** A path segment as an attacker would write it (already URL-encoded where it must be). */
const hostileSegment = fc.oneof(
  hexId,
  fc.constantFrom(TENANT, TIMELINE, OTHER_TIMELINE, '..', '.', '%2e%2e', '%2E%2E%2F%2E%2E', '..%2F..%2Foutside', '%00', 'a%00b', '%2F', '', '~', 'x'.repeat(200), '%ff%fe', '%C3%A9'),
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
);
const fileName = fc.oneof(
  fc.constantFrom('000000010000000000000001', '000000010000000000000002.partial', '00000001.history', 'safekeeper.control', '..%2F..%2F..%2Foutside%2Fsecret', '%2e%2e', 'FFFFFFFFFFFFFFFFFFFFFFFF', '00000000.history'),
  fc.stringMatching(/^[0-9A-F]{24}$/),
  hostileSegment,
);
const query = fc.oneof(
  fc.constant(''),
  fc.tuple(fc.option(fc.oneof(fc.constantFrom('0/0', '0/1000000', 'FFFFFFFF/FFFFFFFF', '1/', '/1', 'zz', '0/100000000'), fc.string({ maxLength: 12 }))), fc.option(fc.oneof(fc.integer(), fc.string({ maxLength: 6 }))))
    .map(([from, limit]) => '?' + [from !== null ? `from=${encodeURIComponent(from)}` : '', limit !== null ? `limit=${encodeURIComponent(String(limit))}` : ''].filter(Boolean).join('&')),
  fc.constantFrom('?force=true', '?force=maybe', '?unknown=1', '?from=0/0&from=0/1'),
);
const request = fc.oneof(
  fc.tuple(fc.constant('GET'), hostileSegment, hostileSegment, fc.constantFrom('', '/wal', '/file/'), fileName, query).map(([m, tn, tl, sub, f, q]) => ({
    method: m,
    url: `/v1/tenant/${tn}/timeline/${tl}${sub}${sub === '/file/' ? f : ''}${q}`,
  })),
  // DELETE of anything but the two real timelines (deleting those is allowed, and would change the files).
  fc
    .tuple(hostileSegment, hostileSegment, query)
    .filter(([tn, tl]) => !(tn.toLowerCase() === TENANT && [TIMELINE, OTHER_TIMELINE].includes(tl.toLowerCase())))
    .map(([tn, tl, q]) => ({ method: 'DELETE', url: `/v1/tenant/${tn}/timeline/${tl}${q}` })),
  fc.tuple(fc.constantFrom('GET', 'DELETE', 'PUT', 'POST'), fc.string({ maxLength: 60 })).map(([m, s]) => ({ method: m, url: '/' + s.split('').map(encodeURIComponent).join('') })),
);

t.test('random route parameters: never a 5xx, always JSON errors, no file touched', async (t) => {
  const root = tempDir(t, 'wk-fuzz-http-');
  const dataDir = join(root, 'data');
  mkdirSync(dataDir);
  mkdirSync(join(root, 'outside'));
  writeFileSync(join(root, 'outside', 'secret'), 'not for the API\n');
  const daemon = await Daemon.start({ dataDir, listenPg: { host: '127.0.0.1', port: 0 }, listenHttp: { host: '127.0.0.1', port: 0 }, noSync: true, log: silentLogger() });
  t.teardown(() => daemon.stop());
  const wal = synthWal(2, 5);
  const proc = { pgPort: daemon.pgAddress!.port } as DaemonProc;
  for (const tl of [TIMELINE, OTHER_TIMELINE]) {
    const p = await connectPusher(proc, wal, tl);
    await pushRange(p, wal, { from: wal.startLsn, to: wal.endLsn });
    p.client.close();
  }
  const app = daemon.http!;
  const before = treeHash(root);

  await checkAsyncProperty(
    t,
    'requests with random parameters',
    fc.asyncProperty(request, async (req) => {
      const r = await app.inject({ method: req.method as 'GET', url: req.url });
      if (r.statusCode >= 500) throw new Error(`${req.method} ${req.url}: ${r.statusCode} ${r.body}`);
      if (r.statusCode >= 400) {
        const body = r.json() as { error?: unknown; message?: unknown };
        if (typeof body.error !== 'string' || typeof body.message !== 'string') throw new Error(`${req.method} ${req.url}: ${r.statusCode} without a JSON error: ${r.body}`);
      }
    }),
  );
  t.equal(treeHash(root), before, 'no file changed, appeared or vanished under the data directory or beside it');
});
