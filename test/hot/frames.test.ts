import t from 'tap';
import {
  DEFAULT_MAX_FRAME_LENGTH,
  FrameError,
  MessageFramer,
  MessageFramerTs,
  frameMessages,
  frameMessagesTs,
  type FrameScan,
  type Framer,
  type FramerOptions,
} from '../../src/hot/frames.js';
import { WasmBuffer } from '../../src/hot/wasm.js';
import { mulberry32 } from '../helpers/support.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Wire fixtures written out by hand (tag, int32 length incl. itself, body).
const FIXTURES = [
  { name: 'Query "select 1"', bytes: hex('51 0000000d 73656c6563742031 00'), tag: 0x51, body: hex('73656c656374203100') },
  { name: 'CopyDone', bytes: hex('63 00000004'), tag: 0x63, body: hex('') },
  {
    name: 'CopyData: standby status update',
    bytes: hex('64 00000026 72 0000000001000000 0000000001000000 0000000000ff0000 0002b1e3c4d5e6f7 00'),
    tag: 0x64,
    body: hex('72 0000000001000000 0000000001000000 0000000000ff0000 0002b1e3c4d5e6f7 00'),
  },
  { name: 'Sync', bytes: hex('53 00000004'), tag: 0x53, body: hex('') },
  {
    name: 'CopyData: XLogData with 3 WAL bytes',
    bytes: hex('64 00000020 77 0000000001000028 0000000001000030 0002b1e3c4d5e6f7 aabbcc'),
    tag: 0x64,
    body: hex('77 0000000001000028 0000000001000030 0002b1e3c4d5e6f7 aabbcc'),
  },
  { name: 'Terminate', bytes: hex('58 00000004'), tag: 0x58, body: hex('') },
];
const STREAM = Buffer.concat(FIXTURES.map((f) => f.bytes));
// 0x00100401 in the error fixtures below is DEFAULT_MAX_FRAME_LENGTH + 1.
if (DEFAULT_MAX_FRAME_LENGTH !== 0x00100400) throw new Error('the fixtures assume DEFAULT_MAX_FRAME_LENGTH = 1 MiB + 1 KiB');

const FRAMERS: Array<[string, (o?: FramerOptions) => Framer]> = [
  ['MessageFramer (wasm)', (o) => new MessageFramer(o)],
  ['MessageFramerTs', (o) => new MessageFramerTs(o)],
];
const ONE_SHOTS: Array<[string, (b: Uint8Array, max?: number) => FrameScan]> = [
  ['frameMessages (wasm)', frameMessages],
  ['frameMessagesTs', frameMessagesTs],
];

/** A message on the wire: tag, big-endian length (body + 4), body. */
function wire(tag: number, body: Uint8Array, lengthField = body.length + 4): Buffer {
  const head = Buffer.alloc(5);
  head[0] = tag;
  head.writeInt32BE(lengthField | 0, 1);
  return Buffer.concat([head, body]);
}

interface Drained {
  messages: string[];
  error?: { code: string; offset: number; length: number; tag: number; message: string };
}

/** Push the chunks one by one, draining next() after each, as a socket handler would. */
function drain(framer: Framer, chunks: Uint8Array[]): Drained {
  const messages: string[] = [];
  try {
    for (const chunk of chunks) {
      framer.push(chunk);
      for (let m = framer.next(); m; m = framer.next()) messages.push(`${m.tag}:${m.body.toString('hex')}`);
    }
  } catch (e) {
    if (!(e instanceof FrameError)) throw e;
    return { messages, error: { code: e.code, offset: e.offset, length: e.length, tag: e.tag, message: e.message } };
  }
  return { messages };
}

function split(buf: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [0, ...cuts, buf.length];
  return points.slice(1).map((end, i) => buf.subarray(points[i], end));
}

const EXPECTED = FIXTURES.map((f) => `${f.tag}:${f.body.toString('hex')}`);

