// The daemon's logger: pino, JSON lines when stdout is not a terminal,
// pino-pretty when it is. Writes are synchronous so that nothing is lost on
// exit and lines from a crashing process still reach the file or pipe.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export type LogFormat = 'json' | 'pretty';

export interface LogOptions {
  /** 'json' | 'pretty'; default: pretty on a terminal, JSON otherwise (env WALKEEPER_LOG_FORMAT overrides). */
  format?: LogFormat;
  /** pino level; default info (env WALKEEPER_LOG_LEVEL overrides). */
  level?: string;
  /** File descriptor to write to; default 1 (stdout). */
  fd?: number;
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export function createLogger(opts: LogOptions = {}): Logger {
  const fd = opts.fd ?? 1;
  const envFormat = process.env.WALKEEPER_LOG_FORMAT;
  const format: LogFormat =
    opts.format ?? (envFormat === 'json' || envFormat === 'pretty' ? envFormat : fd === 1 && process.stdout.isTTY ? 'pretty' : 'json');
  const envLevel = process.env.WALKEEPER_LOG_LEVEL;
  const level = opts.level ?? (envLevel && LEVELS.has(envLevel) ? envLevel : 'info');
  const base = { pid: process.pid };
  if (format === 'pretty') {
    const stream = pretty({ destination: fd, sync: true, colorize: fd === 1 ? process.stdout.isTTY : false, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true });
    return pino({ level, base }, stream);
  }
  return pino({ level, base }, pino.destination({ fd, sync: true }));
}

/** A logger that drops everything (library use and unit tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
