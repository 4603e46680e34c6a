/** What became of one idempotent mutation field of an operation, as `extensions.idempotency` reports it. */
export interface FieldMark {
  /** The field's answer is the stored one of an earlier request: the resolver did not run. */
  replayed: boolean;
  /** Seconds before a retry may succeed (the field was refused because its key was in flight, or the store was down). */
  retryAfter?: number;
}

/** The marks of each operation, by its GraphQL context object, which the resolvers and Apollo's plugin both see. */
const marks = new WeakMap<object, Map<string, FieldMark>>();
/** Contexts of operations that went through the plugin: without it, a replay cannot be marked. */
const seenByPlugin = new WeakSet<object>();

/** Notes what became of the field `responseKey` (its alias, or its name) of the operation whose context this is. */
export function markField(context: unknown, responseKey: string, mark: FieldMark): void {
  if (typeof context !== 'object' || context === null) return;
  let fields = marks.get(context);
  if (!fields) marks.set(context, (fields = new Map<string, FieldMark>()));
  fields.set(responseKey, mark);
}

export function fieldMarks(context: object): ReadonlyMap<string, FieldMark> | undefined {
  return marks.get(context);
}

export function notePlugin(context: object): void {
  seenByPlugin.add(context);
}

export function wentThroughPlugin(context: unknown): boolean {
  return typeof context === 'object' && context !== null && seenByPlugin.has(context);
}
