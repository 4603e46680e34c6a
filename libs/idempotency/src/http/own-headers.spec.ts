import { ServerResponse, IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { snapshotHeaders, withOwnHeaders } from './own-headers';

describe('own headers', () => {
  it('snapshots what was set on the response, one entry per value', () => {
    const raw = new ServerResponse(new IncomingMessage(new Socket()));
    raw.setHeader('Access-Control-Allow-Origin', '*');
    raw.setHeader('link', ['</a>', '</b>']);
    expect(snapshotHeaders(raw)).toEqual([
      ['access-control-allow-origin', '*'],
      ['link', '</a>'],
      ['link', '</b>'],
    ]);
    // Fastify's reply adds the headers it holds until the head is written.
    expect(snapshotHeaders({ getHeaders: () => ({ 'x-request-id': 'r1', 'x-count': 2 }) })).toEqual([
      ['x-request-id', 'r1'],
      ['x-count', '2'],
    ]);
  });

  it('adds them to a replacement, whose own values win a clash, and never its Content-Length', () => {
    const replay = {
      status: 201,
      headers: [
        ['content-type', 'application/json'],
        ['x-trace', 'stored'],
      ] as Array<[string, string]>,
      body: Buffer.from('{}'),
    };
    const own = [
      ['x-request-id', 'r2'],
      ['x-trace', 'middleware'],
      ['content-length', '0'],
    ] as const;
    expect(withOwnHeaders(replay, own).headers).toEqual([
      ['x-request-id', 'r2'],
      ['content-type', 'application/json'],
      ['x-trace', 'stored'],
    ]);
    expect(withOwnHeaders(replay, [])).toBe(replay);
  });
});