t.test('one-shot framing of the fixtures', async (t) => {
  for (const [name, frame] of ONE_SHOTS) {
    let at = 0;
    for (const f of FIXTURES) {
      t.same(frame(f.bytes), { frames: [{ tag: f.tag, offset: 5, length: f.body.length }], tail: f.bytes.length }, `${name}: ${f.name}`);
      at += f.bytes.length;
    }
    const all = frame(STREAM);
    t.equal(all.tail, STREAM.length, `${name}: whole stream consumed`);
    t.equal(all.error, undefined);
    t.same(
      all.frames.map((fr) => `${fr.tag}:${STREAM.subarray(fr.offset, fr.offset + fr.length).toString('hex')}`),
      EXPECTED,
      `${name}: bodies cut at the right offsets`,
    );
    t.same(all.frames.map((fr) => fr.offset), [5, 19, 24, 63, 68, 101], `${name}: body offsets`);
    t.equal(at, STREAM.length);
  }
});

t.test('incomplete tails: the header or the body not yet complete', async (t) => {
  const first = FIXTURES[0].bytes;
  for (const [name, frame] of ONE_SHOTS) {
    t.same(frame(new Uint8Array(0)), { frames: [], tail: 0 }, `${name}: empty`);
    for (let cut = 1; cut < STREAM.length; cut++) {
      const r = frame(Buffer.concat([first, STREAM.subarray(first.length, first.length + cut)]));
      t.ok(r.frames.length >= 1 && r.tail >= first.length && r.tail <= first.length + cut && !r.error, `${name}: cut ${cut}`);
    }
    const partial = Buffer.concat([first, hex('64 000000')]);
    t.same(frame(partial), { frames: [{ tag: 0x51, offset: 5, length: 9 }], tail: first.length }, `${name}: a 4-byte header stub waits`);
    const bodyShort = Buffer.concat([first, FIXTURES[2].bytes.subarray(0, 20)]);
    t.same(frame(bodyShort), { frames: [{ tag: 0x51, offset: 5, length: 9 }], tail: first.length }, `${name}: a short body waits`);
  }
  for (const [name, make] of FRAMERS) {
    const f = make();
    f.push(STREAM.subarray(0, STREAM.length - 3));
    const got: string[] = [];
    for (let m = f.next(); m; m = f.next()) got.push(`${m.tag}:${m.body.toString('hex')}`);
    t.same(got, EXPECTED.slice(0, -1), `${name}: all but the cut message`);
    t.equal(f.buffered, 2, `${name}: the partial Terminate waits`);
    t.equal(f.next(), null, `${name}: next() stays null without new bytes`);
    f.push(STREAM.subarray(STREAM.length - 3));
    t.same(f.next(), { tag: 0x58, body: Buffer.alloc(0) }, `${name}: completed by the next push`);
    t.equal(f.buffered, 0);
    f.dispose();
  }
});

t.test('every split position gives the same messages (pg-protocol style)', async (t) => {
  for (const [name, make] of FRAMERS) {
    let wrong = 0;
    let firstWrong = '';
    const check = (label: string, chunks: Uint8Array[], opts?: FramerOptions) => {
      const f = make(opts);
      const got = drain(f, chunks);
      const ok = !got.error && JSON.stringify(got.messages) === JSON.stringify(EXPECTED) && f.buffered === 0;
      if (!ok) {
        wrong++;
        firstWrong ||= `${label}: ${JSON.stringify(got)}`;
      }
      f.dispose();
    };
    for (let i = 0; i <= STREAM.length; i++) check(`split at ${i}`, split(STREAM, [i]));
    for (let i = 0; i <= STREAM.length; i++) {
      for (let j = i; j <= STREAM.length; j++) check(`split at ${i},${j}`, split(STREAM, [i, j]), { initialCapacity: 16, batch: 2 });
    }
    check('one byte at a time', split(STREAM, Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1)), { initialCapacity: 16, batch: 1 });
    t.equal(wrong, 0, firstWrong || `${name}: every chunking yields the 6 fixtures`);
  }
});

t.test('bodies are copies: later pushes do not change them', async (t) => {
  for (const [name, make] of FRAMERS) {
    const f = make({ initialCapacity: 16 });
    f.push(FIXTURES[0].bytes);
    const q = f.next();
    // Refill: compaction and growth overwrite the old bytes.
    for (let i = 0; i < 50; i++) f.push(FIXTURES[4].bytes);
    while (f.next());
    t.same(q, { tag: 0x51, body: FIXTURES[0].body }, name);
    f.dispose();
  }
});

