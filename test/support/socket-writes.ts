import { Socket } from 'node:net';

/** Counts the socket writes of every connection while `work` runs: corked messages go out as one `_writev`. */
export async function countSocketWrites(work: () => Promise<unknown>): Promise<number> {
  const socket = Socket.prototype as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>;
  const original = { _write: socket._write, _writev: socket._writev };
  let writes = 0;
  for (const method of ['_write', '_writev'] as const) {
    socket[method] = function (this: unknown, ...args: unknown[]) {
      writes++;
      return original[method].apply(this, args);
    };
  }
  try {
    await work();
  } finally {
    Object.assign(socket, original);
  }
  return writes;
}
