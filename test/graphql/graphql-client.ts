/** A GraphQL response as a client saw it over HTTP. */
export interface GraphQLReply {
  status: number;
  headers: Headers;
  text: string;
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; path?: string[]; extensions?: Record<string, unknown> }>;
  extensions?: { idempotency?: { replayed: boolean; fields: Record<string, { replayed: boolean; retryAfter?: number }> } };
}

/** One GraphQL operation over real HTTP, with an Idempotency-Key header when `key` is given. */
export async function graphql(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  options: { key?: string; headers?: Record<string, string> } = {},
): Promise<GraphQLReply> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (options.key !== undefined) headers['idempotency-key'] = options.key;
  const response = await fetch(`${url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, ...(JSON.parse(text) as object) };
}

export const RECORD = `mutation Record($label: String!, $quantity: Int) { record(label: $label, quantity: $quantity) { label runId at quantity tags } }`;