t.test('the buffer grows for a big message and shrinks back once drained', async (t) => {
  const capacityOf = (f: Framer) => (f as unknown as { capacity: number }).capacity;
  const big = wire(0x64, new Uint8Array(5000).fill(7));
  const small = Buffer.concat(Array.from({ length: 20 }, (_, i) => wire(0x64, new Uint8Array(10).fill(i))));
  for (const [name, make] of FRAMERS) {
    const f = make({ initialCapacity: 64 });
    const got = drain(f, [big.subarray(0, 100), big.subarray(100)]);
    t.same(got.messages, [`100:${'07'.repeat(5000)}`], `${name}: the big message`);
    t.ok(capacityOf(f) >= big.length, `${name}: grew to ${capacityOf(f)}`);
    // Drained, but a chunk larger than the initial size keeps the room (10 whole messages)...
    const first = drain(f, [small.subarray(0, 150)]);
    t.ok(capacityOf(f) >= big.length, `${name}: kept its size for a large chunk`);
    // ...while a chunk that fits the initial size gives it back.
    const second = drain(f, [small.subarray(150, 210)]);
    t.equal(capacityOf(f), 64, `${name}: shrank back`);
    const rest = drain(f, [small.subarray(210, 250), small.subarray(250)]);
    t.same(
      [...first.messages, ...second.messages, ...rest.messages],
      Array.from({ length: 20 }, (_, i) => `100:${i.toString(16).padStart(2, '0').repeat(10)}`),
      `${name}: small messages after shrinking`,
    );
    t.equal(f.buffered, 0);
    f.dispose();
  }
});

t.test('the wasm framer survives wasm memory growth between calls', async (t) => {
  const f = new MessageFramer({ initialCapacity: 64 });
  f.push(STREAM.subarray(0, 40));
  const before = [f.next(), f.next()];
  // Growing memory detaches every ArrayBuffer view taken before.
  const hog = new WasmBuffer(32 << 20);
  f.push(STREAM.subarray(40));
  const after: string[] = [];
  for (let m = f.next(); m; m = f.next()) after.push(`${m.tag}:${m.body.toString('hex')}`);
  hog.dispose();
  t.same(
    before.map((m) => `${m?.tag}:${m?.body.toString('hex')}`),
    EXPECTED.slice(0, 2),
  );
  t.same(after, EXPECTED.slice(2));
  f.dispose();
  t.throws(() => f.next(), /after dispose/);
});

