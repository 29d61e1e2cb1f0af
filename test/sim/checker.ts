// Safety invariants of the simulated cluster, checked as it runs (in the
// spirit of Neon's validate_events):
//   committed   a record, once a leader counted it committed, keeps the same
//               content at the same LSN in every later commit (no two
//               different records are ever committed at one LSN, nor
//               overlapping ones)
//   durable     every committed record stays, intact, in what a crash would
//               leave on a majority of acceptors (checked whenever durable WAL
//               shrinks or is rewritten, and at commit time)
//   leader-log  a newly elected leader's log holds every record committed so far
//   one-leader  no two leaders are elected with the same epoch
//   commit-mono a leader's commit position never goes backwards
//   acceptor    an acceptor's vote and epoch never go backwards (also across
//               crashes), epoch ≤ vote term; terms along its log never
//               decrease; its records below min(commit_lsn, flush_lsn) are
//               the committed ones (up to the last committed record boundary)
import { decodeControlFile, formatNodeId, type SafeKeeperInfo } from '../../src/protocol/index.js';
import { formatLsn } from '../../src/lsn.js';
import type { SimAcceptorNode } from './node.js';
import type { RecordInfo } from './records.js';

interface Committed extends RecordInfo {
  by: string;
}

export class Checker {
  readonly violations: string[] = [];
  nodes: SimAcceptorNode[] = [];
  committedCount = 0;
  elections = 0;
  private committed: Committed[] = []; // sorted by lsn, non-overlapping
  private byLsn = new Map<bigint, Committed>();
  private leaders = new Map<bigint, string>();
  private maxVote: bigint[] = [];
  private maxEpoch: bigint[] = [];
  private lastCommit = new Map<string, bigint>();
  private durableDirty = false;
  private reported = new Set<string>();

  constructor(private readonly now: () => number) {}

