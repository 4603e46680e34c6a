import { randomUUID } from 'node:crypto';
import { createSchema, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';
import { githubDelivery, type SignedRequest, standardDelivery, stripeDelivery } from '../support/webhook-signing';
import { BatchController, ResourceState, SECRETS, type SubscriptionEvent, WebhooksController } from '../support/webhooks.controller';

describe.each(PLATFORMS)('webhook deliveries (%s)', (platform) => {
  let schema: string;
  let app: TestApp;

  beforeAll(async () => {
    schema = await createSchema(`deliveries_${platform}`);
    app = await startApp(platform, {
      schema,
      controllers: [WebhooksController, BatchController],
      entities: [ResourceState],
      idempotency: { webhooks: { github: { secret: SECRETS.current } } },
    });
  });

  afterAll(async () => {
    await app?.close();
    await dropSchema(schema);
  });

  const deliver = (path: string, delivery: SignedRequest) => send(app.url, path, { body: delivery.body, headers: delivery.headers });

  describe('concurrent deliveries of one event run it once', () => {
    it('stripe (transaction mode): every delivery gets the 200', async () => {
      const id = `evt_${randomUUID()}`;
      const answers = await burst(40, () => deliver('/hooks/stripe', stripeDelivery({ id, type: 'charge.succeeded', delay: 100 }, SECRETS.current)));
      expect(countBy(answers, (answer) => answer.status)).toEqual({ 200: 40 });
      expect(await app.effects(`stripe:${id}`)).toBe(1);
    });

    it('github (lease mode): one runs, the rest get 409 with Retry-After (GitHub counts it a failure) or the replay', async () => {
      const id = randomUUID();
      const delivery = await githubDelivery({ delivery: id, delay: 300 }, SECRETS.current, id);
      const answers = await burst(40, () => deliver('/hooks/github', delivery));
      const statuses = countBy(answers, (answer) => answer.status);
      expect(Object.keys(statuses).sort()).toEqual(expect.arrayContaining(['200']));
      expect((statuses[200] ?? 0) + (statuses[409] ?? 0)).toBe(40);
      for (const answer of answers.filter((a) => a.status === 409)) expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await app.effects(`github:${id}`)).toBe(1);
    });

    it('standard webhooks (wait): every delivery gets the 200', async () => {
      const id = `msg_${randomUUID()}`;
      const answers = await burst(40, () => deliver('/hooks/standard', standardDelivery({ id, delay: 100 }, SECRETS.current, id)));
      expect(countBy(answers, (answer) => answer.status)).toEqual({ 200: 40 });
      expect(await app.effects(`standard:${id}`)).toBe(1);
    });
  });

  it('replays a redelivery whose body changed (attempt counters): the event id is its identity', async () => {
    const id = `evt_${randomUUID()}`;
    expect((await deliver('/hooks/stripe', stripeDelivery({ id, type: 'charge.succeeded', pending_webhooks: 2 }, SECRETS.current))).status).toBe(200);
    const redelivery = await deliver('/hooks/stripe', stripeDelivery({ id, type: 'charge.succeeded', pending_webhooks: 1 }, SECRETS.current));
    expect(redelivery.status).toBe(200);
    expect(redelivery.headers.get('idempotent-replayed')).toBe('true');
    expect(await app.effects(`stripe:${id}`)).toBe(1);
  });

  it('does not store a non-2xx answer: the provider retries and the handler runs again', async () => {
    const id = `evt_${randomUUID()}`;
    expect((await deliver('/hooks/stripe', stripeDelivery({ id, status: 422 }, SECRETS.current))).status).toBe(422);
    const retry = await deliver('/hooks/stripe', stripeDelivery({ id }, SECRETS.current));
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    // The 422 rolled back with its transaction; the retry's effect is the only one.
    expect(await app.effects(`stripe:${id}`)).toBe(1);
  });

  it("keeps one provider's event ids apart from another's", async () => {
    const id = `shared-${randomUUID()}`;
    expect((await deliver('/hooks/stripe', stripeDelivery({ id }, SECRETS.current))).status).toBe(200);
    expect((await deliver('/hooks/standard', standardDelivery({ id }, SECRETS.current, id))).status).toBe(200);
    expect(await app.effects(`stripe:${id}`)).toBe(1);
    expect(await app.effects(`standard:${id}`)).toBe(1);
  });

  describe('out-of-order events', () => {
    const subscriptionEvent = (subscription: string, created: number, status: string): SubscriptionEvent => ({
      id: `evt_${randomUUID()}`,
      type: 'customer.subscription.updated',
      created,
      data: { object: { id: subscription, status } },
    });
    const state = async (id: string) => app.dataSource.getRepository(ResourceState).findOneBy({ id });
    const deliverEvent = (event: SubscriptionEvent) => deliver('/hooks/subscriptions', stripeDelivery(event, SECRETS.current));

    it('skips an event older than the one applied, with a 2xx that says so', async () => {
      const subscription = `sub_${randomUUID()}`;
      expect((await deliverEvent(subscriptionEvent(subscription, 2000, 'active'))).status).toBe(200);
      const older = subscriptionEvent(subscription, 1000, 'trialing');
      const skipped = await deliverEvent(older);
      expect(skipped.status).toBe(200);
      expect(skipped.headers.get('idempotent-skipped')).toBe('stale-event');
      expect(await state(subscription)).toMatchObject({ status: 'active', version: '2000' });
      expect(await app.effects(`subscription:${subscription}:1000`)).toBe(0);
      // Its redelivery is skipped again.
      expect((await deliverEvent(older)).headers.get('idempotent-skipped')).toBe('stale-event');
    });

    it('applies events that arrive in order, and one of equal version', async () => {
      const subscription = `sub_${randomUUID()}`;
      for (const [created, status] of [
        [1000, 'trialing'],
        [2000, 'active'],
        [2000, 'past_due'],
      ] as const) {
        const answer = await deliverEvent(subscriptionEvent(subscription, created, status));
        expect(answer.headers.get('idempotent-skipped')).toBeNull();
      }
      expect(await state(subscription)).toMatchObject({ status: 'past_due', version: '2000' });
    });

    it('under concurrency, applies events one at a time and never an older one after a newer', async () => {
      const subscription = `sub_${randomUUID()}`;
      const versions = Array.from({ length: 30 }, (_, index) => 1000 + index).sort(() => Math.random() - 0.5);
      const answers = await burst(versions.length, (index) =>
        deliverEvent({ ...subscriptionEvent(subscription, versions[index], `v${versions[index]}`), delay: 10 }),
      );
      expect(countBy(answers, (answer) => answer.status)).toEqual({ 200: versions.length });
      expect(await state(subscription)).toMatchObject({ status: 'v1029', version: '1029' });
      // The effects, in the order they committed, carry strictly increasing versions.
      const applied = await app.dataSource.query<Array<{ label: string }>>(`SELECT label FROM "${schema}".effects WHERE label LIKE $1 ORDER BY id`, [
        `subscription:${subscription}:%`,
      ]);
      const appliedVersions = applied.map((row) => Number(row.label.split(':')[2]));
      expect(appliedVersions).toEqual([...appliedVersions].sort((a, b) => a - b));
      expect(appliedVersions.at(-1)).toBe(1029);
      const skipped = answers.filter((answer) => answer.headers.get('idempotent-skipped') === 'stale-event').length;
      expect(skipped + appliedVersions.length).toBe(versions.length);
    });

    it('refuses a version it cannot compare with 400, leaving the resource as it was', async () => {
      const subscription = `sub_${randomUUID()}`;
      const answer = await deliverEvent(subscriptionEvent(subscription, 'yesterday' as unknown as number, 'active'));
      expect(answer.status).toBe(400);
      expect(answer.json()).toMatchObject({ code: 'EVENT_VERSION_INVALID' });
      expect(await state(subscription)).toBeNull();
    });
  });

  describe('batched deliveries, one record per item', () => {
    const batch = (items: Array<{ id: string; fail?: boolean }>) => send(app.url, '/hooks/batch', { body: items });

    it('a failing item fails the batch; its retry runs that item alone', async () => {
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      const first = await batch([{ id: ids[0] }, { id: ids[1], fail: true }, { id: ids[2] }]);
      expect(first.status).toBe(500);
      expect(first.json()).toMatchObject({ failed: [ids[1]] });
      expect(await Promise.all(ids.map((id) => app.effects(`batch:${id}`)))).toEqual([1, 0, 1]);

      const retry = await batch(ids.map((id) => ({ id })));
      expect(retry.status).toBe(200);
      expect(await Promise.all(ids.map((id) => app.effects(`batch:${id}`)))).toEqual([1, 1, 1]);

      // The same batch delivered twice at once: nothing runs twice.
      const fresh = [randomUUID(), randomUUID()];
      await burst(10, () => batch(fresh.map((id) => ({ id }))));
      expect(await Promise.all(fresh.map((id) => app.effects(`batch:${id}`)))).toEqual([1, 1]);
    });
  });
});
