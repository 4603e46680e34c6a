import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One receipt per fulfilled checkout (a stand-in for the email a shop would send): never two. */
@Entity({ name: 'receipts' })
export class Receipt {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ name: 'session_id', type: 'text' })
  sessionId!: string;

  @Column({ type: 'text' })
  sku!: string;

  @Column({ type: 'integer' })
  quantity!: number;

  /** `shipped`, or `backordered` when the stock was short. */
  @Column({ type: 'text' })
  status!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