  fail(key: string, message: string): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.violations.push(`t=${this.now()} ${message}`);
  }

  private get majority(): number {
    return Math.floor(this.nodes.length / 2) + 1;
  }

  /** A proposer finished recovery: its log (records up to VCL) is what it will stream. */
  onLeader(who: string, epoch: bigint, log: RecordInfo[]): void {
    this.elections++;
    const prev = this.leaders.get(epoch);
    if (prev !== undefined) this.fail(`one-leader ${epoch}`, `one-leader: ${who} and ${prev} were both elected with epoch ${epoch}`);
    this.leaders.set(epoch, who);
    const mine = new Map(log.map((r) => [r.lsn, r.crc]));
    for (const c of this.committed) {
      if (mine.get(c.lsn) !== c.crc) {
        this.fail(`leader-log ${who}`, `leader-log: ${who} was elected without committed record ${describe(c)} (its log has ${mine.has(c.lsn) ? 'another record there' : 'nothing there'})`);
        return;
      }
    }
  }

  /** A leader's commit position moved: `records` are the ones it now counts committed. */
  onCommit(who: string, commitLsn: bigint, records: RecordInfo[]): void {
    const last = this.lastCommit.get(who) ?? 0n;
    if (commitLsn < last) this.fail(`commit-mono ${who}`, `commit-mono: ${who} moved commit back from ${formatLsn(last)} to ${formatLsn(commitLsn)}`);
    this.lastCommit.set(who, commitLsn);
    for (const r of records) {
      const seen = this.byLsn.get(r.lsn);
      if (seen) {
        if (seen.crc !== r.crc) this.fail(`committed ${r.lsn}`, `committed: ${who} committed ${describe(r)} where ${seen.by} had committed ${describe(seen)}`);
        continue;
      }
      const overlap = this.overlapping(r);
      if (overlap) {
        this.fail(`committed ${r.lsn}`, `committed: ${who} committed ${describe(r)}, overlapping ${describe(overlap)} committed by ${overlap.by}`);
        continue;
      }
      const c = { ...r, by: who };
      this.insert(c);
      this.committedCount++;
      this.checkDurable(c);
    }
  }

  onDurableChange(): void {
    this.durableDirty = true;
  }

  /** Called by the world after every event. */
  afterEvent(): void {
    if (!this.durableDirty) return;
    this.durableDirty = false;
    for (const c of this.committed) this.checkDurable(c);
    for (const node of this.nodes) this.checkLogTerms(node);
  }

  onPersist(index: number, state: SafeKeeperInfo): void {
    const vote = state.server.nodeId.term;
    if (vote < (this.maxVote[index] ?? 0n)) {
      this.fail(`vote-back ${index}`, `acceptor: A${index} persisted vote term ${vote} after having voted ${this.maxVote[index]}`);
    }
    if (state.epoch < (this.maxEpoch[index] ?? 0n)) {
      this.fail(`epoch-back ${index}`, `acceptor: A${index} persisted epoch ${state.epoch} after epoch ${this.maxEpoch[index]}`);
    }
    if (state.epoch > vote) this.fail(`epoch-vote ${index}`, `acceptor: A${index} has epoch ${state.epoch} above its vote ${formatNodeId(state.server.nodeId)}`);
    if (vote > (this.maxVote[index] ?? 0n)) this.maxVote[index] = vote;
    if (state.epoch > (this.maxEpoch[index] ?? 0n)) this.maxEpoch[index] = state.epoch;
  }

  /** After a crash: what the control file says now must not be behind what was persisted before. */
  onRestartState(index: number, control: Buffer | null): void {
    const state = control ? decodeControlFile(control, `A${index}`) : null;
    const vote = state?.server.nodeId.term ?? 0n;
    const epoch = state?.epoch ?? 0n;
    if (vote < (this.maxVote[index] ?? 0n)) {
      this.fail(`vote-lost ${index}`, `acceptor: A${index} came back from a crash with vote term ${vote}, but had voted ${this.maxVote[index]}`);
    }
    if (epoch < (this.maxEpoch[index] ?? 0n)) {
      this.fail(`epoch-lost ${index}`, `acceptor: A${index} came back from a crash with epoch ${epoch}, but had epoch ${this.maxEpoch[index]}`);
    }
  }

  /**
   * After a WAL sync: the acceptor's records below its commit_lsn are the
   * committed ones. At record granularity: commit_lsn may fall inside a
   * record that was never complete on a quorum, and a later leader may
   * rewrite that record, so the check stops at the last committed record
   * boundary at or below commit_lsn.
   */
  onAcceptorSynced(node: SimAcceptorNode): void {
    const { commitLsn, flushLsn } = node.acceptor.state;
    const boundary = this.committedEndAtOrBelow(commitLsn);
    const upTo = boundary < flushLsn ? boundary : flushLsn;
    for (const r of node.durableRecords().records) {
      if (r.end > upTo) break;
      const c = this.byLsn.get(r.lsn);
      if (!c || c.crc !== r.crc) {
        this.fail(`acceptor-commit ${node.index} ${r.lsn}`, `acceptor: A${node.index} holds ${describe(r)} below its commit_lsn ${formatLsn(commitLsn)}, but ${c ? `${describe(c)} was committed there` : 'nothing was committed there'}`);
        return;
      }
    }
  }

  /** End of the last committed record that ends at or before `lsn` (0 if none). */
  private committedEndAtOrBelow(lsn: bigint): bigint {
    const list = this.committed;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].end <= lsn) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0n : list[lo - 1].end;
  }

  private checkDurable(c: Committed): void {
    let holders = 0;
    for (const node of this.nodes) if (node.durableRecords().byLsn.get(c.lsn) === c.crc) holders++;
    if (holders < this.majority) {
      this.fail(`durable ${c.lsn}`, `durable: committed ${describe(c)} (by ${c.by}) survives a crash on only ${holders} of ${this.nodes.length} acceptors`);
    }
  }

  private checkLogTerms(node: SimAcceptorNode): void {
    let last = 0;
    for (const r of node.durableRecords().records) {
      if (r.term < last) {
        this.fail(`log-terms ${node.index}`, `acceptor: A${node.index}'s WAL goes back from term ${last} to ${describe(r)}`);
        return;
      }
      last = r.term;
    }
  }

  private overlapping(r: RecordInfo): Committed | undefined {
    // The committed record with the greatest lsn below r.end, if it reaches past r.lsn.
    const list = this.committed;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].lsn < r.end) lo = mid + 1;
      else hi = mid;
    }
    const c = list[lo - 1];
    return c && c.end > r.lsn ? c : undefined;
  }

  private insert(c: Committed): void {
    const list = this.committed;
    let i = list.length;
    while (i > 0 && list[i - 1].lsn > c.lsn) i--;
    list.splice(i, 0, c);
    this.byLsn.set(c.lsn, c);
  }
}

function describe(r: RecordInfo): string {
  return `record ${formatLsn(r.lsn)}..${formatLsn(r.end)} (term ${r.term} #${r.seq})`;
}
