// Benchmark plumbing: repeated timing with medians, and a table printer.
// Rows always pair a measurement with a baseline taken in the same run,
// because absolute numbers on a shared machine drift between minutes.

export interface Timing {
  /** Median wall time of one call, in milliseconds. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

/**
 * Time `fn` `runs` times after one warm-up call; each run repeats `fn`
 * until at least `minMs` have passed and reports the time per call.
 */
export async function measure(fn: () => unknown | Promise<unknown>, opts: { runs?: number; minMs?: number } = {}): Promise<Timing> {
  const runs = opts.runs ?? 7;
  const minMs = opts.minMs ?? 100;
  await fn();
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    let calls = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    do {
      await fn();
      calls++;
      elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    } while (elapsed < minMs);
    samples.push(elapsed / calls);
  }
  samples.sort((a, b) => a - b);
  return { medianMs: samples[Math.floor(samples.length / 2)], minMs: samples[0], maxMs: samples[samples.length - 1], runs };
}

/** The median of a list of numbers (the mean of the middle two when the count is even). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Each of `runs` once per round, in turn, for `rounds` rounds, so that a
 * burst of load on the shared machine hits all alike; each one's median result.
 */
export async function alternatingMedians(runs: Array<() => Promise<number>>, rounds: number): Promise<number[]> {
  const samples = runs.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < runs.length; i++) samples[i].push(await runs[i]());
  }
  return samples.map(median);
}

/** Time the functions in alternating rounds (alternatingMedians) and return each one's median ms per call. */
export function interleaved(fns: Array<() => unknown>, rounds: number, minMs: number): Promise<number[]> {
  return alternatingMedians(
    fns.map((fn) => async () => (await measure(fn, { runs: 1, minMs })).medianMs),
    rounds,
  );
}

export function mbPerSec(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1e3);
}

export interface BenchRow {
  /** What was measured, e.g. "CRC-32C, 16 MiB buffer". */
  name: string;
  /** The subject (wasm, walkeeper) and its figure. */
  subject: string;
  subjectValue: string;
  /** The baseline measured in the same run (TS twin, pg_waldump, walsender). */
  baseline: string;
  baselineValue: string;
  /** subject ÷ baseline, higher is better for walkeeper. */
  ratio: number;
}

export function printTable(rows: BenchRow[]): void {
  const header = ['benchmark', 'subject', 'value', 'baseline', 'value', 'ratio'];
  const body = rows.map((r) => [r.name, r.subject, r.subjectValue, r.baseline, r.baselineValue, `${r.ratio.toFixed(2)}x`]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  process.stdout.write(line(header) + '\n');
  process.stdout.write('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|\n');
  for (const b of body) process.stdout.write(line(b) + '\n');
}
