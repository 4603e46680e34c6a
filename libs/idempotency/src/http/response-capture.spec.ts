import { createServer, type Server, type ServerResponse } from 'node:http';
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

  it('sends what the framework ended with once beforeSend has settled, and drops a second answer', async () => {
    onRequest = (response) => {
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

  it('lets go of its hooks once the response is sent, while the response itself is still referenced', async () => {
    // The hooks lead to the claim and the handler's result: a response kept alive must not keep them.
    let kept: ServerResponse | undefined;
    let hooksRef: WeakRef<ResponseHooks> | undefined;
    onRequest = (response) => {
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
