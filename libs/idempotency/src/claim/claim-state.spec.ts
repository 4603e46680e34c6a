import { CLAIM_TRANSITIONS, type ClaimedRecord, claims, decide, fingerprintsDiffer, type FoundRecord, type RequestFingerprint } from './claim-state';

const NOW = 1_000_000;
const DAY_MS = 86_400_000;

/** The record each row of the table finds, on a synthetic clock; its fingerprint is 'fp-1'. */
const IN_FLIGHT: ClaimedRecord = { state: 'in_flight', fingerprint: 'fp-1', expiresAt: NOW + DAY_MS, leaseExpiresAt: NOW + 30_000 };
const COMPLETED: ClaimedRecord = { state: 'completed', fingerprint: 'fp-1', expiresAt: NOW + DAY_MS, leaseExpiresAt: null };
const FOUND: Record<FoundRecord, ClaimedRecord | undefined> = {
  absent: undefined,
  'in-flight': IN_FLIGHT,
  'lease-expired': { ...IN_FLIGHT, leaseExpiresAt: NOW - 1 },
  completed: COMPLETED,
  expired: { ...COMPLETED, expiresAt: NOW - 1 },
};

const FINGERPRINTS: Record<RequestFingerprint, string | null> = { same: 'fp-1', other: 'fp-2', none: null };

describe('decide()', () => {
  it.each(CLAIM_TRANSITIONS.map((row) => [row.found, row.fingerprint, row]))('%s record, %s fingerprint', (_found, _fingerprint, row) => {
    const decision = decide(FOUND[row.found], { fingerprint: FINGERPRINTS[row.fingerprint] }, NOW);
    expect(decision).toBe(row.decision);
    expect(claims(decision)).toBe(row.outcome === 'claimed');
  });

  it('counts a record whose expiry is now as expired', () => {
    for (const live of [IN_FLIGHT, COMPLETED]) {
      const record = { ...live, expiresAt: NOW };
      expect(decide(record, { fingerprint: 'fp-2' }, NOW)).toBe('start-over');
      expect(decide(record, { fingerprint: 'fp-1' }, NOW - 1)).toBe(live.state === 'completed' ? 'replay' : 'in-flight');
    }
  });

  it('takes over a lease that runs out now, and not a millisecond sooner', () => {
    const record = { ...IN_FLIGHT, leaseExpiresAt: NOW };
    expect(decide(record, { fingerprint: 'fp-1' }, NOW)).toBe('take-over');
    expect(decide(record, { fingerprint: 'fp-1' }, NOW - 1)).toBe('in-flight');
  });

  it('keeps an in-flight record without a lease in flight until it expires', () => {
    const record = { ...IN_FLIGHT, leaseExpiresAt: null };
    expect(decide(record, { fingerprint: 'fp-1' }, NOW)).toBe('in-flight');
    expect(decide(record, { fingerprint: 'fp-1' }, record.expiresAt)).toBe('start-over');
  });

  it('matches any request fingerprint to a record stored without one', () => {
    for (const state of ['in_flight', 'completed'] as const) {
      const record: ClaimedRecord = { state, fingerprint: null, expiresAt: NOW + DAY_MS, leaseExpiresAt: state === 'in_flight' ? NOW + 1 : null };
      for (const fingerprint of ['fp-1', 'fp-2', null]) {
        expect(decide(record, { fingerprint }, NOW)).toBe(state === 'completed' ? 'replay' : 'in-flight');
      }
    }
  });
});

describe('fingerprintsDiffer()', () => {
  it('tells two fingerprints apart; null matches any', () => {
    expect(fingerprintsDiffer('a', 'b')).toBe(true);
    expect(fingerprintsDiffer('a', 'a')).toBe(false);
    expect(fingerprintsDiffer(null, 'a')).toBe(false);
    expect(fingerprintsDiffer('a', null)).toBe(false);
    expect(fingerprintsDiffer(null, null)).toBe(false);
  });
});

describe('CLAIM_TRANSITIONS', () => {
  it('has one row per found record and fingerprint, and an attempt on every claim', () => {
    const pairs = CLAIM_TRANSITIONS.map((row) => `${row.found}/${row.fingerprint}`);
    expect(new Set(pairs).size).toBe(pairs.length);
    for (const row of CLAIM_TRANSITIONS) expect(row.attempt !== undefined).toBe(row.outcome === 'claimed');
  });
});
