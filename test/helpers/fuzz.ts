// Property-based tests with fast-check: one seed and one case count for the
// whole run, printed at the start and in every failure so a case replays.
//   WK_FUZZ_SEED=N       replay that seed ("random": a new one, printed)
//   WK_FUZZ_RUNS=N       cases per property (default 200, bounded so the
//                        fuzz set stays well under a minute on 2 cores;
//                        e.g. WK_FUZZ_RUNS=100000 for a long run)
// A failure's message carries fast-check's counterexample and its `path`;
// WK_FUZZ_SEED with the same WK_FUZZ_RUNS reproduces it.
import fc from 'fast-check';

/** The seed used when WK_FUZZ_SEED is unset: the default run is deterministic. */
export const DEFAULT_FUZZ_SEED = 20261214;
export const DEFAULT_FUZZ_RUNS = 200;

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  if (name === 'WK_FUZZ_SEED' && v === 'random') return (Date.now() ^ (process.pid << 16)) | 0;
  if (!/^-?\d+$/.test(v)) throw new Error(`${name}: expected an integer, got "${v}"`);
  return Number(v);
}

export const FUZZ_SEED = envInt('WK_FUZZ_SEED', DEFAULT_FUZZ_SEED);
export const FUZZ_RUNS = envInt('WK_FUZZ_RUNS', DEFAULT_FUZZ_RUNS);

interface TapLike {
  comment(...args: unknown[]): void;
  pass(message: string): void;
  fail(message: string): void;
}

function failureMessage<Ts>(name: string, details: fc.RunDetails<Ts>): string {
  const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return `${name}: ${fc.defaultReportMessage(details) ?? 'failed'}\nerror: ${cause}\nreplay: WK_FUZZ_SEED=${FUZZ_SEED} WK_FUZZ_RUNS=${FUZZ_RUNS}`;
}

/** Print the seed once per test file. */
export function announceFuzz(t: TapLike): void {
  t.comment(`fuzz seed ${FUZZ_SEED}, ${FUZZ_RUNS} runs per property (replay: WK_FUZZ_SEED=${FUZZ_SEED} WK_FUZZ_RUNS=${FUZZ_RUNS})`);
}

/**
 * Check a property with the run's seed; `scale` shrinks the case count for
 * expensive properties (at least 1 case). A failure is reported with the
 * seed, the counterexample and how to replay it.
 */
export function checkProperty<Ts extends [unknown, ...unknown[]]>(t: TapLike, name: string, property: fc.IProperty<Ts>, scale = 1): void {
  const numRuns = Math.max(1, Math.round(FUZZ_RUNS * scale));
  const details = fc.check(property, { seed: FUZZ_SEED, numRuns });
  if (!details.failed) {
    t.pass(`${name} (${details.numRuns} cases)`);
    return;
  }
  t.fail(failureMessage(name, details));
}

/** The async form of checkProperty. */
export async function checkAsyncProperty<Ts extends [unknown, ...unknown[]]>(t: TapLike, name: string, property: fc.IAsyncProperty<Ts>, scale = 1): Promise<void> {
  const numRuns = Math.max(1, Math.round(FUZZ_RUNS * scale));
  const details = await fc.check(property, { seed: FUZZ_SEED, numRuns });
  if (!details.failed) {
    t.pass(`${name} (${details.numRuns} cases)`);
    return;
  }
  t.fail(failureMessage(name, details));
}

/**
 * `valid` mutated: bytes flipped, cut short, grown, or a stretch overwritten
 * with random bytes (a length field among them, often as not).
 */
export function mutatedBytes(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const flip = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => (b: Uint8Array) => {
    if (b.length === 0) return b;
    const c = Uint8Array.from(b);
    c[at % c.length] ^= x;
    return c;
  });
  const cut = fc.nat().map((n) => (b: Uint8Array) => b.subarray(0, b.length === 0 ? 0 : n % b.length));
  const grow = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => (b: Uint8Array) => Uint8Array.from([...b, ...extra]));
  const overwrite = fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]) => (b: Uint8Array) => {
    if (b.length === 0) return b;
    const c = Uint8Array.from(b);
    c.set(bytes.subarray(0, Math.max(0, c.length - (at % c.length))), at % c.length);
    return c;
  });
  const mutation = fc.oneof(flip, cut, grow, overwrite);
  return fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([b, ms]) => ms.reduce((acc, m) => m(acc), b));
}

/** Arbitrary bytes, or `valid` mutated: the input for "never throws anything but its typed error". */
export function hostileBytes(valid: fc.Arbitrary<Uint8Array>, maxLength = 512): fc.Arbitrary<Uint8Array> {
  return fc.oneof(fc.uint8Array({ maxLength }), mutatedBytes(valid));
}

/**
 * Runs `fn` and returns the largest size any Buffer allocation asked for
 * meanwhile (Buffer.alloc, allocUnsafe, allocUnsafeSlow, concat's total):
 * a decoder handed a length field of 2^31 must not ask for 2 GiB.
 */
export function largestAllocation(fn: () => void): number {
  const B = Buffer as unknown as Record<string, (...a: unknown[]) => unknown>;
  const names = ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const;
  const saved = names.map((n) => B[n]);
  const savedConcat = B.concat;
  let largest = 0;
  names.forEach((n, i) => {
    B[n] = (size: unknown, ...rest: unknown[]) => {
      if (typeof size === 'number' && size > largest) largest = size;
      return saved[i].call(Buffer, size, ...rest);
    };
  });
  B.concat = (list: unknown, total?: unknown) => {
    const size = typeof total === 'number' ? total : (list as Uint8Array[]).reduce((s, b) => s + b.length, 0);
    if (size > largest) largest = size;
    return savedConcat.call(Buffer, list, total);
  };
  try {
    fn();
  } finally {
    names.forEach((n, i) => (B[n] = saved[i]));
    B.concat = savedConcat;
  }
  return largest;
}

/**
 * Runs `decode` on hostile input: it must return, or throw one of
 * `allowed` (the decoder's typed errors), never anything else, and never ask
 * for a buffer larger than `maxAlloc` bytes. Throws (failing the property)
 * with the reason otherwise.
 */
export function decodesOrRefuses(decode: () => unknown, allowed: ReadonlyArray<new (...a: never[]) => Error>, maxAlloc: number): void {
  let thrown: unknown;
  const largest = largestAllocation(() => {
    try {
      decode();
    } catch (err) {
      thrown = err;
    }
  });
  if (largest > maxAlloc) throw new Error(`allocated ${largest} bytes (bound ${maxAlloc})`);
  if (thrown !== undefined && !allowed.some((E) => thrown instanceof E)) {
    throw new Error(`threw ${(thrown as Error)?.name ?? typeof thrown}, not a typed error: ${(thrown as Error)?.message ?? String(thrown)}`);
  }
}
