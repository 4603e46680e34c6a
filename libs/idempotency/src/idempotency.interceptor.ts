import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  Logger,
  type NestInterceptor,
  StreamableFile,
} from '@nestjs/common';
import { RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/internal';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { type ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { defer, map, mergeMap, type Observable, of, shareReplay } from 'rxjs';
import { type BeginOutcome, ClaimCoordinator, type HeldClaim, type ReleaseAnswer } from './claim-coordinator';
import type { VersionOutcome } from './storage/idempotency-store';
import { IdempotencyConfigurationError, UnstorableResponseError } from './errors/configuration.errors';
import {
  IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyStoreUnavailableException,
} from './errors/idempotency.errors';
import { fingerprintOf } from './fingerprint';
import { type OwnHeaders, snapshotHeaders, withOwnHeaders } from './http/own-headers';
import { holdResponse, writeWhole } from './http/response-capture';
import type { CapturedResponse, ReplacementResponse } from './http/response-message';
import { SKIPPED_HEADER, toReplay, toStoredResponse } from './http/replay';
import { IDEMPOTENT_OPTIONS, IDEMPOTENT_TRANSACTION, REJECTED_BY_PIPES } from './idempotency.constants';
import { IDEMPOTENCY_MODULE_OPTIONS } from './idempotency.module-definition';
import { type IdempotencyModuleOptions, type IdempotentOptions, resolveRouteOptions, type ResolvedRouteOptions } from './idempotency.options';
import { type IdempotencyRequest, routePath } from './idempotency-request';
import { findKey } from './keys/key-source';
import { isPromiseLike, type RequestFunctionBound } from './keys/request-function';
import { buildScope, readTenant } from './keys/scope';
import type { ProviderPresetName } from './keys/provider-presets';
import { type OrderedEvent, orderedEvent } from './ordering/event-version';
import type { StoredResponse, TransactionalIdempotencyStore } from './storage/idempotency-store';

type MutableRequest = IdempotencyRequest & Record<symbol, unknown>;

/** How long after a client left, and its handler ended, the framework may still write the response. */
const CLOSE_GRACE_MS = 1000;

/**
 * Does the work of `@Idempotent()`, registered for the whole app by `IdempotencyModule`. Routes
 * without the decorator pass straight through. For the others: read the key, claim (scope, key),
 * then either replay the stored answer, refuse, or run the handler and store its response before it
 * is sent. Guards (signature checks, auth) run before it; pipes run after the claim.
 *
 * @example
 * // Registered by IdempotencyModule; extend it to change how a stored answer is decided:
 * class AuditedIdempotencyInterceptor extends IdempotencyInterceptor {
 *   protected override finish(claim, captured, options, request) {
 *     audit(captured.status);
 *     return super.finish(claim, captured, options, request);
 *   }
 * }
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  protected readonly logger = new Logger('Idempotency');
  private readonly routes = new WeakMap<object, Map<object, ResolvedRouteOptions | null>>();
  private readonly unscopedWarnings = new Set<string>();

  constructor(
    private readonly reflector: Reflector,
    private readonly adapterHost: HttpAdapterHost,
    private readonly coordinator: ClaimCoordinator,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly defaults: IdempotencyModuleOptions,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const options = context.getType() === 'http' ? this.routeOptions(context) : null;
    if (!options) return next.handle();
    return defer(() => this.handle(context, next, options)).pipe(mergeMap((result$) => result$));
  }

  protected async handle(context: ExecutionContext, next: CallHandler, options: ResolvedRouteOptions): Promise<Observable<unknown>> {
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
        if (options.transaction) request[IDEMPOTENT_TRANSACTION] = (this.coordinator.store as unknown as TransactionalIdempotencyStore).manager;
        return next.handle();
      }
      const event = options.order && orderedEvent(options.order, request);
      const pendingTenant = readTenant(options.scope, request, bound);
      const tenant = isPromiseLike(pendingTenant) ? await pendingTenant : pendingTenant;
      const scope = this.scopeOf(request, route, found.provider, tenant);
      const pendingFingerprint = fingerprintOf(options.fingerprint, request, bound);
      const fingerprint = isPromiseLike(pendingFingerprint) ? await pendingFingerprint : pendingFingerprint;
      const outcome = await this.begin(options, { scope, key: found.key, fingerprint });
      switch (outcome.status) {
        case 'completed':
          return this.answerWith(context, response, toReplay(outcome.response), ownHeaders);
        case 'fingerprint-mismatch':
          throw new IdempotencyKeyReusedException();
        case 'in-flight':
          throw new IdempotencyKeyInUseException(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)));
        case 'claimed':
          if (event) {
            const stale = await this.skipIfStale(outcome.claim, event, options);
            if (stale) return this.answerWith(context, response, stale, ownHeaders);
          }
          return this.runClaimed(outcome.claim, options, request, response, next, ownHeaders);
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
    else holdResponse(raw, Number.POSITIVE_INFINITY, { beforeSend: async () => answer, onClose: () => undefined }, ownHeaders);
    return of(undefined);
  }

  /**
   * Ordered routes: records the event's version as its resource's newest, in the claim's transaction.
   * An older event is answered as skipped without running the handler, and not stored (its redelivery
   * is as stale); `undefined` means the handler runs.
   */
  private async skipIfStale(claim: HeldClaim, event: OrderedEvent, options: ResolvedRouteOptions): Promise<ReplacementResponse | undefined> {
    let applied: VersionOutcome;
    try {
      if (!claim.advanceVersion) throw new IdempotencyConfigurationError('order needs a store whose transactional claims record versions (advanceVersion).');
      applied = await claim.advanceVersion(event.resource, event.version, options.ttlMs);
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) {
        await this.release(claim, { status: 500 });
        throw error;
      }
      const problem = new IdempotencyStoreUnavailableException();
      await this.release(claim, { outcome: 'store-unavailable', status: problem.getStatus(), error: error as Error });
      throw problem;
    }
    if (applied === 'applied') return undefined;
    if (applied === 'busy') {
      // Another event of the same resource held it past waitTimeout: the provider retries later.
      const problem = new IdempotencyKeyInUseException(1);
      await this.release(claim, { outcome: 'rejected-in-flight', status: problem.getStatus() });
      throw problem;
    }
    // Nothing to keep: a redelivery of this event is as stale as this one.
    const skipped = staleEventResponse();
    await this.release(claim, { outcome: 'stale-skipped', status: skipped.status });
    return skipped;
  }

  private async begin(
    options: ResolvedRouteOptions,
    target: { scope: string; key: string; fingerprint: string | null },
  ): Promise<BeginOutcome> {
    try {
      return await this.coordinator.begin({
        ...target,
        ttlMs: options.ttlMs,
        leaseMs: options.leaseMs,
        maxLeaseMs: options.maxLeaseMs,
        waitTimeoutMs: options.waitTimeoutMs,
        onInFlight: options.onInFlight,
        transaction: options.transaction,
        http: true,
      });
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) throw error;
      // The coordinator has reported (and logged) it; the client gets the retryable 503.
      throw new IdempotencyStoreUnavailableException();
    }
  }

  private runClaimed(
    claim: HeldClaim,
    options: ResolvedRouteOptions,
    request: MutableRequest,
    response: object,
    next: CallHandler,
    ownHeaders: OwnHeaders,
  ): Observable<unknown> {
    if (claim.manager) request[IDEMPOTENT_TRANSACTION] = claim.manager;
    let handlerSettled!: () => void;
    const settled = new Promise<void>((resolve) => (handlerSettled = resolve));
    let handlerDone = false;
    void settled.then(() => (handlerDone = true));
    let finished = false;
    const finishOnce = async (finish: () => Promise<ReplacementResponse | undefined>) => {
      if (finished) return undefined;
      finished = true;
      return finish();
    };

    holdResponse(rawResponse(response), options.maxResponseBytes, {
      beforeSend: (captured) => finishOnce(() => this.finish(claim, captured, options, request, handlerDone ? undefined : settled)),
      onClose: () => {
        // The client left before anything was sent. Give the handler, then the framework, time to
        // produce the response (it is stored as usual if it comes); past that, nothing will be sent.
        void settled
          .then(() => sleep(CLOSE_GRACE_MS))
          .then(() =>
            finishOnce(() => {
              this.logger.warn(`${routeOf(request)}: the client left and no response was written; the answer is not stored.`);
              return this.abandon(claim);
            }),
          );
      },
    }, ownHeaders);

    const result$ = next.handle().pipe(
      map((value: unknown) => {
        if (isStream(value)) {
          throw new UnstorableResponseError(
            `${routeOf(request)} returned a stream, which an idempotent route cannot store and replay. ` +
              'Return the whole body (object, string or Buffer), or remove @Idempotent() from this route.',
          );
        }
        return value;
      }),
      // One run of the handler, watched here to its end even when the framework stops listening first
      // (the client left, an outer timeout interceptor answered): the key must not be freed before it.
      shareReplay({ bufferSize: 1, refCount: false }),
    );
    result$.subscribe({ complete: handlerSettled, error: handlerSettled });
    return result$;
  }

  /** Decides what becomes of the claim once the response is known; runs before any byte is sent. */
  protected async finish(
    claim: HeldClaim,
    captured: CapturedResponse,
    options: ResolvedRouteOptions,
    request: MutableRequest,
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
          void stillRunning.then(() => this.abandon(claim));
          return undefined;
        }
        return await this.release(claim, { status: captured.status });
      }
    } catch (error) {
      // Nothing was stored and nothing was sent: fail this request loudly and give the key back.
      this.logger.error(`${routeOf(request)}: ${(error as Error).message}`, (error as Error).stack);
      const answer = internalError();
      await this.release(claim, { status: answer.status });
      return answer;
    }
    const stored = toStoredResponse(captured, options.replayHeaders);
    try {
      await claim.complete(stored, options.ttlMs);
      return undefined;
    } catch {
      // Reported and logged (store-unavailable) by the claim.
      // In transaction mode nothing was committed, the handler's writes included: the client must retry.
      // In lease mode the handler's effects happened: the client gets the real answer.
      if (!claim.manager) return undefined;
      const problem = new IdempotencyStoreUnavailableException();
      return { status: problem.getStatus(), headers: Object.entries(problem.headers), body: Buffer.from(JSON.stringify(problem.getResponse())) };
    }
  }

  /**
   * Whether this answer is the request's final one, to store and replay. Not when the pipes rejected the
   * request (the handler never ran: a corrected retry must), nor a 304 (it answers the request's own
   * conditional headers), nor what `storeIf` refuses.
   */
  private isFinalAnswer(captured: CapturedResponse, options: ResolvedRouteOptions, request: MutableRequest): boolean {
    return request[REJECTED_BY_PIPES] !== true && captured.status !== 304 && options.storeIf(captured.status);
  }

  /**
   * The handler has ended but its answer is not stored (the client left and nothing was written, or
   * something else answered first). Transaction mode rolls back. In lease mode the handler may have
   * taken effect, so the key is not handed to an immediate retry: the claim stops renewing and is
   * taken over once its lease runs out.
   */
  private async abandon(claim: HeldClaim): Promise<undefined> {
    if (claim.manager) return this.release(claim);
    claim.abandon();
    return undefined;
  }

  private async release(claim: HeldClaim, answer?: ReleaseAnswer): Promise<undefined> {
    try {
      await claim.release(answer);
    } catch (error) {
      // The lease (or the closed connection, in transaction mode) frees the key anyway.
      this.logger.error(`Releasing an idempotency claim failed: ${(error as Error).message}`, (error as Error).stack);
    }
    return undefined;
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

  private routeOptions(context: ExecutionContext): ResolvedRouteOptions | null {
    const handler = context.getHandler();
    const controller = context.getClass();
    let byClass = this.routes.get(handler);
    if (!byClass) this.routes.set(handler, (byClass = new Map()));
    if (!byClass.has(controller)) {
      const route = this.reflector.getAllAndOverride<IdempotentOptions | undefined>(IDEMPOTENT_OPTIONS, [handler, controller]);
      byClass.set(controller, route ? resolveRouteOptions(this.defaults, route, `@Idempotent() on ${controller.name}.${handler.name}`) : null);
    }
    return byClass.get(controller) ?? null;
  }
}

