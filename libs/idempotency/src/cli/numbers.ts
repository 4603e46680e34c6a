import { UsageError } from './cli-errors';

/** An option's value as a whole number of at least 1, or a `UsageError` that names the option. */
export function positiveInteger(value: string, option: string): number {
  const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < 1) throw new UsageError(`${option} takes a whole number of at least 1, not ${JSON.stringify(value)}.`);
  return parsed;
}
