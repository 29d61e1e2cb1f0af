// What the live fuzz tests share: mutations of a session's messages,
// parsing the server's answers, hashing a timeline directory.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { MAX_WAL_PER_REQUEST } from '../../src/protocol/layout.js';
import type { DaemonProc } from '../daemon/helpers.js';
import { errorFields, RawClient } from '../pq/raw-client.js';

/**
 * The daemon makes the next WAL segment ahead of time in the background
 * (`prealloc.<name>`): such a file may appear at any moment after WAL was
 * pushed, whatever a request does, so the hashes below leave it out.
 */
const madeInBackground = (name: string): boolean => name.startsWith('prealloc.');

/** The files directly in `dir`, names and contents, as one hash. */
export function dirHash(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) {
    const p = join(dir, f);
    if (statSync(p).isFile() && !madeInBackground(f)) h.update(f).update(readFileSync(p));
  }
  return h.digest('hex');
}

/** Every file under `dir`, one line each: its path relative to `dir` and the SHA-256 of its content. */
export function treeHash(dir: string): string {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (!madeInBackground(f)) out.push(`${relative(dir, p)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
    }
  };
  walk(dir);
  return out.join('\n');
}

export type Mutation = (msgs: Buffer[]) => Buffer[];

/** A mutation that fast-check prints as `what` in a counterexample. */
function named(what: string, fn: Mutation): Mutation {
  return Object.assign(fn, { [fc.toStringMethod]: () => what });
}

const LENGTHS = [0, 1, 3, 4, 5, 7, 8, 9, 56, 87, 88, 89, 127, 128, 129, MAX_WAL_PER_REQUEST + 60, 10_000, 1 << 20, (1 << 20) + 1, 0x7fffffff, -1, -0x80000000];
/** One change to a session's messages (index 0 is the start-up packet, the rest are tagged). */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // Flip bits of one byte of one message.
  fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([m, at, x]) =>
    named(`flip(message ${m}, byte ${at}, ^${x})`, (msgs) => {
      const i = m % msgs.length;
      const b = Buffer.from(msgs[i]);
      if (b.length > 0) b[at % b.length] ^= x;
      return msgs.map((v, j) => (j === i ? b : v));
    }),
  ),
  // Change a message's length field (the start-up packet's at 0, a tagged message's at 1).
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...LENGTHS), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }))).map(([m, len]) =>
    named(`length(message ${m}, ${len})`, (msgs) => {
      const i = m % msgs.length;
      const at = i === 0 ? 0 : 1;
      if (msgs[i].length < at + 4) return msgs;
      const b = Buffer.from(msgs[i]);
      b.writeInt32BE(len, at);
      return msgs.map((v, j) => (j === i ? b : v));
    }),
  ),
  // Cut a message short.
  fc.tuple(fc.nat(), fc.nat()).map(([m, cut]) =>
    named(`cut(message ${m}, at ${cut})`, (msgs) => {
      const i = m % msgs.length;
      return msgs.map((v, j) => (j === i ? v.subarray(0, cut % Math.max(1, v.length)) : v));
    }),
  ),
  // Duplicate, drop, or move a message.
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('dup', 'drop', 'move')).map(([m, to, op]) =>
    named(`${op}(message ${m}, to ${to})`, (msgs) => {
      if (msgs.length === 0) return msgs;
      const i = m % msgs.length;
      const out = [...msgs];
      const [v] = op === 'dup' ? [out[i]] : out.splice(i, 1);
      if (op !== 'drop') out.splice(to % (out.length + 1), 0, v);
      return out;
    }),
  ),
  // Random bytes inserted between messages.
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 })).map(([m, junk]) =>
    named(`insert(before message ${m}, ${Buffer.from(junk).toString('hex')})`, (msgs) => {
      const out = [...msgs];
      out.splice(m % (out.length + 1), 0, Buffer.from(junk));
      return out;
    }),
  ),
);

/** Parse what the server sent (after a possible one-byte SSL answer): whole messages, or a reason they are not. */
function parseAnswers(bytes: Buffer): Answers | string {
  let p = 0;
  let tags = '';
  const errors: Array<Record<string, string>> = [];
  const copyData: Buffer[] = [];
  while (p < bytes.length) {
    if (bytes.length - p < 5) return `a partial message header at ${p}`;
    const len = bytes.readInt32BE(p + 1);
    if (len < 4 || p + 1 + len > bytes.length) return `a partial or bad message at ${p} (length ${len})`;
    const tag = String.fromCharCode(bytes[p]);
    tags += tag;
    if (tag === 'E') errors.push(errorFields(bytes.subarray(p + 5, p + 1 + len)));
    if (tag === 'd') copyData.push(bytes.subarray(p + 5, p + 1 + len));
    p += 1 + len;
  }
  return { tags, errors, copyData };
}



/** The server's side of one session. */
export interface Answers {
  tags: string;
  errors: Array<Record<string, string>>;
  copyData: Buffer[];
}

/**
 * Send the messages, half-close, and wait for the server to close (it must,
 * whatever it made of them). Then check its side: the daemon is still up,
 * the answers are whole messages, every ErrorResponse has a severity, a
 * SQLSTATE and a message, and no XX000 but those `postgresXX000` allows
 * (the ones PostgreSQL sends too).
 */
export async function runSession(d: DaemonProc, msgs: Buffer[], postgresXX000: RegExp | null = null): Promise<Answers> {
  const c = await RawClient.connect(d.pgPort);
  const got: Buffer[] = [];
  c.socket.on('data', (b: Buffer) => got.push(b));
  c.socket.write(Buffer.concat(msgs));
  c.socket.end();
  try {
    await c.expectClosed(20_000);
  } finally {
    c.destroy();
  }
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error(`the daemon exited: ${d.stderr()}`);
  const answers = parseAnswers(Buffer.concat(got));
  if (typeof answers === 'string') throw new Error(`the server's answer is not whole messages: ${answers}`);
  for (const e of answers.errors) {
    if (!/^[0-9A-Z]{5}$/.test(e['C'] ?? '') || !e['S'] || !e['M']) throw new Error(`an ErrorResponse without severity, SQLSTATE or message: ${JSON.stringify(e)}`);
    if (e['C'] === 'XX000' && !postgresXX000?.test(e['M'])) throw new Error(`an internal error: ${e['M']}`);
  }
  return answers;
}

/** How the sessions ended, by first SQLSTATE (with its message when WK_FUZZ_DEBUG is set), for the test's comment. */
export class Outcomes {
  private readonly counts = new Map<string, number>();

  add(a: Answers): void {
    const e = a.errors[0];
    const key = e ? `E ${e['C']}${process.env.WK_FUZZ_DEBUG ? ' ' + e['M'] : ''}` : 'closed without an error';
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  toString(): string {
    return `outcomes: ${[...this.counts].map(([k, n]) => `${k} ×${n}`).join(', ')}`;
  }
}