/** Whether Nest leaves the answer to the handler (`@Res()` or `@Next()` without passthrough), as Nest decides it. */
function respondsItself(controller: object, method: string): boolean {
  const parameters = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) ?? {}) as Record<string, unknown>;
  const takesResponse = Object.keys(parameters).some((key) => {
    const type = Number(key.split(':')[0]);
    return type === RouteParamtypes.RESPONSE || type === RouteParamtypes.NEXT;
  });
  return takesResponse && !Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, method);
}

/** `POST /orders/:id`: the route in a log line, never its URL (which may hold a key or a tenant). */
function routeOf(request: IdempotencyRequest): string {
  return `${request.method.toUpperCase()} ${routePath(request) ?? '(unmatched route)'}`;
}

/** Express's response is Node's; Fastify's reply wraps it. */
function rawResponse(response: object): ServerResponse {
  return (response as { raw?: ServerResponse }).raw ?? (response as ServerResponse);
}

function isStream(value: unknown): boolean {
  if (value instanceof StreamableFile || value instanceof Readable || value instanceof ReadableStream) return true;
  if (value instanceof Response) return value.body !== null;
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
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

function internalError(): ReplacementResponse {
  return {
    status: 500,
    headers: [['content-type', 'application/json; charset=utf-8']],
    body: Buffer.from(JSON.stringify({ statusCode: 500, message: 'Internal server error' })),
  };
}