t.test('bad lengths are errors with the right code and offset', async (t) => {
  const q = FIXTURES[0].bytes;
  const cases: Array<{ name: string; bytes: Buffer; max?: number; code: string; offset: number; length: number; tag: number }> = [
    { name: 'length 3', bytes: Buffer.concat([q, hex('64 00000003')]), code: 'length-too-small', offset: q.length, length: 3, tag: 0x64 },
    { name: 'length 0', bytes: hex('51 00000000'), code: 'length-too-small', offset: 0, length: 0, tag: 0x51 },
    { name: 'negative length', bytes: Buffer.concat([q, q, hex('70 ffffffff')]), code: 'length-too-small', offset: 2 * q.length, length: -1, tag: 0x70 },
    {
      name: 'over the default maximum (header only, body never sent)',
      bytes: Buffer.concat([q, hex('64 00100401')]),
      code: 'length-too-large',
      offset: q.length,
      length: DEFAULT_MAX_FRAME_LENGTH + 1,
      tag: 0x64,
    },
    { name: '0x7fffffff', bytes: hex('64 7fffffff 00'), code: 'length-too-large', offset: 0, length: 0x7fffffff, tag: 0x64 },
    { name: 'max + 1 with a custom maximum', bytes: Buffer.concat([q, wire(0x64, new Uint8Array(97))]), max: 100, code: 'length-too-large', offset: q.length, length: 101, tag: 0x64 },
  ];
  for (const c of cases) {
    for (const [name, frame] of ONE_SHOTS) {
      const r = frame(c.bytes, c.max);
      t.same(r.error, { code: c.code, offset: c.offset, length: c.length }, `${name}: ${c.name}`);
      t.equal(r.tail, c.offset, `${name}: ${c.name}: tail stops at the bad message`);
      t.equal(r.frames.length, Math.floor(c.offset / q.length), `${name}: ${c.name}: messages before it are kept`);
    }
    for (const [name, make] of FRAMERS) {
      const f = make({ maxMessage: c.max, initialCapacity: 16, batch: 1 });
      // One byte at a time: the error must come as soon as the header is in.
      const got = drain(f, split(c.bytes, Array.from({ length: c.bytes.length - 1 }, (_, i) => i + 1)));
      t.equal(got.messages.length, Math.floor(c.offset / q.length), `${name}: ${c.name}: earlier messages first`);
      t.match(got.error, { code: c.code, offset: c.offset, length: c.length, tag: c.tag }, `${name}: ${c.name}`);
      // Stuck, not looping: the same error again, and new bytes are ignored.
      const again = t.throws(() => f.next());
      t.equal((again as FrameError).code, c.code, `${name}: ${c.name}: next() keeps throwing`);
      const waiting = f.buffered;
      f.push(q);
      t.equal(f.buffered, waiting, `${name}: ${c.name}: push after an error is ignored`);
      f.dispose();
    }
  }
  const exact = wire(0x64, new Uint8Array(96));
  for (const [name, frame] of ONE_SHOTS) {
    t.same(frame(exact, 100), { frames: [{ tag: 0x64, offset: 5, length: 96 }], tail: 101 }, `${name}: length == max is accepted`);
  }
});

t.test('FrameError names the tag and the length', async (t) => {
  for (const [name, make] of FRAMERS) {
    const f = make();
    f.push(Buffer.concat([FIXTURES[0].bytes, hex('64 00000002')]));
    t.ok(f.next());
    const err = t.throws(() => f.next()) as FrameError;
    t.type(err, FrameError, name);
    t.equal(err.code, 'length-too-small');
    t.match(err.message, /invalid message length 2 for message type 'd' \(0x64\) at stream offset 14: less than 4/);
    const g = make({ maxMessage: 1000 });
    g.push(hex('00 00010000'));
    const big = t.throws(() => g.next()) as FrameError;
    t.match(big.message, /invalid message length 65536 for message type 0x00 at stream offset 0: more than the maximum of 1000/, name);
    t.equal(big.code, 'length-too-large');
  }
});

t.test('error offsets count the whole stream across compaction', async (t) => {
  const msgs = Array.from({ length: 300 }, (_, i) => wire(0x64, new Uint8Array(i % 37).fill(i & 0xff)));
  const good = Buffer.concat(msgs);
  const stream = Buffer.concat([good, hex('64 00000001')]);
  for (const [name, make] of FRAMERS) {
    const f = make({ initialCapacity: 64, batch: 7 });
    const chunks = split(stream, Array.from({ length: Math.floor(stream.length / 50) }, (_, i) => (i + 1) * 50));
    const got = drain(f, chunks);
    t.equal(got.messages.length, 300, name);
    t.match(got.error, { code: 'length-too-small', offset: good.length, length: 1 }, name);
    f.dispose();
  }
});

