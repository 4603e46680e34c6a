/** An array whose items are made on its first use (spread, index, `length`, iteration; `Array.isArray` is true). */
export function lazyList<T>(load: () => T[]): T[] {
  const items: T[] = [];
  let loaded = false;
  const fill = () => {
    if (loaded) return;
    items.push(...load());
    loaded = true;
  };
  return new Proxy(items, {
    get: (target, property, receiver) => (fill(), Reflect.get(target, property, receiver) as unknown),
    has: (target, property) => (fill(), Reflect.has(target, property)),
    ownKeys: (target) => (fill(), Reflect.ownKeys(target)),
    getOwnPropertyDescriptor: (target, property) => (fill(), Reflect.getOwnPropertyDescriptor(target, property)),
    set: (target, property, value, receiver) => (fill(), Reflect.set(target, property, value, receiver)),
    defineProperty: (target, property, descriptor) => (fill(), Reflect.defineProperty(target, property, descriptor)),
    deleteProperty: (target, property) => (fill(), Reflect.deleteProperty(target, property)),
  });
}
