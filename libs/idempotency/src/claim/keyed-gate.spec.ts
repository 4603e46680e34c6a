import { setTimeout as sleep } from 'node:timers/promises';
import { KeyedGate } from './keyed-gate';

describe('KeyedGate', () => {
  it('lets one holder per key in at a time, in arrival order', async () => {
    const gate = new KeyedGate();
    const order: string[] = [];
    const hold = async (name: string, ms: number) => {
      const turn = await gate.acquire('k', 1000);
      order.push(`in ${name}`);
      await sleep(ms);
      order.push(`out ${name}`);
      turn!.leave();
    };
    await Promise.all([hold('a', 30), hold('b', 10), hold('c', 0)]);
    expect(order).toEqual(['in a', 'out a', 'in b', 'out b', 'in c', 'out c']);
  });

  it('does not make other keys wait', async () => {
    const gate = new KeyedGate();
    const a = await gate.acquire('a', 1000);
    expect(await gate.acquire('b', 0)).toMatchObject({ waited: false });
    a!.leave();
  });

  it('gives up after the timeout without blocking those queued behind', async () => {
    const gate = new KeyedGate();
    const first = await gate.acquire('k', 1000);
    const impatient = gate.acquire('k', 20);
    const patient = gate.acquire('k', 1000);
    expect(await impatient).toBeUndefined();
    first!.leave();
    expect(await patient).toMatchObject({ waited: true });
  });

  it('keeps the key held after the last in line gave up: the next arrival still waits for the holder', async () => {
    const gate = new KeyedGate();
    const first = await gate.acquire('k', 1000);
    expect(await gate.acquire('k', 20)).toBeUndefined();
    let entered = false;
    const next = gate.acquire('k', 1000).then((turn) => {
      entered = true;
      return turn;
    });
    await sleep(30);
    expect(entered).toBe(false);
    first!.leave();
    expect(await next).toMatchObject({ waited: true });
  });
});
