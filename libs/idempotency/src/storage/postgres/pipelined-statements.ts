/**
 * Several statements in one socket write, answered by one ReadyForQuery: the extended protocol allows any number
 * of Parse/Bind/Describe/Execute before one Sync, which is what libpq's pipeline mode sends. node-postgres sends a
 * query only after the previous one's ReadyForQuery, but its `client.query()` takes any object with `submit()` and
 * the `handle*` methods its Client calls on the active query: {@link StatementBatch} is one, built from
 * node-postgres' own parts (its Connection's serializer, `utils.prepareValue`, `Result`), so that values go out and
 * rows come back exactly as with `client.query()`.
 *
 * After an error the server skips everything up to the Sync: the first error is the batch's, and the statements
 * after it did not run. A START TRANSACTION in the batch opens a transaction that stays open after the Sync.
 */

/** One statement of a batch; named ones are prepared once per connection, as node-postgres does. */
export interface PipelinedStatement {
  text: string;
  name?: string;
  values?: readonly unknown[];
}

/** What a statement gave back, as node-postgres' `Result` holds it. */
export interface PipelinedResult {
  rows: unknown[];
  rowCount: number | null;
  command: string | null;
}

/** node-postgres' `Result`: parses rows with the client's type parsers. */
interface ResultLike extends PipelinedResult {
  _types?: unknown;
  addFields(fields: unknown[]): void;
  parseRow(fields: unknown[]): unknown;
  addRow(row: unknown): void;
  addCommandComplete(message: unknown): void;
}

/** The parts of node-postgres a batch is built from: those of the copy whose clients it runs on. */
export interface NodePostgresParts {
  Result: new (rowMode?: string, types?: unknown) => ResultLike;
  prepareValue(value: unknown): unknown;
}

/** node-postgres' Connection: the protocol messages it writes, and the statements it has prepared. */
export interface WireConnection {
  stream: { cork?(): void; uncork?(): void };
  parsedStatements: Record<string, string | undefined>;
  parse(message: { text: string; name: string }): void;
  bind(message: { statement: string; portal: string; values: unknown[]; binary: boolean }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal: string }): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

/** A node-postgres client that takes a batch: one whose queries go through a {@link WireConnection}. */
export interface BatchClient {
  query(batch: StatementBatch): unknown;
}

type Settle = (error: Error | null, results?: PipelinedResult[]) => void;

/** Sends `statements` in one write, ending with one Sync; resolves with each one's result, or rejects with the first error. */
export function sendStatements(client: BatchClient, statements: readonly PipelinedStatement[], parts: NodePostgresParts): Promise<PipelinedResult[]> {
  return new Promise((resolve, reject) => {
    client.query(new StatementBatch(statements, parts, (error, results) => (error ? reject(error) : resolve(results ?? []))));
  });
}

/** The Submittable: what node-postgres' Client runs as its active query from `submit()` to the ReadyForQuery. */
export class StatementBatch {
  /** Set by the client where it reads results in binary. */
  binary = false;
  /**
   * The first statement's result. The client gives it its own type parsers (`setTypeParser`) before `submit()`;
   * the other statements' results take them from it, as a Query's multiple results do.
   */
  readonly _result: ResultLike;
  private results: ResultLike[] = [];
  /** Whether this batch sends a Parse for each statement. */
  private parses: boolean[] = [];
  /** The statement whose replies are arriving. */
  private current = 0;
  /** A type parser that threw on a row: the batch fails with it at its end, as a Query does. */
  private rowError?: Error;

  constructor(
    private readonly statements: readonly PipelinedStatement[],
    private readonly parts: NodePostgresParts,
    /** The one way the batch settles; the client wraps it where it has a `query_timeout`. */
    public callback: Settle,
  ) {
    this._result = new parts.Result();
  }

  /**
   * The client records a ParseComplete under its active query's `name` and `text` (in
   * `connection.parsedStatements`, which the next batch or `client.query()` reads): those of the statement whose
   * replies are arriving, if this batch parses it under a name. Its ParseComplete is its first reply.
   */
  get name(): string | undefined {
    return this.parses[this.current] ? this.statements[this.current]?.name : undefined;
  }

  get text(): string | undefined {
    return this.parses[this.current] ? this.statements[this.current]?.text : undefined;
  }

  /** Writes every statement, then one Sync, in one write; an Error (nothing written) fails the batch. */
  submit(connection: WireConnection): Error | null {
    const planned = this.plan(connection.parsedStatements);
    if (planned instanceof Error) return planned;
    let values: unknown[][];
    try {
      values = this.statements.map((statement) => (statement.values ?? []).map((value) => this.parts.prepareValue(value)));
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
    const types = this._result._types;
    this.results = this.statements.map((_, i) => (i === 0 ? this._result : new this.parts.Result(undefined, types)));
    connection.stream.cork?.();
    try {
      this.statements.forEach((statement, i) => {
        const name = statement.name ?? '';
        if (this.parses[i]) connection.parse({ text: statement.text, name });
        connection.bind({ statement: name, portal: '', values: values[i], binary: this.binary });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '' });
      });
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  /** Which statements need a Parse: unnamed ones always, named ones unless this connection (or this batch) has them. */
  private plan(parsed: Record<string, string | undefined>): Error | undefined {
    const parsing = new Set<string>();
    for (const { name, text } of this.statements) {
      if (!name) {
        this.parses.push(true);
        continue;
      }
      const previous = parsed[name];
      if (previous !== undefined && previous !== text) return new Error(`Prepared statements must be unique - '${name}' was used for a different statement`);
      this.parses.push(previous === undefined && !parsing.has(name));
      parsing.add(name);
    }
    return undefined;
  }

  handleRowDescription(message: { fields: unknown[] }): void {
    this.results[this.current].addFields(message.fields);
  }

  handleDataRow(message: { fields: unknown[] }): void {
    if (this.rowError) return;
    const result = this.results[this.current];
    try {
      result.addRow(result.parseRow(message.fields));
    } catch (error) {
      this.rowError = error instanceof Error ? error : new Error(String(error));
    }
  }

  handleCommandComplete(message: unknown): void {
    this.results[this.current].addCommandComplete(message);
    this.current++;
  }

  /** An empty statement's only reply. */
  handleEmptyQuery(): void {
    this.current++;
  }

  /** Never sent: every Execute asks for all of its rows. */
  handlePortalSuspended(): void {}

  /** A COPY FROM STDIN in a batch has no data to send: the server is told so, and the batch fails with its error. */
  handleCopyInResponse(connection: WireConnection): void {
    connection.sendCopyFail('No source stream defined');
  }

  /** A COPY TO STDOUT's data: a batch keeps no rows of it. */
  handleCopyData(): void {}

  /** The first error: the server skips the rest of the batch. The client no longer routes this batch's replies here. */
  handleError(error: Error): void {
    const failure = this.rowError ?? error;
    this.rowError = undefined;
    this.callback(failure);
  }

  handleReadyForQuery(): void {
    if (this.rowError) return this.handleError(this.rowError);
    this.callback(null, this.results);
  }
}
