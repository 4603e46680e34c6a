import type { IdempotencyRequest } from '../idempotency-request';
import { IDEMPOTENCY_DEFAULTS } from '../idempotency.options';
import { resolveRoutePlan as resolveRouteOptions } from '../plan/route-plan.resolver';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { findKey } from './key-source';
import { PROVIDER_PRESETS, type ProviderPresetName } from './provider-presets';

const request = (headers: Record<string, string> = {}, body?: unknown): IdempotencyRequest => ({ method: 'POST', url: '/hooks', headers, body });

describe('provider presets', () => {
  it.each<[ProviderPresetName, IdempotencyRequest, string]>([
    ['stripe', request({}, { id: 'evt_1', object: 'event' }), 'evt_1'],
    ['github', request({ 'x-github-delivery': 'guid-1' }), 'guid-1'],
    ['shopify', request({ 'x-shopify-event-id': 'ev-1', 'x-shopify-webhook-id': 'wh-1' }), 'ev-1'],
    ['shopify', request({ 'x-shopify-webhook-id': 'wh-1' }), 'wh-1'],
    ['standard-webhooks', request({ 'webhook-id': 'msg_1' }), 'msg_1'],
    ['svix', request({ 'svix-id': 'msg_2' }), 'msg_2'],
    ['paddle', request({}, { event_id: 'evt_01h', event_type: 'transaction.completed' }), 'evt_01h'],
    ['slack', request({ 'x-slack-retry-num': '1' }, { event_id: 'Ev01' }), 'Ev01'],
    ['square', request({}, { event_id: 'sq-1' }), 'sq-1'],
    ['gitlab', request({ 'idempotency-key': 'gl-1', 'x-gitlab-event-uuid': 'uuid-1' }), 'gl-1'],
    ['gitlab', request({ 'x-gitlab-event-uuid': 'uuid-1' }), 'uuid-1'],
    ['twilio', request({ 'i-twilio-idempotency-token': 'tw-1' }), 'tw-1'],
    ['paypal', request({ 'paypal-transmission-id': 'per-attempt' }, { id: 'WH-1' }), 'WH-1'],
    [
      'linear',
      request(
        { 'linear-delivery': 'per-attempt' },
        { webhookId: 'wh', action: 'update', createdAt: 'c', data: { id: 'iss', updatedAt: '2026-11-23T10:00:00.000Z' } },
      ),
      'wh:update:iss:2026-11-23T10:00:00.000Z',
    ],
  ])('%s reads the event id', async (preset, req, key) => {
    expect(await findKey(preset, req)).toEqual({ key, provider: preset });
  });

  it.each(Object.keys(PROVIDER_PRESETS) as ProviderPresetName[])('%s finds no key in a request without one', async (preset) => {
    expect(await findKey(preset, request({}, { unrelated: true }))).toBeUndefined();
    expect(await findKey(preset, request({}, Buffer.from('{"id":"x"}')))).toBeUndefined();
  });

  it('defaults a preset route to the provider retry window, no fingerprint and 2xx-only storage', () => {
    const options = resolveRouteOptions({}, { key: 'stripe' }, 'test');
    expect(options.ttlMs).toBe(3 * 24 * 3600_000);
    expect(options.fingerprint).toBe(false);
    expect([200, 204, 299].map(options.storeIf)).toEqual([true, true, true]);
    expect([301, 400, 404, 422, 500].map(options.storeIf)).toEqual([false, false, false, false, false]);
    // The module's longer TTL and the route's own options win.
    expect(resolveRouteOptions({ ttl: '7d' }, { key: 'stripe' }, 'test').ttlMs).toBe(7 * 24 * 3600_000);
    const own = resolveRouteOptions({}, { key: 'stripe', ttl: '1h', fingerprint: true, storeIf: () => true }, 'test');
    expect(own.ttlMs).toBe(3600_000);
    expect(own.fingerprint).toBe(true);
    expect(own.storeIf(500)).toBe(true);
    expect(resolveRouteOptions({}, { key: 'header' }, 'test').fingerprint).toBe(IDEMPOTENCY_DEFAULTS.fingerprint);
  });

  it('asks for transaction mode when a route orders events', () => {
    const order = { resource: () => 'r', version: () => 1 };
    expect(() => resolveRouteOptions({}, { key: 'stripe', order }, 'test')).toThrow(IdempotencyConfigurationError);
    expect(() => resolveRouteOptions({}, { key: 'stripe', order }, 'test')).toThrow(/transaction: true/);
    expect(resolveRouteOptions({}, { key: 'stripe', order, transaction: true }, 'test').order).toBe(order);
  });
});
