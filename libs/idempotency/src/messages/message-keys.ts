import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { canonicalBody, sha256 } from '../fingerprint';
import { MAX_KEY_LENGTH } from '../keys/key-source';
import { assertRecordText, textOf } from '../keys/key-text';
import { messageIdOf } from './broker-message';
import type { MessageKeySource, MessageKeySourceItem } from './message-options';

const KEY = 'idempotency key';

function toList<T>(source: T | ReadonlyArray<T>): ReadonlyArray<T> {
  return Array.isArray(source) ? source : [source as T];
}

function isItem(item: unknown): item is MessageKeySourceItem {
  if (typeof item === 'function' || item === 'message-id' || item === 'payload-hash') return true;
  const path = (item as { path?: unknown } | null)?.path;
  return typeof item === 'object' && item !== null && typeof path === 'string' && path !== '' && !path.split('.').includes('');
}

/** Whether a key source names a source only a message has (`'message-id'`, a path): it is checked as a message's. */
export function isMessageKeySource(source: unknown): boolean {
  return toList(source).some((item) => item === 'message-id' || (typeof item === 'object' && item !== null && 'path' in item));
}

/** Fails at start, with the fix, on a key source that no message can have. */
export function assertMessageKeySource(source: unknown, where: string): void {
  const items = toList(source);
  const wrong = items.length === 0 ? [] : items.find((item) => !isItem(item));
  if (wrong === undefined) return;
  throw new IdempotencyConfigurationError(
    `${where}: key ${typeof wrong === 'function' ? 'function' : (JSON.stringify(wrong) ?? typeof wrong)} is not a message key source. Use 'message-id', { path: 'field.inside.payload' }, ` +
      "'payload-hash', a function (data, context) => key, or an array of these.",
  );
}

/** A message as the handler gets it, and the pattern it came with. */
export interface ReceivedMessage {
  pattern: string;
  data: unknown;
  context: unknown;
}

/**
 * The message's key from the first source that yields one, checked like an HTTP key (not empty, at most 255
 * characters, no control characters, well-formed Unicode); `undefined` when no source finds one. A key function
 * that throws throws here: the message is not claimed, and the transport sees the error.
 */
export function findMessageKey(source: MessageKeySource, message: ReceivedMessage): string | undefined {
  for (const item of toList(source)) {
    const key = readKey(item, message);
    if (key !== undefined) return validate(key);
  }
  return undefined;
}

function readKey(item: MessageKeySourceItem, message: ReceivedMessage): string | undefined {
  if (typeof item === 'function') return textOf(item(message.data, message.context), KEY);
  if (item === 'message-id') return messageIdOf(message.context);
  if (item === 'payload-hash') return message.data === undefined ? undefined : payloadHash(message);
  let value: unknown = message.data;
  for (const part of item.path.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
  return textOf(value, KEY);
}

/** sha-256 of the pattern and the canonical payload (object key order does not matter). */
export function payloadHash(message: Pick<ReceivedMessage, 'pattern' | 'data'>): string {
  return sha256('message', message.pattern, canonicalBody(message.data));
}

function validate(key: string): string {
  if (key.length === 0) throw new IdempotencyKeyInvalidException('The idempotency key is empty.');
  if ([...key].length > MAX_KEY_LENGTH) throw new IdempotencyKeyInvalidException(`The idempotency key is longer than ${MAX_KEY_LENGTH} characters.`);
  return assertRecordText(key, KEY);
}
