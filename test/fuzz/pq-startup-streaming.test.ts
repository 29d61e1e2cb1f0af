// The PostgreSQL-protocol decoders of the listener against generated input:
// start-up packets and their `options`, the start-up packet reader's length
// word, and the streaming CopyData codecs ('w', 'k', 'r', 'h', the 24-byte
// legacy feedback). Valid input decodes to what was encoded; arbitrary and
// mutated bytes give the decoder's typed error (PgError, StreamMessageError)
// and no allocation beyond the input's size.
import t from 'tap';
import { deepStrictEqual, equal } from 'node:assert/strict';
import fc from 'fast-check';
import { PgError } from '../../src/pq/errors.js';
import { decodeStartupPacket, MAX_STARTUP_PACKET, parseStartupOptions, splitOptions, StartupReader } from '../../src/pq/startup.js';
import * as streaming from '../../src/pq/streaming.js';
import { StreamMessageError } from '../../src/pq/streaming.js';
import { announceFuzz, checkProperty, decodesOrRefuses, hostileBytes } from '../helpers/fuzz.js';
import { startupPacket } from '../pq/raw-client.js';
import { i64, plain, u32, u64 } from './arbitraries.js';

announceFuzz(t);

/** A parameter name or value as a client could send it: no NUL; names not empty. */
const cstr = fc.string({ unit: fc.oneof(fc.constantFrom('a', 'Z', '_', '-', '=', ' ', '\\', '.', 'é'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 24 }).filter((s) => !s.includes('\0'));
const paramName = cstr.filter((s) => s !== '' && !s.startsWith('_pq_.'));
const params = fc.uniqueArray(fc.tuple(paramName, cstr), { selector: ([k]) => k, maxLength: 8 });

/** The body of a packet: everything after its length word. */
const body = (packet: Buffer): Buffer => packet.subarray(4);

t.test('start-up packet: decode(encode(params)) = params; hostile packets give a PgError', async (t) => {
  checkProperty(
    t,
    'round trip in wire order',
    fc.property(params, (ps) => {
      const p = decodeStartupPacket(body(startupPacket(Object.fromEntries(ps))));
      if (p.kind !== 'startup') throw new Error(`decoded as ${p.kind}`);
      equal(p.protocol, 3 << 16);
      deepStrictEqual([...p.params], ps);
    }),
  );
  const valid = params.map((ps) => new Uint8Array(body(startupPacket(Object.fromEntries(ps)))));
  checkProperty(t, 'arbitrary and mutated bodies', fc.property(hostileBytes(valid), (b) => decodesOrRefuses(() => decodeStartupPacket(b), [PgError], 0)));
});

/** Escape a word as PostgreSQL's options splitting reads it: a backslash before whitespace and backslashes. */
const escapeWord = (w: string): string => w.replace(/[\\ \t\n\r\f\v]/g, (c) => '\\' + c);
const settingName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,15}$/);
const settingValue = fc.string({ unit: fc.constantFrom('a', '0', ' ', '\\', '=', '-', '\t', 'ü'), maxLength: 12 });

t.test('options: -c name=value and --name=value settings come back; anything else is a PgError', async (t) => {
  checkProperty(
    t,
    'splitOptions(join(escaped words)) = words',
    fc.property(fc.array(fc.string({ minLength: 1, maxLength: 10 }), { maxLength: 6 }), fc.constantFrom(' ', '  ', '\t', ' \n '), (words, sep) => {
      deepStrictEqual(splitOptions(words.map(escapeWord).join(sep)), words);
    }),
  );
  checkProperty(
    t,
    'settings round trip in every accepted form',
    fc.property(fc.uniqueArray(fc.tuple(settingName, settingValue), { selector: ([k]) => k, maxLength: 5 }), fc.array(fc.constantFrom('-c ', '-c', '--'), { minLength: 5, maxLength: 5 }), (settings, forms) => {
      const text = settings.map(([k, v], i) => forms[i] + escapeWord(`${k}=${v}`)).join(' ');
      deepStrictEqual([...parseStartupOptions(text)], settings);
    }),
  );
  checkProperty(
    t,
    'arbitrary options strings',
    fc.property(fc.string({ unit: fc.constantFrom('-', 'c', '=', ' ', '\\', 'x', '\t'), maxLength: 40 }), (s) => decodesOrRefuses(() => parseStartupOptions(s), [PgError], 0)),
  );
});

