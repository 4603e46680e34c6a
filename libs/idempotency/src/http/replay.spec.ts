import { toReplay, toStoredResponse } from './replay';

describe('replay', () => {
  it('stores only the allow-listed headers, never set-cookie', () => {
    const stored = toStoredResponse(
      {
        status: 201,
        headers: [
          ['content-type', 'application/json'],
          ['set-cookie', 'a=1'],
          ['x-trace', '1'],
          ['location', '/a'],
        ],
        body: Buffer.from('{}'),
        truncated: false,
      },
      new Set(['content-type', 'location', 'set-cookie']),
    );
    expect(stored.headers).toEqual([
      ['content-type', 'application/json'],
      ['location', '/a'],
    ]);
  });

  it('replays the bytes with Idempotent-Replayed, and no body for a 204', () => {
    const replay = toReplay({ status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from([0xe2, 0x82, 0xac]) });
    expect(replay.headers).toEqual([
      ['content-type', 'text/plain'],
      ['idempotent-replayed', 'true'],
    ]);
    expect(replay.body).toEqual(Buffer.from([0xe2, 0x82, 0xac]));
    expect(toReplay({ status: 204, headers: [], body: Buffer.from('x') }).body).toHaveLength(0);
  });
});
