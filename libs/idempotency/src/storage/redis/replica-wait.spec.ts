import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import { toReplicaWait, type WaitForReplicas } from './replica-wait';

describe('waitForReplicas, checked at start', () => {
  it('takes a whole number of replicas and a duration', () => {
    expect(toReplicaWait({ count: 1, timeout: '500ms' })).toEqual({ count: 1, timeoutMs: 500 });
    expect(toReplicaWait({ count: 2, timeout: 1000 })).toEqual({ count: 2, timeoutMs: 1000 });
    expect(toReplicaWait(undefined)).toBeUndefined();
  });

  it.each([
    [{ count: 0, timeout: '1s' }, 'waitForReplicas.count: 0 is not a number of replicas'],
    [{ count: 1.5, timeout: '1s' }, 'waitForReplicas.count: 1.5 is not a number of replicas'],
    [{ count: '1', timeout: '1s' }, 'waitForReplicas.count: "1" is not a number of replicas'],
    [{ timeout: '1s' }, 'waitForReplicas.count: undefined is not a number of replicas'],
    // WAIT with a timeout of 0 blocks for ever.
    [{ count: 1, timeout: 0 }, 'Redis store waitForReplicas.timeout: 0 is not a duration (it is zero)'],
    [{ count: 1, timeout: 'soon' }, 'Redis store waitForReplicas.timeout: "soon" is not a duration'],
    [{ count: 1 }, 'Redis store waitForReplicas.timeout: undefined is not a duration'],
  ])('refuses %j with a message that says the fix', (option, message) => {
    expect(() => toReplicaWait(option as unknown as WaitForReplicas)).toThrow(IdempotencyConfigurationError);
    expect(() => toReplicaWait(option as unknown as WaitForReplicas)).toThrow(message);
  });
});
