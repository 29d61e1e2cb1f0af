// Drives a wasm WAL scanner through consecutive segment files of one
// timeline: file bytes are read straight into wasm memory in chunks and fed
// in LSN order until the scanner stops or the next segment is missing.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { segmentNumber, segmentOffset, type Lsn } from '../lsn.js';
import { WasmBuffer } from '../hot/wasm.js';
import type { WasmWalScanner } from '../hot/xlog.js';
import { WalDirError } from './errors.js';
import type { WalSegmentSet } from './segments.js';

/** Bytes per read: large enough to amortise the syscall, small enough to stay cache- and memory-friendly. */
export const READ_CHUNK = 4 << 20;

export interface ScanProgress {
  segmentsScanned: number;
  bytesScanned: number;
}

export interface ScanDriveOptions {
  /** Where the scanner's first byte is (the page holding its start). */
  fromLsn: Lsn;
  /**
   * Walker mode: called when the scanner's record area is full. Return false
   * to end the scan there (e.g. a limit was reached).
   */
  onRecordsFull?: () => boolean;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Open a segment file and check its size: a full segment, or an empty .partial (no WAL yet). */
function openSegment(set: WalSegmentSet, path: string, partial: boolean): { fd: number; empty: boolean } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new WalDirError(`cannot open "${path}": ${(err as Error).message}`, 'unreadable');
  }
  const size = fstatSync(fd).size;
  if (size === set.walSegSize || (partial && size === 0)) return { fd, empty: size === 0 };
  closeSync(fd);
  throw new WalDirError(`segment file "${path}" has ${size} bytes, expected ${set.walSegSize}${partial ? ' (or 0)' : ''}`, 'bad-size');
}

/**
 * Feed segments from the one holding `fromLsn` onward. Stops when the scanner
 * stops, when a segment is missing or empty, or when onRecordsFull says so.
 */
export async function driveScan(set: WalSegmentSet, scanner: WasmWalScanner, opts: ScanDriveOptions): Promise<ScanProgress> {
  const progress: ScanProgress = { segmentsScanned: 0, bytesScanned: 0 };
  const buffer = new WasmBuffer(Math.min(READ_CHUNK, set.walSegSize));
  try {
    let segno = segmentNumber(opts.fromLsn, set.walSegSize);
    let offset = segmentOffset(opts.fromLsn, set.walSegSize);
    for (;;) {
      const file = set.fileFor(segno);
      if (!file) return progress;
      const { fd, empty } = openSegment(set, file.path, file.partial);
      try {
        if (empty) return progress;
        progress.segmentsScanned++;
        while (offset < set.walSegSize) {
          const want = Math.min(buffer.capacity, set.walSegSize - offset);
          let got: number;
          try {
            got = readSync(fd, buffer.view(), 0, want, offset);
          } catch (err) {
            throw new WalDirError(`cannot read "${file.path}": ${(err as Error).message}`, 'unreadable');
          }
          if (got === 0) throw new WalDirError(`segment file "${file.path}" shrank while being read`, 'bad-size');
          progress.bytesScanned += got;
          let fed = 0;
          while (fed < got) {
            fed += scanner.feedAt(buffer.ptr + fed, got - fed);
            if (scanner.stopped) return progress;
            if (fed < got && !(opts.onRecordsFull?.() ?? false)) return progress;
          }
          offset += got;
          await yieldToEventLoop();
        }
      } finally {
        closeSync(fd);
      }
      segno++;
      offset = 0;
    }
  } finally {
    buffer.dispose();
  }
}