/** A random message stream, sometimes corrupted. */
function randomStream(next: () => number): { bytes: Buffer; max: number } {
  const parts: Buffer[] = [];
  const many = next() < 0.02;
  const count = many ? 1100 + Math.floor(next() * 500) : Math.floor(next() * 30);
  for (let i = 0; i < count; i++) {
    const size = many ? Math.floor(next() * 8) : next() < 0.1 ? Math.floor(next() * 3000) : Math.floor(next() * 60);
    const body = Buffer.alloc(size);
    for (let k = 0; k < size; k++) body[k] = (next() * 256) | 0;
    parts.push(wire((next() * 256) | 0, body));
  }
  let bytes = Buffer.concat(parts);
  const roll = next();
  if (roll < 0.3 && bytes.length > 0) {
    // Flip random bytes: lengths turn huge, tiny, negative, or shift the framing.
    for (let n = 1 + Math.floor(next() * 3); n > 0; n--) bytes[Math.floor(next() * bytes.length)] = (next() * 256) | 0;
  } else if (roll < 0.45 && parts.length > 0) {
    // Set one message's length field to a small or negative value.
    let at = 0;
    const victim = Math.floor(next() * parts.length);
    for (let i = 0; i < victim; i++) at += parts[i].length;
    bytes.writeInt32BE([0, 1, 2, 3, -1, -0x80000000][Math.floor(next() * 6)], at + 1);
  } else if (roll < 0.55) {
    bytes = bytes.subarray(0, Math.floor(next() * (bytes.length + 1)));
  }
  const max = next() < 0.3 ? 4 + Math.floor(next() * 200) : DEFAULT_MAX_FRAME_LENGTH;
  return { bytes, max };
}

function randomChunks(bytes: Uint8Array, next: () => number): Uint8Array[] {
  const cuts: number[] = [];
  let at = 0;
  for (;;) {
    at += 1 + Math.floor(next() * (next() < 0.5 ? 8 : 400));
    if (at >= bytes.length) break;
    cuts.push(at);
  }
  return split(bytes, cuts);
}

t.test('wasm and the TS twin agree on 10,000 random framing buffers', async (t) => {
  const seed = 424242;
  const next = mulberry32(seed);
  let mismatches = 0;
  let firstMismatch = '';
  let errors = 0;
  let frames = 0;
  const fail = (n: number, what: string) => {
    mismatches++;
    firstMismatch ||= `case ${n} (seed ${seed}): ${what}`;
  };
  for (let n = 0; n < 10_000; n++) {
    const { bytes, max } = randomStream(next);
    const w = frameMessages(bytes, max);
    const s = frameMessagesTs(bytes, max);
    if (JSON.stringify(w) !== JSON.stringify(s)) fail(n, `one-shot ${JSON.stringify(w).slice(0, 200)} vs ${JSON.stringify(s).slice(0, 200)}`);
    if (w.error) errors++;
    frames += w.frames.length;

    // The framers, each fed a different random chunking, must give the
    // one-shot result: same bodies, same error at the same offset.
    const opts = (): FramerOptions => ({ maxMessage: max, initialCapacity: 16 + Math.floor(next() * 600), batch: next() < 0.5 ? 1 + Math.floor(next() * 5) : 1024 });
    const wasmFramer = new MessageFramer(opts());
    const tsFramer = new MessageFramerTs(opts());
    const dw = drain(wasmFramer, randomChunks(bytes, next));
    const ds = drain(tsFramer, randomChunks(bytes, next));
    const want = w.frames.map((f) => `${f.tag}:${bytes.subarray(f.offset, f.offset + f.length).toString('hex')}`);
    if (JSON.stringify(dw.messages) !== JSON.stringify(want)) fail(n, 'wasm framer messages differ from the one-shot scan');
    if (JSON.stringify(ds.messages) !== JSON.stringify(want)) fail(n, 'TS framer messages differ from the one-shot scan');
    if (JSON.stringify(dw.error) !== JSON.stringify(ds.error)) fail(n, `framer errors differ: ${JSON.stringify(dw.error)} vs ${JSON.stringify(ds.error)}`);
    if (w.error) {
      if (dw.error?.code !== w.error.code || dw.error.offset !== w.error.offset || dw.error.length !== w.error.length) fail(n, 'framer error differs from the one-shot error');
    } else {
      if (dw.error) fail(n, 'framer error where the one-shot scan has none');
      if (wasmFramer.buffered !== bytes.length - w.tail || tsFramer.buffered !== bytes.length - w.tail) fail(n, 'buffered is not the tail length');
    }
    wasmFramer.dispose();
    tsFramer.dispose();
  }
  t.equal(mismatches, 0, firstMismatch || 'all agree');
  // The generator must actually reach both outcomes, or the comparison proves little.
  t.ok(errors > 1000, `errors exercised (${errors})`);
  t.ok(frames > 100_000, `frames exercised (${frames})`);
});