t.test('start-up reader: any length word is refused or waited for, never allocated', async (t) => {
  checkProperty(
    t,
    'length words from -2^31 to 2^31-1, in pieces',
    fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 70 }), (len, rest, cut) => {
      const head = Buffer.alloc(4);
      head.writeInt32BE(len);
      const bytes = Buffer.concat([head, rest]);
      decodesOrRefuses(
        () => {
          const r = new StartupReader();
          r.push(bytes.subarray(0, cut));
          r.next();
          r.push(bytes.subarray(cut));
          const p = r.next();
          if (p && (len < 8 || len > MAX_STARTUP_PACKET)) throw new Error(`length ${len} accepted`);
        },
        [PgError],
        // The reader keeps what it was sent, nothing more.
        bytes.length,
      );
    }),
  );
});

const status = fc.record({ writeLsn: u64, flushLsn: u64, applyLsn: u64, clientTime: i64, replyRequested: fc.boolean() });
const pgHs = fc.record({ clientTime: i64, xmin: u32, xminEpoch: u32, catalogXmin: u32, catalogXminEpoch: u32 });
const legacyHs = fc.record({ ts: i64, xmin: u64, catalogXmin: u64 });

t.test('streaming codecs: standby feedback and server messages round trip; hostile payloads give a StreamMessageError', async (t) => {
  checkProperty(
    t,
    "'r' standby status update",
    fc.property(status, (m) => deepStrictEqual(plain(streaming.decodeClientCopyData(streaming.encodeStatusUpdate(m))), plain({ kind: 'status', msg: m }))),
  );
  checkProperty(t, "'h' hot standby feedback", fc.property(pgHs, (m) => deepStrictEqual(plain(streaming.decodeClientCopyData(streaming.encodePgHsFeedback(m))), plain({ kind: 'hs', msg: m }))));
  checkProperty(
    t,
    '24-byte legacy feedback',
    fc.property(legacyHs, (m) => deepStrictEqual(plain(streaming.decodeClientCopyData(streaming.encodeLegacyHsFeedback(m))), plain({ kind: 'legacy-hs', msg: m }))),
  );
  checkProperty(
    t,
    "'w' XLogData and 'k' keepalive",
    fc.property(u64, u64, i64, fc.uint8Array({ maxLength: 300 }), fc.boolean(), (start, end, time, wal, reply) => {
      const w = streaming.decodeServerCopyData(streaming.encodeXLogData(start, end, time, wal));
      deepStrictEqual(plain(w), plain({ kind: 'xlogdata', msg: { dataStart: start, walEnd: end, sendTime: time, wal } }));
      const k = streaming.decodeServerCopyData(streaming.encodeKeepalive(end, time, reply));
      deepStrictEqual(k, { kind: 'keepalive', msg: { walEnd: end, sendTime: time, replyRequested: reply } });
    }),
  );
  const clientValid = fc.oneof(status.map(streaming.encodeStatusUpdate), pgHs.map(streaming.encodePgHsFeedback), legacyHs.map(streaming.encodeLegacyHsFeedback)).map((b) => new Uint8Array(b));
  checkProperty(t, 'hostile client payloads', fc.property(hostileBytes(clientValid), (b) => decodesOrRefuses(() => streaming.decodeClientCopyData(b), [StreamMessageError], 0)));
  const serverValid = fc.tuple(u64, u64, i64, fc.boolean()).map(([s, e, ts, r]) => new Uint8Array(r ? streaming.encodeKeepalive(e, ts, r) : streaming.encodeXLogData(s, e, ts, new Uint8Array(8))));
  checkProperty(t, 'hostile server payloads', fc.property(hostileBytes(serverValid), (b) => decodesOrRefuses(() => streaming.decodeServerCopyData(b), [StreamMessageError], 0)));
});
