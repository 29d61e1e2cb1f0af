import t from 'tap';
import { divergence, nextTerm, pickDonor, quorumCommitLsn, quorumSize } from '../../src/proposer/index.js';

t.test('quorumSize is a strict majority', (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7].map(quorumSize), [1, 2, 2, 3, 3, 4, 4]);
  t.end();
});

t.test('nextTerm', (t) => {
  t.equal(nextTerm(0n), 1n);
  t.equal(nextTerm(41n), 42n);
  // with slots: the smallest term above the highest that belongs to this proposer
  t.equal(nextTerm(0n, { index: 0, count: 3 }), 3n);
  t.equal(nextTerm(0n, { index: 1, count: 3 }), 1n);
  t.equal(nextTerm(0n, { index: 2, count: 3 }), 2n);
  t.equal(nextTerm(7n, { index: 1, count: 3 }), 10n);
  t.equal(nextTerm(9n, { index: 1, count: 3 }), 10n);
  t.equal(nextTerm(10n, { index: 1, count: 3 }), 13n);
  for (let h = 0n; h < 20n; h++) {
    const terms = [0, 1, 2].map((index) => nextTerm(h, { index, count: 3 }));
    t.equal(new Set(terms).size, 3, `distinct terms above ${h}`);
    for (const x of terms) t.ok(x > h && x <= h + 3n);
  }
  t.end();
});

t.test('pickDonor: highest epoch, then highest flush_lsn', (t) => {
  t.equal(pickDonor([]), -1);
  t.equal(pickDonor([{ epoch: 1n, flushLsn: 900n }, { epoch: 2n, flushLsn: 100n }, { epoch: 2n, flushLsn: 50n }]), 1, 'a newer epoch wins over more WAL');
  t.equal(pickDonor([{ epoch: 3n, flushLsn: 100n }, { epoch: 3n, flushLsn: 300n }, { epoch: 3n, flushLsn: 300n }]), 1, 'first of equals');
  t.end();
});

t.test('quorumCommitLsn: the quorum-th highest flush', (t) => {
  t.equal(quorumCommitLsn([10n, 30n, 20n], 2), 20n);
  t.equal(quorumCommitLsn([10n, 30n, 20n, 0n, 40n], 3), 20n);
  t.equal(quorumCommitLsn([5n], 2), 0n, 'too few');
  t.equal(quorumCommitLsn([7n, 7n, 1n], 2), 7n);
  t.equal(quorumCommitLsn([0n, 0n, 0n], 2), 0n);
  // Against its definition (sort descending, take the quorum-th), over inputs from a fixed seed.
  let seed = 13;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < 2000; i++) {
    const flushes = Array.from({ length: 1 + (next() % 7) }, () => BigInt(next() % 5) * 100n);
    const quorum = 1 + (next() % 7);
    const sorted = [...flushes].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const want = flushes.length < quorum ? 0n : sorted[quorum - 1];
    if (quorumCommitLsn(flushes, quorum) !== want) {
      t.fail(`seed 13, case ${i}: ${flushes.join(',')} quorum ${quorum}: got ${quorumCommitLsn(flushes, quorum)}, want ${want}`);
      break;
    }
  }
  t.end();
});

t.test('divergence: first differing byte, or the shorter end', (t) => {
  const b = (...x: number[]) => Uint8Array.from(x);
  t.equal(divergence(b(1, 2, 3), b(1, 2, 3)), 3);
  t.equal(divergence(b(1, 2, 3), b(1, 9, 3)), 1);
  t.equal(divergence(b(1, 2, 3), b(1, 2)), 2);
  t.equal(divergence(b(1), b(1, 2, 3)), 1);
  t.equal(divergence(b(), b(1)), 0);
  t.end();
});
