import { createServer, type Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { holdResponse, type ResponseHooks } from './response-capture';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('holdResponse', () => {
  let server: Server;
  let url: string;
  let onRequest: (response: ServerResponse) => void;

  beforeAll(async () => {
    server = createServer((_request, response) => onRequest(response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  // Fastify's response keeps Node's prototype, Express gives each its app's, and a layer (compression) may replace its methods.
  describe.each([
    ['on the prototype Node made it with', () => undefined],
    [
      'given a prototype after it was made, as Express does',
      (response: ServerResponse) => {
        Object.setPrototypeOf(response, Object.create(ServerResponse.prototype) as object);
      },
    ],
    [
      'whose end() another layer replaced',
      (response: ServerResponse) => {
        Object.setPrototypeOf(response, Object.create(ServerResponse.prototype) as object);
        const end = response.end.bind(response);
        response.end = ((...args: Parameters<ServerResponse['end']>) => end(...args)) as ServerResponse['end'];
      },
    ],
  ])('a response %s', (_name, reprototype: (response: ServerResponse) => void) => {
    it('sends what the framework ended with once beforeSend has settled, and drops a second answer', async () => {
      onRequest = (response) => {
        reprototype(response);
        holdResponse(response, Number.POSITIVE_INFINITY, { beforeSend: () => Promise.resolve(undefined), onClose: () => undefined });
        response.statusCode = 201;
        response.end('first');
        response.statusCode = 500;
        response.end('second');
      };
      const answer = await fetch(url);
      expect(answer.status).toBe(201);
      expect(await answer.text()).toBe('first');
    });

    it('holds a response held twice, deciding the inner hold first', async () => {
      const seen: string[] = [];
      const hooks = (name: string): ResponseHooks => ({
        beforeSend: (captured) => (seen.push(`${name} ${captured.status} ${captured.body.toString()}`), Promise.resolve(undefined)),
        onClose: () => undefined,
      });
      onRequest = (response) => {
        reprototype(response);
        holdResponse(response, Number.POSITIVE_INFINITY, hooks('outer'));
        holdResponse(response, Number.POSITIVE_INFINITY, hooks('inner'));
        response.statusCode = 202;
        response.end('once');
      };
      const answer = await fetch(url);
      expect([answer.status, await answer.text()]).toEqual([202, 'once']);
      expect(seen).toEqual(['inner 202 once', 'outer 202 once']);
    });

    it('lets go of its hooks once the response is sent, while the response itself is still referenced', async () => {
      // The hooks lead to the claim and the handler's result: a response kept alive must not keep them.
      let kept: ServerResponse | undefined;
      let hooksRef: WeakRef<ResponseHooks> | undefined;
      onRequest = (response) => {
        reprototype(response);
        const hooks: ResponseHooks = { beforeSend: () => Promise.resolve(undefined), onClose: () => undefined };
        hooksRef = new WeakRef(hooks);
        kept = response;
        holdResponse(response, Number.POSITIVE_INFINITY, hooks);
        response.end('answer');
      };
      expect(await (await fetch(url)).text()).toBe('answer');
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      expect(kept?.writableEnded).toBe(true);
      expect(hooksRef?.deref()).toBeUndefined();
    });
  });
});
