import { PGliteDriver } from 'typeorm-pglite';

/**
 * An embedded PGlite, in memory, for TypeORM's postgres driver. PGlite is a single session: every TypeORM
 * "connection" shares it, so two open transactions would silently merge and `FOR UPDATE` would never block.
 * Handing out the session to one query runner at a time serializes transactions, which keeps idempotency
 * correct (if not concurrent) on it.
 */
export function serializedPGlite(): unknown {
  type Connect = (error: unknown, client: unknown, done: () => void) => void;
  const Pool = new PGliteDriver().driver.Pool as unknown as new () => { connect(callback: Connect): Promise<void> };

  class SerializedPool extends Pool {
    private turn: Promise<void> = Promise.resolve();

    override connect(callback: Connect): Promise<void> {
      let release!: () => void;
      const mine = new Promise<void>((resolve) => (release = resolve));
      const previous = this.turn;
      this.turn = previous.then(() => mine);
      return previous.then(() =>
        super.connect((error, client) => {
          let released = false;
          const done = () => {
            if (released) return;
            released = true;
            release();
          };
          if (error) done();
          callback(error, client, done);
        }),
      );
    }
  }
  return { Pool: SerializedPool };
}
