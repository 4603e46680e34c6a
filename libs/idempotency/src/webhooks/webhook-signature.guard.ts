import { type CanActivate, type ExecutionContext, Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { toMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IdempotencyException, WebhookSignatureInvalidException } from '../errors/idempotency.errors';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../idempotency.options';
import type { IdempotencyRequest } from '../idempotency-request';
import { VERIFY_WEBHOOK } from '../idempotency.constants';
import type { VerifyWebhookMetadata, VerifyWebhookOptions } from './verify-webhook.options';
import { WEBHOOK_VERIFIERS } from './webhook-verifiers';

const DEFAULT_TOLERANCE = '5m';

/**
 * The guard behind `@VerifyWebhook()`. Guards run before interceptors, so a delivery is verified before
 * `@Idempotent()` claims its key.
 */
@Injectable()
export class WebhookSignatureGuard implements CanActivate {
  private readonly logger = new Logger('Idempotency');
  private readonly unreadableWarnings = new Set<string>();

  constructor(
    private readonly reflector: Reflector,
    private readonly adapterHost: HttpAdapterHost,
    @Optional() @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly moduleOptions?: IdempotencyModuleOptions,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const metadata = this.reflector.getAllAndOverride<VerifyWebhookMetadata | undefined>(VERIFY_WEBHOOK, [context.getHandler(), context.getClass()]);
    if (!metadata || context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<IdempotencyRequest>();
    try {
      await this.verify(metadata, request, `${context.getClass().name}.${context.getHandler().name}`);
      return true;
    } catch (error) {
      if (error instanceof IdempotencyException) {
        const response = context.switchToHttp().getResponse<object>();
        for (const [name, value] of Object.entries(error.headers)) this.adapterHost.httpAdapter.setHeader(response, name, value);
      }
      throw error;
    }
  }

  private async verify({ provider, options: own }: VerifyWebhookMetadata, request: IdempotencyRequest, where: string): Promise<void> {
    const options: VerifyWebhookOptions = { ...this.moduleOptions?.webhooks?.[provider], ...withoutUndefined(own) };
    const secrets = secretsOf(options, `@VerifyWebhook('${provider}') on ${where}`);
    const rawBody = request.rawBody ?? (Buffer.isBuffer(request.body) ? request.body : undefined);
    if (rawBody === undefined) {
      if (!this.unreadableWarnings.has(where)) {
        this.unreadableWarnings.add(where);
        this.logger.warn(
          `${where} received a delivery without its raw body. Signatures are checked on the bytes as sent: create the app ` +
            'with NestFactory.create(AppModule, { rawBody: true }). (A body of a type no parser reads also arrives without them.)',
        );
      }
      throw new WebhookSignatureInvalidException('The request body could not be read as sent, so its signature cannot be checked.');
    }
    const toleranceMs = toMilliseconds(options.tolerance ?? DEFAULT_TOLERANCE, `${where}: tolerance`);
    if (toleranceMs <= 0) throw new IdempotencyConfigurationError(`${where}: tolerance must be more than 0.`);
    await WEBHOOK_VERIFIERS[provider]({
      rawBody,
      headers: request.headers,
      body: request.body,
      secrets,
      toleranceSeconds: toleranceMs / 1000,
      url: typeof options.url === 'function' ? options.url(request) : options.url,
      certificate: options.certificate,
    });
  }
}

function secretsOf(options: VerifyWebhookOptions, where: string): readonly string[] {
  const given = typeof options.secret === 'function' ? options.secret() : options.secret;
  const secrets = (typeof given === 'string' ? [given] : (given ?? [])).filter((secret) => secret !== '');
  if (secrets.length === 0) {
    throw new IdempotencyConfigurationError(
      `${where} has no signing secret. Give secret to the decorator, or webhooks: { provider: { secret } } to IdempotencyModule.forRoot().`,
    );
  }
  return secrets;
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
