import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A charge the local payment provider made: one row per charge, however often it was asked. */
@Entity({ name: 'provider_charges' })
export class ProviderCharge {
  @PrimaryGeneratedColumn()
  id!: number;

  /** What the caller charges for (the shop sends `order-<id>`). */
  @Column({ type: 'text' })
  reference!: string;

  /** In cents. */
  @Column({ type: 'integer' })
  amount!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
