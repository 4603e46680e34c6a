import { type CallHandler, type ExecutionContext, Injectable, Logger, type NestInterceptor } from '@nestjs/common';
import { RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/internal';
import { HttpAdapterHost } from '@nestjs/core';
import { type ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import { type Observable, of } from 'rxjs';
import { ClaimCoordinator } from './claim/claim-coordinator';
import { runWithClaim } from './claim/claim-context';
import type { BeginOutcome, BeginRequest, HeldClaim } from './claim/held-claim';
import { IdempotencyConfigurationError, UnstorableResponseError } from './errors/configuration.errors';
import {
  IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyStoreUnavailableException,
  IdempotencyTransactionAbortedException,
} from './errors/idempotency.errors';
import { TransactionAbortedError } from './errors/transaction-aborted.error';
import { fingerprintOf } from './fingerprint';
import { afterPromise, internalError, problemResponse, release, routeOf, runClaimed } from './http/claimed-run';
import { type OwnHeaders, snapshotHeaders, withOwnHeaders } from './http/own-headers';
import { holdResponse, writeWhole } from './http/response-capture';
import type { CapturedResponse, ReplacementResponse } from './http/response-message';
import { toReplay, toStoredResponse } from './http/replay';
import { IDEMPOTENT_TRANSACTION, REJECTED_BY_PIPES } from './idempotency.constants';
import { IdempotentMutations } from './graphql/idempotent-mutations';
import type { RoutePlan } from './plan/route-plan';
import { type IdempotencyRequest, routePath } from './idempotency-request';
import { findKey } from './keys/key-source';
import { isPromiseLike, type RequestFunctionBound } from './keys/request-function';
import { buildScope, readTenant } from './keys/scope';
import type { ProviderPresetName } from './keys/provider-presets';
import { orderedEvent } from './ordering/event-version';
import { skipIfStale } from './ordering/stale-event';
import { isTransactional } from './storage/idempotency-store';
import { RoutePlans } from './plan/route-plans';
import { MessageClaims } from './messages/message-claims';

type MutableRequest = IdempotencyRequest & Record<symbol, unknown>;

const intercepted = new WeakSet<ExecutionContext>();

/**
 * Does the work of `@Idempotent()`, which binds it where it is, on a handler or a class (inside the app-wide
 * interceptors, ahead of those bound there). Read the key, claim (scope, key), then either replay the stored
 * answer, refuse, or run the handler and store its response before it is sent. Guards (signature checks, auth)
 * run before it; pipes run after the claim.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  protected readonly logger = new Logger('Idempotency');
  private readonly unscopedWarnings = new Set<string>();

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly coordinator: ClaimCoordinator,
    private readonly plans: RoutePlans,
    private readonly mutations: IdempotentMutations,
    private readonly messages: MessageClaims,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    // Bound on a class and on one of its handlers too, it runs once: Nest gives the whole chain one context.
    if (intercepted.has(context)) return next.handle();
    intercepted.add(context);
    if (context.getType<string>() === 'graphql') return this.mutations.intercept(context, next);
    if (context.getType() === 'rpc') return this.messages.intercept(context, next);
    const options = context.getType() === 'http' ? this.routeOptions(context) : null;
    if (!options) return next.handle();
    return afterPromise(() => this.handle(context, next, options));
  }

  protected async handle(context: ExecutionContext, next: CallHandler, options: RoutePlan): Promise<Observable<unknown>> {
    const request = context.switchToHttp().getRequest<MutableRequest>();
    const response = context.switchToHttp().getResponse<object>();
    // Before the handler: what the app set so far (CORS, request ids) stays on a replacement answer.
    const ownHeaders = snapshotHeaders(response);
    try {
      const route = `${request.method.toUpperCase()} ${routePath(request) ?? `${context.getClass().name}.${context.getHandler().name}`}`;
      const bound: RequestFunctionBound = { route, deadline: Date.now() + options.waitTimeoutMs };
      // Awaited only when a function returned a promise: the common case takes no extra microtask.
      const pendingKey = findKey(options.key, request, bound);
      const found = isPromiseLike(pendingKey) ? await pendingKey : pendingKey;
      if (found === undefined) {
        if (options.required) throw new IdempotencyKeyMissingException();
        const { store } = this.coordinator;
        if (options.transaction && isTransactional(store)) request[IDEMPOTENT_TRANSACTION] = store.manager;
        return next.handle();
      }
      const event = options.order && orderedEvent(options.order, request);
      const pendingTenant = readTenant(options.scope, request, bound);
      const tenant = isPromiseLike(pendingTenant) ? await pendingTenant : pendingTenant;
      const scope = this.scopeOf(request, route, found.provider, tenant);
      const pendingFingerprint = fingerprintOf(options.fingerprint, request, bound);
      const fingerprint = isPromiseLike(pendingFingerprint) ? await pendingFingerprint : pendingFingerprint;
      const outcome = await this.begin({
        scope,
        key: found.key,
        fingerprint,
        deadline: bound.deadline,
        ttlMs: options.ttlMs,
        leaseMs: options.leaseMs,
        maxLeaseMs: options.maxLeaseMs,
        waitTimeoutMs: options.waitTimeoutMs,
        onInFlight: options.onInFlight,
        transaction: options.transaction,
        http: true,
      });
      switch (outcome.status) {
        case 'completed':
          return this.answerWith(context, response, toReplay(outcome.response), ownHeaders);
        case 'fingerprint-mismatch':
          throw new IdempotencyKeyReusedException();
        case 'in-flight':
          throw new IdempotencyKeyInUseException(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)));
        case 'claimed': {
          const { claim } = outcome;
          if (event) {
            const stale = await skipIfStale(claim, event, options.ttlMs, release);
            if (stale) return this.answerWith(context, response, stale, ownHeaders);
          }
          if (claim.mode === 'transaction') request[IDEMPOTENT_TRANSACTION] = claim.manager;
          // runClaimed starts the handler before it returns: the handler, and all it starts, sees the claim.
          return runWithClaim({ scope, key: found.key, attempt: claim.attempt }, () =>
            runClaimed(claim, options, request, rawResponse(response), next, ownHeaders, (...args) => this.finish(...args)),
          );
        }
      }
    } catch (error) {
      if (error instanceof IdempotencyException) {
        for (const [name, value] of Object.entries(error.headers)) this.adapterHost.httpAdapter.setHeader(response, name, value);
      }
      throw error;
    }
  }

  /**
   * Answers with the given bytes, without running the handler. Where Nest will send an answer, whatever
   * it sends (after the other interceptors had their say) is replaced by this one; on routes that take
   * `@Res()` without passthrough, Nest sends nothing and the answer is written here.
   */
  private answerWith(context: ExecutionContext, response: object, answer: ReplacementResponse, ownHeaders: OwnHeaders): Observable<unknown> {
    const raw = rawResponse(response);
    if (respondsItself(context.getClass(), context.getHandler().name)) writeWhole(raw, withOwnHeaders(answer, ownHeaders));
    else holdResponse(raw, Number.POSITIVE_INFINITY, { beforeSend: () => Promise.resolve(answer), onClose: () => undefined }, ownHeaders);
    return of(undefined);
  }

  private async begin(request: BeginRequest): Promise<BeginOutcome> {
    try {
      return await this.coordinator.begin(request);
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) throw error;
      // The coordinator has reported (and logged) it; the client gets the retryable 503.
      throw new IdempotencyStoreUnavailableException();
    }
  }

  /**
   * Decides what becomes of the claim once the response is known; runs before any byte is sent. A
   * replacement, when returned, goes out instead of the captured response.
   */
  protected async finish(
    claim: HeldClaim,
    captured: CapturedResponse,
    options: RoutePlan,
    request: IdempotencyRequest,
    stillRunning: Promise<void> | undefined,
  ): Promise<ReplacementResponse | undefined> {
    try {
      if (captured.truncated || captured.body.length > options.maxResponseBytes) {
        throw new UnstorableResponseError(
          `${routeOf(request)} answered more than maxResponseBytes (${options.maxResponseBytes}) bytes. ` +
            'Raise maxResponseBytes for this route, or return less.',
        );
      }
      for (const [name, value] of captured.headers) {
        validateHeaderName(name);
        validateHeaderValue(name, value);
      }
      if (!this.isFinalAnswer(captured, options, request)) {
        if (stillRunning) {
          // Answered while the handler still runs (an outer timeout interceptor): it may yet take
          // effect, so the key is not handed to a retry before it ends.
          void stillRunning.then(() => claim.abandon());
          return undefined;
        }
        return await release(claim, { status: captured.status });
      }
    } catch (error) {
      // Nothing was stored and nothing was sent: fail this request loudly and give the key back.
      this.logger.error(`${routeOf(request)}: ${(error as Error).message}`, (error as Error).stack);
      const answer = internalError();
      await release(claim, { status: answer.status });
      return answer;
    }
    try {
      await claim.complete(toStoredResponse(captured, options.replayHeaders), options.ttlMs);
      return undefined;
    } catch (error) {
      if (error instanceof TransactionAbortedError) {
        this.logger.error(
          `${routeOf(request)} answered ${captured.status} after one of its statements failed inside the claim's transaction; ` +
            'nothing it wrote was committed, so the client gets 500 and the key is released. Answer 4xx when a statement fails, or rethrow.',
        );
        return problemResponse(new IdempotencyTransactionAbortedException());
      }
      // Reported and logged (store-unavailable) by the claim. In transaction mode nothing was committed, the
      // handler's writes included: the client must retry. In lease mode the handler's effects happened: the
      // client gets the real answer.
      return claim.mode === 'transaction' ? problemResponse(new IdempotencyStoreUnavailableException()) : undefined;
    }
  }

  /**
   * Whether this answer is the request's final one, to store and replay. Not when the pipes rejected the
   * request (the handler never ran: a corrected retry must), nor a 304 (it answers the request's own
   * conditional headers), nor what `storeIf` refuses.
   */
  private isFinalAnswer(captured: CapturedResponse, options: RoutePlan, request: IdempotencyRequest): boolean {
    return (request as MutableRequest)[REJECTED_BY_PIPES] !== true && captured.status !== 304 && options.storeIf(captured.status);
  }

  /** The record's scope (see `buildScope()`); warns once per route that serves signed-in users without one. */
  private scopeOf(request: IdempotencyRequest, route: string, provider: ProviderPresetName | undefined, tenant: string | undefined): string {
    if (tenant === undefined && request.user !== undefined && request.user !== null && !this.unscopedWarnings.has(route)) {
      this.unscopedWarnings.add(route);
      this.logger.warn(
        `${route} serves authenticated requests without a scope: one client could replay another's response ` +
          'by guessing its key. Add scope: (req) => req.user.id to @Idempotent().',
      );
    }
    return buildScope(route, provider, tenant);
  }

  private routeOptions(context: ExecutionContext): RoutePlan | undefined {
    return this.plans.planFor(context.getClass(), context.getHandler());
  }
}

/** Whether Nest leaves the answer to the handler (`@Res()` or `@Next()` without passthrough), as Nest decides it. */
function respondsItself(controller: object, method: string): boolean {
  const parameters = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) ?? {}) as Record<string, unknown>;
  const takesResponse = Object.keys(parameters).some((key) => {
    const type = Number(key.split(':')[0]);
    return type === Number(RouteParamtypes.RESPONSE) || type === Number(RouteParamtypes.NEXT);
  });
  return takesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, method);
}

/** Express's response is Node's; Fastify's reply wraps it. */
function rawResponse(response: object): ServerResponse {
  return (response as { raw?: ServerResponse }).raw ?? (response as ServerResponse);
}
