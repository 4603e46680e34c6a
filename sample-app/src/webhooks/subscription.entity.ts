import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A customer's subscription as Stripe's events describe it; only the newest event may change it. */
@Entity({ name: 'subscriptions' })
export class Subscription {
  @PrimaryColumn({ type: 'text' })
  id!: string;

  @Column({ type: 'text' })
  status!: string;

  /** The `created` time (seconds) of the event that set this state. */
  @Column({ name: 'event_created', type: 'bigint' })
  eventCreated!: string;
}
