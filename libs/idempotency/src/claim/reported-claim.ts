import { TransactionAbortedError } from '../errors/transaction-aborted.error';
import type { OutcomeReport } from '../observability/outcome-report';
import type { HeldClaim, UnreportedClaim } from './held-claim';

/**
 * Reports how a held claim ends, in one place: `claimed` once its answer is stored, `completion-fenced` when
 * its lease was taken over meanwhile, `store-unavailable` when storing failed, `released` when the answer was
 * given back, as the release says.
 */
export function reported(claim: UnreportedClaim, report: OutcomeReport): HeldClaim {
  const complete: HeldClaim['complete'] = async (response, ttlMs) => {
    let held: boolean;
    try {
      held = await report.timed(() => claim.complete(response, ttlMs));
    } catch (error) {
      if (error instanceof TransactionAbortedError) {
        report.answer('released', { status: 500, error });
      } else {
        // Transaction mode: the client gets 503 (a commit that landed after its wait is replayed to the retry).
        // Lease mode: the handler's effects happened, so it gets the real answer.
        report.answer('store-unavailable', { status: claim.mode === 'transaction' ? 503 : response.status, error: error as Error });
      }
      throw error;
    }
    report.answer(held ? 'claimed' : 'completion-fenced', { status: response.status });
    return held;
  };
  const release: HeldClaim['release'] = async (answer = {}) => {
    let held = true;
    try {
      held = await report.timed(() => claim.release());
    } finally {
      // A release that failed is reported as asked: the client gets that answer, and the lease frees the key.
      report.answer(held ? (answer.outcome ?? 'released') : 'completion-fenced', answer);
    }
  };
  const abandon = () => {
    claim.abandon();
    report.answer('released');
  };
  if (claim.mode === 'lease') return { ...claim, complete, release, abandon };
  const { advanceVersion } = claim;
  return {
    ...claim,
    complete,
    release,
    abandon,
    advanceVersion: advanceVersion && ((resource, version, ttlMs) => report.timed(() => advanceVersion(resource, version, ttlMs))),
  };
}
