import { type CallHandler, Logger } from '@nestjs/common';
import { lastValueFrom } from 'rxjs';
import type { HeldClaim } from '../claim/held-claim';
import { UnstorableResponseError } from '../errors/configuration.errors';
import { IdempotencyStoreUnavailableException, IdempotencyTransactionAbortedException } from '../errors/idempotency.errors';
import { TransactionAbortedError } from '../errors/transaction-aborted.error';
import { release } from '../http/claimed-run';
import type { StoredResponse } from '../storage/idempotency-store';
import type { GraphQLMutationCall } from './mutation-call';
import { encodeError, IdempotencyGraphQLError, statusOfError } from './mutation-errors';
import type { MutationPlan } from './mutation-plan';
import { encodeResult } from './stored-result';

const logger = new Logger('Idempotency');
const JSON_TYPE: [string, string] = ['content-type', 'application/json'];

/**
 * Runs a mutation's resolver under its held claim, and ends the claim with what it gave: a result is stored
 * (status 200) and returned; an error that `storeIf` takes as final (an `HttpException` below 500 but 408, 409,
 * 425 and 429; a GraphQL user error) is stored and thrown; any other error gives the key back and is thrown.
 * The one place where a resolver runs under a claim.
 */
export async function runClaimedMutation(claim: HeldClaim, plan: MutationPlan, call: GraphQLMutationCall, next: CallHandler): Promise<unknown> {
  let value: unknown;
  try {
    value = await lastValueFrom(next.handle(), { defaultValue: undefined });
  } catch (error) {
    const status = statusOfError(error);
    if (!plan.storeIf(status)) {
      await release(claim, { status });
      throw error;
    }
    await complete(claim, plan, call, { status, headers: [JSON_TYPE], body: encodeError(error, status) });
    throw error;
  }
  let body: Buffer;
  try {
    body = encodeResult(value, call.field);
    if (body.length > plan.maxResponseBytes) {
      throw new UnstorableResponseError(
        `${call.field} returned more than maxResponseBytes (${plan.maxResponseBytes}) bytes. Raise maxResponseBytes for this mutation, or return less.`,
      );
    }
  } catch (error) {
    // Nothing was stored: fail this field loudly and give the key back.
    logger.error(`${call.field}: ${(error as Error).message}`, (error as Error).stack);
    await release(claim, { status: 500 });
    throw error;
  }
  await complete(claim, plan, call, { status: 200, headers: [JSON_TYPE], body });
  return value;
}

async function complete(claim: HeldClaim, plan: MutationPlan, call: GraphQLMutationCall, response: StoredResponse): Promise<void> {
  try {
    await claim.complete(response, plan.ttlMs);
  } catch (error) {
    if (error instanceof TransactionAbortedError) {
      logger.error(
        `${call.field} returned after one of its statements failed inside the claim's transaction; nothing it wrote was ` +
          'committed, so the field fails with IDEMPOTENCY_TRANSACTION_ABORTED and the key is released. Throw when a statement fails.',
      );
      throw new IdempotencyGraphQLError(new IdempotencyTransactionAbortedException());
    }
    // Reported and logged by the claim. In transaction mode nothing was committed, the resolver's writes included:
    // the client must retry. In lease mode its effects happened: the client gets the real answer.
    if (claim.mode === 'transaction') throw new IdempotencyGraphQLError(new IdempotencyStoreUnavailableException());
  }
}
