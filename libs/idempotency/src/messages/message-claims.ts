import { type CallHandler, type ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { defer, EMPTY, finalize, mergeMap, NEVER, type Observable, throwError } from 'rxjs';
import { ClaimCoordinator } from '../claim/claim-coordinator';
import type { BeginOutcome } from '../claim/held-claim';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import {
  type IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyStoreUnavailableException,
} from '../errors/idempotency.errors';
import { IDEMPOTENT_TRANSACTION } from '../idempotency.constants';
import { assertRecordText, textOf } from '../keys/key-text';
import { requireOptionalPeer } from '../optional-peer';
import { type Acknowledger, acknowledgerOf, patternOf } from './broker-message';
import { runClaimedMessage } from './claimed-message';
import { findMessageKey, payloadHash, type ReceivedMessage } from './message-keys';
import type { MessagePlan } from './message-plan';
import { MessagePlans } from './message-plans';
import { replayed } from './message-reply';

/**
 * `@Idempotent()` on `@EventPattern()` and `@MessagePattern()` handlers, called by the interceptor for the
 * `rpc` context: reads the message's key, claims (scope, key) through the same coordinator as HTTP, and
 * replays, defers or runs the handler (see docs/messages.md for what each duplicate gets).
 */
@Injectable()
export class MessageClaims {
  private readonly logger = new Logger('Idempotency');

  constructor(
    private readonly coordinator: ClaimCoordinator,
    private readonly plans: MessagePlans,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const plan = this.plans.planFor(context.getClass(), context.getHandler());
    if (!plan) return next.handle();
    return defer(() => this.handle(context, next, plan)).pipe(mergeMap((result$) => result$));
  }

  private async handle(context: ExecutionContext, next: CallHandler, plan: MessagePlan): Promise<Observable<unknown>> {
    const rpc = context.switchToRpc();
    const transportContext: unknown = rpc.getContext();
    const message: ReceivedMessage = { pattern: patternOf(transportContext) ?? plan.patterns.join('|'), data: rpc.getData(), context: transportContext };
    const acks = plan.ack ? acknowledgerOf(transportContext) : undefined;
    if (plan.ack && !acks) {
      throw new IdempotencyConfigurationError(
        `@Idempotent({ ack: true }) on ${plan.name}: this transport gives no way to acknowledge a message (RabbitMQ and JetStream do). Remove ack.`,
      );
    }
    let target: { scope: string; key: string | undefined; fingerprint: string | null };
    try {
      target = this.targetOf(plan, message);
    } catch (error) {
      return this.undeliverable(plan, acks, error as Error);
    }
    const { key, scope, fingerprint } = target;
    if (key === undefined) {
      if (plan.required) return this.undeliverable(plan, acks, new IdempotencyKeyMissingException());
      return acks ? next.handle().pipe(finalize(() => acks.ack())) : next.handle();
    }
    let outcome: BeginOutcome;
    try {
      outcome = await this.coordinator.begin({ ...plan, scope, key, fingerprint });
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) throw error;
      // Reported and logged by the coordinator: the message waits in its queue for the store.
      acks?.redeliver(plan.redeliveryDelayMs);
      return this.refused(plan, acks, new IdempotencyStoreUnavailableException());
    }
    switch (outcome.status) {
      case 'completed':
        return (plan.kind === 'request' ? replayed(outcome.response) : EMPTY).pipe(finalize(() => acks?.ack()));
      case 'fingerprint-mismatch':
        return this.undeliverable(plan, acks, new IdempotencyKeyReusedException());
      case 'in-flight': {
        acks?.redeliver(plan.redeliveryDelayMs);
        if (!acks && plan.kind === 'event') {
          this.logger.warn(`${plan.name}: a duplicate arrived while the first delivery still runs; it is dropped (no ack to return it to the queue).`);
          return EMPTY;
        }
        return this.refused(plan, acks, new IdempotencyKeyInUseException(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000))));
      }
      case 'claimed': {
        const { claim } = outcome;
        if (claim.mode === 'transaction' && typeof transportContext === 'object' && transportContext !== null) {
          (transportContext as Record<symbol, unknown>)[IDEMPOTENT_TRANSACTION] = claim.manager;
        }
        return runClaimedMessage(claim, { scope, key }, plan, next, acks);
      }
    }
  }

  private targetOf(plan: MessagePlan, message: ReceivedMessage): { scope: string; key: string | undefined; fingerprint: string | null } {
    const key = findMessageKey(plan.key, message);
    const tenant = plan.scope && textOf(plan.scope(message.data, message.context), 'idempotency scope');
    const base = `message:${message.pattern}`;
    const scope = assertRecordText(tenant === undefined ? base : `${base}#${tenant}`, 'idempotency scope');
    let fingerprint: string | null = null;
    if (plan.fingerprint === true) fingerprint = payloadHash(message);
    else if (typeof plan.fingerprint === 'function') fingerprint = textOf(plan.fingerprint(message.data, message.context), 'fingerprint') ?? null;
    return { scope, key, fingerprint };
  }

  /** A message that no delivery can ever make right (no key, a bad key, a key reused): rejected, never retried. */
  private undeliverable(plan: MessagePlan, acks: Acknowledger | undefined, error: Error): Observable<never> {
    this.logger.error(`${plan.name}: a message was refused: ${error.message}`);
    acks?.reject();
    // An event has no one to answer: the log line above says it. A requester gets the error reply.
    return acks && plan.kind === 'event' ? EMPTY : throwError(() => asRpcError(error));
  }

  /**
   * What the transport sees of a refusal. With the library's acks, a request waiting for its redelivery gets no
   * reply now (the redelivery replies); otherwise the requester gets an error reply with the library's code.
   */
  private refused(plan: MessagePlan, acks: Acknowledger | undefined, error: Error): Observable<never> {
    if (acks) return plan.kind === 'request' ? NEVER : EMPTY;
    return throwError(() => asRpcError(error));
  }
}

/** A library answer as the error reply of a request: `{ status: 'error', code, message }`. */
function asRpcError(error: Error): Error {
  const code = (error as Partial<IdempotencyException>).code;
  if (!code) return error;
  const { module } = requireOptionalPeer<{ RpcException: new (error: unknown) => Error }>('@nestjs/microservices');
  return module ? new module.RpcException({ status: 'error', code, message: error.message }) : error;
}
