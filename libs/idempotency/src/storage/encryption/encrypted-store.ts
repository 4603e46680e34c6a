import type { EntityManagerLike } from '../typeorm-like';
import type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  IdempotencyRecordView,
  IdempotencyStore,
  StoredResponse,
  TransactionalClaim,
  TransactionalClaimOutcome,
  TransactionalIdempotencyStore,
} from '../idempotency-store';
import { isTransactional } from '../idempotency-store';
import { type EncryptionOptions, type RecordAddress, ResponseCipher } from './response-encryption';

type Completed = Extract<ClaimOutcome, { status: 'completed' }>;

/**
 * Encryption at rest over any store: `complete()` (a transactional claim's too) stores the response's
 * headers and body as one AES-256-GCM envelope, bound to its record; `claim()`, `peek()`, `find()` and
 * `claimInTransaction()` open it again. Bodies stored in clear (before encryption was turned on) are
 * read as they are. A body that cannot be decrypted (its key is no longer configured, or it was altered
 * or copied from another record) makes the read throw `IdempotencyDecryptionError`: never replayed.
 *
 * Without `encryption`, responses are stored in clear and an encrypted body is refused in the same way,
 * so that turning encryption off never replays ciphertext. The result is a `TransactionalIdempotencyStore`
 * exactly when `store` is one.
 *
 * @example
 * const store = withEncryptionAtRest(new TypeOrmIdempotencyStore(dataSource), {
 *   keys: [{ id: '2025-06', key: process.env.IDEMPOTENCY_KEY_2025_06! }, { id: '2025-01', key: process.env.IDEMPOTENCY_KEY_2025_01! }],
 * });
 */
export function withEncryptionAtRest(store: TransactionalIdempotencyStore, encryption: EncryptionOptions | undefined): TransactionalIdempotencyStore;
export function withEncryptionAtRest(store: IdempotencyStore, encryption: EncryptionOptions | undefined): IdempotencyStore;
export function withEncryptionAtRest(store: IdempotencyStore, encryption: EncryptionOptions | undefined): IdempotencyStore {
  const cipher = new ResponseCipher(encryption);
  return isTransactional(store) ? new EncryptedTransactionalStore(store, cipher) : new EncryptedStore(store, cipher);
}

class EncryptedStore implements IdempotencyStore {
  constructor(
    protected readonly inner: IdempotencyStore,
    protected readonly cipher: ResponseCipher,
  ) {}

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    return this.opened(request, await this.inner.claim(request));
  }

  async peek(request: ClaimRequest): Promise<Exclude<ClaimOutcome, { status: 'claimed' | 'in-flight' }> | undefined> {
    const outcome = await this.inner.peek(request);
    return outcome && this.opened(request, outcome);
  }

  complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return this.inner.complete(ref, this.cipher.seal(ref, response), ttlMs);
  }

  release(ref: ClaimRef): Promise<boolean> {
    return this.inner.release(ref);
  }

  renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    return this.inner.renew(ref, leaseMs);
  }

  async find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    const view = await this.inner.find(scope, key);
    if (!view?.response) return view;
    const response = this.cipher.open({ scope, key }, view.response);
    return response === view.response ? view : { ...view, response };
  }

  purgeExpired(batchSize: number): Promise<number> {
    return this.inner.purgeExpired(batchSize);
  }

  protected opened<T extends { status: string }>(record: RecordAddress, outcome: T): T {
    if (outcome.status !== 'completed') return outcome;
    const completed = outcome as unknown as Completed;
    const response = this.cipher.open(record, completed.response);
    return response === completed.response ? outcome : ({ ...completed, response } as unknown as T);
  }
}

class EncryptedTransactionalStore extends EncryptedStore implements TransactionalIdempotencyStore {
  readonly transactional = true;
  constructor(
    protected override readonly inner: TransactionalIdempotencyStore,
    cipher: ResponseCipher,
  ) {
    super(inner, cipher);
  }

  get manager(): EntityManagerLike {
    return this.inner.manager;
  }

  async claimInTransaction(
    request: ClaimRequest,
    lockTimeoutMs: number,
    idleTimeoutMs: number,
    handlerLockTimeoutMs?: number,
  ): Promise<TransactionalClaimOutcome> {
    const outcome = await this.inner.claimInTransaction(request, lockTimeoutMs, idleTimeoutMs, handlerLockTimeoutMs);
    // Unless claimed, the inner store has closed the transaction: a body that fails to open leaves nothing open.
    if (outcome.status !== 'claimed') return this.opened(request, outcome);
    return { ...outcome, claim: this.sealing(outcome.claim) };
  }

  private sealing(claim: TransactionalClaim): TransactionalClaim {
    const sealed: TransactionalClaim = {
      ref: claim.ref,
      manager: claim.manager,
      complete: async (response, ttlMs) => {
        let stored: StoredResponse;
        try {
          stored = this.cipher.seal(claim.ref, response);
        } catch (error) {
          // complete() ends the transaction either way: nothing may stay open on a failure before it.
          await claim.rollback();
          throw error;
        }
        await claim.complete(stored, ttlMs);
      },
      rollback: () => claim.rollback(),
    };
    if (claim.advanceVersion) sealed.advanceVersion = claim.advanceVersion.bind(claim);
    return sealed;
  }
}
