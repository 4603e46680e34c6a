import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IdempotencyKeyInUseException, IdempotencyStoreUnavailableException } from '../errors/idempotency.errors';
import type { HeldClaim, ReleaseAnswer } from '../claim/held-claim';
import { SKIPPED_HEADER } from '../http/replay';
import type { ReplacementResponse } from '../http/response-message';
import type { VersionOutcome } from '../storage/idempotency-store';
import type { OrderedEvent } from './event-version';

/**
 * Ordered routes: records the event's version as its resource's newest, in the claim's transaction. An older
 * event is answered as skipped without running the handler, and not stored (its redelivery is as stale);
 * `undefined` means the handler runs.
 */
export async function skipIfStale(
  claim: HeldClaim,
  event: OrderedEvent,
  ttlMs: number,
  release: (claim: HeldClaim, answer: ReleaseAnswer) => Promise<unknown>,
): Promise<ReplacementResponse | undefined> {
  let applied: VersionOutcome;
  try {
    if (claim.mode !== 'transaction' || !claim.advanceVersion) {
      throw new IdempotencyConfigurationError('order needs a store whose transactional claims record versions (advanceVersion).');
    }
    applied = await claim.advanceVersion(event.resource, event.version, ttlMs);
  } catch (error) {
    if (error instanceof IdempotencyConfigurationError) {
      await release(claim, { status: 500 });
      throw error;
    }
    const problem = new IdempotencyStoreUnavailableException();
    await release(claim, { outcome: 'store-unavailable', status: problem.getStatus(), error: error as Error });
    throw problem;
  }
  if (applied === 'applied') return undefined;
  if (applied === 'busy') {
    // Another event of the same resource held it past waitTimeout: the provider retries later.
    const problem = new IdempotencyKeyInUseException(1);
    await release(claim, { outcome: 'rejected-in-flight', status: problem.getStatus() });
    throw problem;
  }
  const skipped = staleEventResponse();
  await release(claim, { outcome: 'stale-skipped', status: skipped.status });
  return skipped;
}

/** What a stale event gets: a 2xx, so that the provider stops retrying it, and a header saying why. */
function staleEventResponse(): ReplacementResponse {
  return {
    status: 200,
    headers: [
      ['content-type', 'application/json; charset=utf-8'],
      [SKIPPED_HEADER, 'stale-event'],
    ],
    body: Buffer.from(JSON.stringify({ skipped: 'stale-event' })),
  };
}
