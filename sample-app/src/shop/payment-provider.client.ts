import { BadGatewayException, Injectable } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { AddressInfo, Server } from 'node:net';
import { parseUrl } from '../connection-url';
import type { ChargeAnswer, CreateCharge } from '../provider/provider.controller';

/** The longest the shop waits for the provider: past it, the payment fails with a 502 and the client retries. */
const PROVIDER_TIMEOUT_MS = 10_000;

/**
 * The shop's side of the payment provider: the provider module of this app, or the one at PAYMENT_PROVIDER_URL
 * (another instance of the sample, say).
 */
@Injectable()
export class PaymentProviderClient {
  private readonly configured: URL | undefined;

  constructor(private readonly adapterHost: HttpAdapterHost) {
    const given = process.env.PAYMENT_PROVIDER_URL?.trim();
    this.configured = given ? parseUrl('PAYMENT_PROVIDER_URL', given, ['http:', 'https:']) : undefined;
  }

  /** Where the charges go, for the start's log line. */
  describe(): string {
    return this.configured ? `${this.configured.origin} (PAYMENT_PROVIDER_URL)` : 'this app (PAYMENT_PROVIDER_URL is unset)';
  }

  /**
   * Charges once per `idempotencyKey`: the provider answers a repeat of the key with the first charge. Any
   * failure is a 502, which releases the shop's own claim, so that the client's retry asks again with the same key.
   */
  async charge(charge: CreateCharge, idempotencyKey: string): Promise<ChargeAnswer> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl()}/provider/charges`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(charge),
        signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
      });
    } catch (error) {
      throw new BadGatewayException(`The payment provider did not answer: ${(error as Error).message}`);
    }
    if (!response.ok) throw new BadGatewayException(`The payment provider answered ${response.status}.`);
    return (await response.json()) as ChargeAnswer;
  }

  private baseUrl(): string {
    if (this.configured) return this.configured.origin + this.configured.pathname.replace(/\/$/, '');
    const server = this.adapterHost.httpAdapter.getHttpServer() as Server;
    const { address, family, port } = server.address() as AddressInfo;
    if (address === '0.0.0.0' || address === '::') return `http://127.0.0.1:${port}`;
    return family === 'IPv6' ? `http://[${address}]:${port}` : `http://${address}:${port}`;
  }
}
