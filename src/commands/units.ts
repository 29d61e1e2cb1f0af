// SIZE, DURATION and COUNT values of command-line options, one parser each.
import { UsageError } from './errors.js';

/**
 * Bytes in "16MB", "64 MB", "1GB", "1048576" (B, kB/KB, MB, GB; powers of
 * 1024), at least 1MB. With `zeroMeansNone`, "0" is accepted and returned.
 */
export function parseSize(text: string, option: string, opts: { zeroMeansNone?: boolean } = {}): number {
  if (opts.zeroMeansNone && text.trim() === '0') return 0;
  const m = /^(\d+)\s*(B|kB|KB|MB|GB)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${option}: invalid size "${text}" (e.g. 64MB)`);
  const mult = { B: 1, kB: 1024, KB: 1024, MB: 1 << 20, GB: 1 << 30 }[(m[2] ?? 'B') as 'B'];
  const n = Number(m[1]) * mult;
  if (n < 1 << 20) throw new UsageError(`${option}: ${text} is too small; at least 1MB`);
  return n;
}

/**
 * Seconds in "90", "90s", "15m", "12h", "30d", more than 0. With
 * `zeroMeansOff`, "0" (with or without a unit) is accepted and returned.
 */
export function parseDuration(text: string, option: string, opts: { zeroMeansOff?: boolean } = {}): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text);
  if (!m) throw new UsageError(`${option}: invalid duration "${text}": expected N seconds or Ns, Nm, Nh, Nd`);
  const n = Number(m[1]);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  if (n === 0) {
    if (opts.zeroMeansOff) return 0;
    throw new UsageError(`${option}: the duration must be more than 0`);
  }
  return n * unit;
}

/** A whole number from `min` to `max` ("4", not "4.0" or "+4"). */
export function parseCount(text: string, option: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d{1,9}$/.test(text) || n < min || n > max) throw new UsageError(`${option}: invalid count "${text}": expected ${min} to ${max}`);
  return n;
}
