import { connect } from 'amqplib';
import { type RmqOptions, Transport } from '@nestjs/microservices';

/** Where the warehouse's events arrive. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672';
export const SHIPPING_QUEUE = process.env.SHIPPING_QUEUE || 'shop.order-shipped';

/** The consumer of `order.shipped`: manual acks, which `@Idempotent({ ack: true })` sends once the claim completed. */
export const shippingTransport: RmqOptions = {
  transport: Transport.RMQ,
  options: { urls: [RABBITMQ_URL], queue: SHIPPING_QUEUE, noAck: false, queueOptions: { durable: true } },
};

/** Whether RabbitMQ answers now: without it the shop runs, and only the shipping events wait. */
export async function rabbitMqAnswers(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const connection = await connect(RABBITMQ_URL, { timeout: 2000 });
    await connection.close();
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: (error as Error).message || (error as { code?: string }).code || String(error) };
  }
}

/** The URL without its password, for the logs. */
export function shownRabbitMqUrl(): string {
  const url = new URL(RABBITMQ_URL);
  if (url.password) url.password = '***';
  return url.href;
}
