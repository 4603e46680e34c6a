import { type CallHandler, Logger } from '@nestjs/common';
import { defer, EMPTY, finalize, from, lastValueFrom, mergeMap, type Observable, tap } from 'rxjs';
import { type ClaimRef, runWithClaim } from '../claim/claim-context';
import type { HeldClaim } from '../claim/held-claim';
import { release } from '../http/claimed-run';
import { TransactionAbortedError } from '../errors/transaction-aborted.error';
import type { Acknowledger } from './broker-message';
import type { MessagePlan } from './message-plan';
import { isRpcException, storedError, storedValues } from './message-reply';

const logger = new Logger('Idempotency');

/**
 * Runs a message handler under its held claim, the one place where it runs: the handler's values are stored
 * before the transport sees any of them (a reply goes out only once it can be replayed), then acknowledged.
 * A failure gives the key back and sends the message back to the queue; an `RpcException` is the handler's
 * answer, stored and acknowledged like a value. The handler, and all it starts, runs in the claim's context
 * (`@IdempotencyKey()`, `IdempotencyContext`).
 */
export function runClaimedMessage(
  claim: HeldClaim,
  identity: Omit<ClaimRef, 'attempt'>,
  plan: MessagePlan,
  next: CallHandler,
  acks: Acknowledger | undefined,
): Observable<unknown> {
  return defer(async () => {
    const values: unknown[] = [];
    try {
      // Called and subscribed inside the context (Nest binds the handler to the async context of handle()'s call).
      await runWithClaim({ ...identity, attempt: claim.attempt }, () =>
        lastValueFrom(next.handle().pipe(tap((value) => values.push(value))), { defaultValue: undefined }),
      );
    } catch (error) {
      if (!isRpcException(error)) return failed(claim, plan, acks, error);
      await store(claim, plan, acks, () => storedError(error, plan.maxResponseBytes, plan.name));
      throw error;
    }
    await store(claim, plan, acks, () => storedValues(values, plan.maxResponseBytes, plan.name));
    // The ack follows the reply: a crash between the two is a redelivery that is replayed.
    return (plan.kind === 'request' ? from(values) : EMPTY).pipe(finalize(() => acks?.ack()));
  }).pipe(mergeMap((result$) => result$));
}

/** Stores the answer; a failure to store is answered as the claim's mode says (see the HTTP path's `finish`). */
async function store(claim: HeldClaim, plan: MessagePlan, acks: Acknowledger | undefined, answer: () => ReturnType<typeof storedValues>): Promise<void> {
  let response: ReturnType<typeof storedValues>;
  try {
    response = answer();
  } catch (error) {
    // Too large to store: a redelivery would fail the same way, so the message goes to the dead letters.
    logger.error(`${plan.name}: ${(error as Error).message}`);
    await release(claim);
    acks?.reject();
    throw error;
  }
  try {
    await claim.complete(response, plan.ttlMs);
  } catch (error) {
    // Transaction mode, or a statement of the handler that failed inside the claim's transaction: nothing was
    // committed, the handler's writes included, so the message must run again. Lease mode: the effects happened.
    if (claim.mode === 'transaction' || error instanceof TransactionAbortedError) {
      if (error instanceof TransactionAbortedError)
        logger.error(`${plan.name} returned after one of its statements failed in the claim's transaction; nothing was committed.`);
      acks?.redeliver(plan.redeliveryDelayMs);
      throw error;
    }
  }
}

async function failed(claim: HeldClaim, plan: MessagePlan, acks: Acknowledger | undefined, error: unknown): Promise<never> {
  // As a 5xx over HTTP: the key is free again, and the broker delivers the message again.
  await release(claim, { status: 500 });
  acks?.redeliver(plan.redeliveryDelayMs);
  throw error;
}
