// A real S3-protocol server for tests and benchmarks: s3rver (a dev
// dependency) in its own process on loopback, so a test can kill it (an
// archive outage) and start it again on the same port and directory.
// s3rver accepts the fixed key pair S3RVER/S3RVER.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './pg-proc.js';

const require = createRequire(import.meta.url);
const S3RVER_BIN = join(dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');

/** Environment for an AWS SDK client (or a daemon) talking to the test server. */
export const S3_TEST_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' } as const;

export class S3TestServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly port: number,
    /** Where s3rver keeps the objects (survives stop()/start()). */
    readonly directory: string,
    readonly bucket: string,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Start a server with one bucket on a free loopback port. */
  static async start(bucket = 'walkeeper-test'): Promise<S3TestServer> {
    const s = new S3TestServer(await freePort(), mkdtempSync(join(tmpdir(), 'wk-s3-')), bucket);
    await s.resume();
    return s;
  }

  /** (Re)start the process on the same port and directory; resolves once it answers. */
  async resume(): Promise<void> {
    if (this.child) return;
    const child = spawn(process.execPath, [S3RVER_BIN, '-d', this.directory, '-a', '127.0.0.1', '-p', String(this.port), '--silent', '--configure-bucket', this.bucket], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`s3rver exited during start-up: ${stderr.trim()}`);
      try {
        const res = await fetch(`${this.endpoint}/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`s3rver did not answer on ${this.endpoint}: ${stderr.trim()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Kill the server (SIGKILL: an outage, not a clean shutdown). Objects stay in its directory. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** Stop the server and remove its directory. */
  async close(): Promise<void> {
    await this.kill();
    rmSync(this.directory, { recursive: true, force: true });
  }
}
