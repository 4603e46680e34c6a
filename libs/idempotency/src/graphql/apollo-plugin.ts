import { REPLAYED_HEADER } from '../http/replay';
import { fieldMarks, notePlugin } from './replay-marks';

/** What the plugin reads and writes of Apollo Server's request context: structural, so `@apollo/server` stays optional. */
interface ApolloRequestContextLike {
  readonly contextValue: unknown;
  readonly response: {
    readonly body: { readonly kind: string; readonly singleResult?: { extensions?: Record<string, unknown> } };
    readonly http: { readonly headers: { set(name: string, value: string): unknown } };
  };
}

/**
 * Marks the replays of `@Idempotent()` mutations in Apollo Server's response: `extensions.idempotency` holds
 * `{ replayed, fields: { [responseKey]: { replayed, retryAfter? } } }`, `Idempotent-Replayed: true` is set when
 * every idempotent field of the operation was replayed, and `Retry-After` when one was refused for now.
 *
 * @example
 * GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, plugins: [new IdempotencyApolloPlugin()] })
 */
export class IdempotencyApolloPlugin {
  // Apollo calls it with the operation's context; async, as Apollo's plugin contract has it.
  // eslint-disable-next-line @typescript-eslint/require-await
  async requestDidStart(started: { readonly contextValue: unknown }) {
    if (typeof started.contextValue === 'object' && started.contextValue !== null) notePlugin(started.contextValue);
    return {
      // eslint-disable-next-line @typescript-eslint/require-await
      willSendResponse: async (context: ApolloRequestContextLike) => markResponse(context),
    };
  }
}

function markResponse({ contextValue, response }: ApolloRequestContextLike): void {
  const fields = typeof contextValue === 'object' && contextValue !== null ? fieldMarks(contextValue) : undefined;
  if (!fields || fields.size === 0) return;
  const marks = Object.fromEntries(fields);
  const replayed = [...fields.values()].every((mark) => mark.replayed);
  const single = response.body.kind === 'single' ? response.body.singleResult : undefined;
  if (single) single.extensions = { ...single.extensions, idempotency: { replayed, fields: marks } };
  if (replayed) response.http.headers.set(REPLAYED_HEADER, 'true');
  const retryAfter = Math.max(0, ...[...fields.values()].map((mark) => mark.retryAfter ?? 0));
  if (retryAfter > 0) response.http.headers.set('retry-after', String(retryAfter));
}
