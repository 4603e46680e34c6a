/**
 * Sends the sample app signed webhook deliveries the way the providers do (signed by their own
 * libraries), with the duplicates, concurrency and disorder they produce, and prints what came back.
 *
 *   npm run sample:deliver -- http://127.0.0.1:3000
 */
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { WEBHOOK_SECRETS } from './webhooks/webhook-secrets';

const base = (process.argv[2] ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`).replace(/\/$/, '');

async function post(path: string, body: string, headers: Record<string, string>): Promise<string> {
  const response = await fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const flags = ['idempotent-replayed', 'idempotent-skipped']
    .filter((name) => response.headers.has(name))
    .map((name) => `${name}: ${response.headers.get(name)}`);
  return [response.status, ...flags].join(' ');
}

function stripe(event: object, secret = WEBHOOK_SECRETS.stripe): [string, string, Record<string, string>] {
  const body = JSON.stringify(event);
  return ['/webhooks/stripe', body, { 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: body, secret }) }];
}

async function show(label: string, answers: Promise<string> | Array<Promise<string>>): Promise<void> {
  const all = await Promise.all([answers].flat());
  const counts = new Map<string, number>();
  for (const answer of all) counts.set(answer, (counts.get(answer) ?? 0) + 1);
  console.log(`${label.padEnd(58)} ${[...counts].map(([answer, count]) => (count > 1 ? `${count} x ${answer}` : answer)).join(', ')}`);
}

async function main(): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  const payment = stripe({
    id: `evt_${randomUUID()}`,
    type: 'payment_intent.succeeded',
    created: now,
    data: { object: { id: 'pi_1', object: 'payment_intent', amount: 1200, metadata: { orderId: '1' } } },
  });
  await show(
    'stripe payment_intent.succeeded, 20 at once',
    Array.from({ length: 20 }, () => post(...payment)),
  );
  await show('  ...and its retry', post(...payment));

  const session = `cs_${randomUUID().slice(0, 8)}`;
  const checkout = stripe({
    id: `evt_${randomUUID()}`,
    type: 'checkout.session.completed',
    created: now,
    data: { object: { id: session, object: 'checkout.session', metadata: { sku: 'gizmo', quantity: '1' } } },
  });
  await show(
    `stripe checkout.session.completed ${session}, 20 at once`,
    Array.from({ length: 20 }, () => post(...checkout)),
  );
  await show('  ...and its retry', post(...checkout));

  const subscription = `sub_${randomUUID().slice(0, 8)}`;
  const update = (created: number, status: string) =>
    stripe({
      id: `evt_${randomUUID()}`,
      type: 'customer.subscription.updated',
      created,
      data: { object: { id: subscription, object: 'subscription', status } },
    });
  await show(`stripe ${subscription} -> past_due (newer)`, post(...update(now, 'past_due')));
  await show(`stripe ${subscription} -> active (older, arrives late)`, post(...update(now - 60, 'active')));

  await show(
    'stripe delivery signed with a wrong secret',
    post(...stripe({ id: `evt_${randomUUID()}`, type: 'x', created: now, data: { object: { id: 'x', object: 'x' } } }, 'whsec_wrong')),
  );

  // ESM-only (an "import" export alone), so loaded with import() from this CommonJS build.
  const { sign: signGithub } = await import('@octokit/webhooks-methods');
  const delivery = randomUUID();
  const issue = JSON.stringify({ action: 'opened', issue: { number: 1 } });
  const github = (): Promise<string> =>
    signGithub(WEBHOOK_SECRETS.github, issue).then((signature) =>
      post('/webhooks/github', issue, { 'x-github-event': 'issues', 'x-github-delivery': delivery, 'x-hub-signature-256': signature }),
    );
  await show('github issues delivery, twice', [github(), github()]);

  const message = `msg_${randomUUID()}`;
  const invoice = JSON.stringify({ type: 'invoice.paid', data: { id: 'inv_1' } });
  const standard = (): Promise<string> => {
    const at = new Date();
    const signature = new Webhook(WEBHOOK_SECRETS.standard).sign(message, at, invoice);
    return post('/webhooks/standard', invoice, {
      'webhook-id': message,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
    });
  };
  await show('standard webhooks invoice.paid, twice', [standard(), standard()]);

  // Fulfilment runs in the background: the outbox relay hands the job to BullMQ, the worker writes the receipt.
  let receipts: Array<{ sessionId: string; status: string }> = [];
  for (let attempt = 0; attempt < 50 && receipts.length === 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    receipts = ((await (await fetch(`${base}/receipts`)).json()) as typeof receipts).filter((receipt) => receipt.sessionId === session);
  }
  await new Promise((resolve) => setTimeout(resolve, 500)); // a second receipt would show by now
  receipts = ((await (await fetch(`${base}/receipts`)).json()) as typeof receipts).filter((receipt) => receipt.sessionId === session);
  console.log(
    `\nGET /receipts: ${receipts.length} receipt for ${session} (${receipts.map((receipt) => receipt.status).join(', ') || 'none yet: is Redis running?'})`,
  );

  const events = (await (await fetch(`${base}/webhooks/events`)).json()) as Array<{ provider: string; type: string }>;
  const subscriptions = (await (await fetch(`${base}/webhooks/subscriptions`)).json()) as Array<{ id: string; status: string }>;
  console.log(`GET /webhooks/events: ${events.length} events applied in all; ${subscription} is ${subscriptions.find((s) => s.id === subscription)?.status}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
