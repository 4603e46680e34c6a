import { type CallHandler, Controller, Injectable, type NestInterceptor, Post, UseInterceptors } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import { Idempotent } from './idempotent.decorator';

@Injectable()
class OwnInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler) {
    return next.handle();
  }
}

const interceptorsOf = (target: object): unknown => Reflect.getMetadata(INTERCEPTORS_METADATA, target);
const handler = (controller: { prototype: object }, name: string): object => (controller.prototype as Record<string, object>)[name];

describe('@Idempotent() binds the interceptor where it is', () => {
  it('on a handler: ahead of the handler’s own interceptors, whichever decorator comes first; not on the class', () => {
    @Controller()
    @UseInterceptors(OwnInterceptor)
    class Orders {
      @Post('a') @Idempotent() @UseInterceptors(OwnInterceptor) a() {}
      @Post('b') @UseInterceptors(OwnInterceptor) @Idempotent() b() {}
      @Post('c') c() {}
    }
    expect(interceptorsOf(handler(Orders, 'a'))).toEqual([IdempotencyInterceptor, OwnInterceptor]);
    expect(interceptorsOf(handler(Orders, 'b'))).toEqual([IdempotencyInterceptor, OwnInterceptor]);
    expect(interceptorsOf(handler(Orders, 'c'))).toBeUndefined();
    expect(interceptorsOf(Orders)).toEqual([OwnInterceptor]);
  });

  it('on a class: ahead of the class’s own interceptors, whichever decorator comes first', () => {
    @Controller()
    @Idempotent()
    @UseInterceptors(OwnInterceptor)
    class Marked {}
    @Controller()
    @UseInterceptors(OwnInterceptor)
    @Idempotent()
    class MarkedFirst {}
    expect(interceptorsOf(Marked)).toEqual([IdempotencyInterceptor, OwnInterceptor]);
    expect(interceptorsOf(MarkedFirst)).toEqual([IdempotencyInterceptor, OwnInterceptor]);
  });

  it('once per handler or class, however often it is applied', () => {
    class Twice {
      @Idempotent() @Idempotent({ key: 'stripe' }) a() {}
    }
    expect(interceptorsOf(handler(Twice, 'a'))).toEqual([IdempotencyInterceptor]);
  });
});
