import {
  BadRequestException,
  Body,
  type CanActivate,
  type ExecutionContext,
  UseGuards,
  Controller,
  HttpCode,
  Headers,
  HttpException,
  Injectable,
  InternalServerErrorException,
  type PipeTransform,
  Post,
  Res,
  StreamableFile,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { from } from 'rxjs';
import { Column, CreateDateColumn, DataSource, Entity, type EntityManager, PrimaryGeneratedColumn } from 'typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';

/** One row per handler execution: the side effect the suites count. */
@Entity({ name: 'effects' })
export class Effect {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'text' })
  label!: string;

  // The column type each engine gives a date (timestamptz is PostgreSQL's alone).
  @CreateDateColumn()
  createdAt!: Date;
}

export interface Work {
  label: string;
  /** Sleeps before the effect. */
  ms?: number;
  /** Sleeps after the effect. */
  msAfter?: number;
  status?: number;
  fail?: boolean;
  invalid?: boolean;
  eventId?: string;
  id?: string;
}

interface TenantRequest {
  body: Work;
  headers: Record<string, string | undefined>;
}

/** What Express's response and Fastify's reply have in common, and where they differ. */
interface Reply {
  status(code: number): unknown;
  header(name: string, value: string): unknown;
  /** Express */
  json?(body: unknown): unknown;
  /** Fastify */
  send?(body: unknown): unknown;
  /** Fastify's Node response; Express's response is Node's. */
  raw?: ServerResponse;
}

/** Signs every request in as the user named by the X-User header. */
@Injectable()
class SignedIn implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string>; user?: { id: string } }>();
    request.user = { id: request.headers['x-user'] ?? 'anonymous' };
    return true;
  }
}

@Injectable()
class RejectInvalid implements PipeTransform<Work> {
  transform(value: Work): Work {
    if (value?.invalid) throw new BadRequestException('invalid body');
    return value;
  }
}

/** Routes that exercise every row of the README's status-code table; each execution inserts one effect. */
@Controller('t')
export class EffectsController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async effect(work: Work, manager: EntityManager = this.dataSource.manager) {
    if (work.ms) await sleep(work.ms);
    const saved = await manager.getRepository(Effect).save({ label: work.label });
    if (work.msAfter) await sleep(work.msAfter);
    return { id: saved.id, label: work.label };
  }

  @Post('basic')
  @Idempotent()
  basic(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('wait')
  @Idempotent({ onInFlight: 'wait', waitTimeout: '5s' })
  wait(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('wait-short')
  @Idempotent({ onInFlight: 'wait', waitTimeout: '300ms' })
  waitShort(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('tx')
  @Idempotent({ transaction: true, waitTimeout: '5s' })
  async tx(@Body() work: Work, @IdempotentTransaction() em: EntityManager) {
    const result = await this.effect(work, em);
    if (work.fail) throw new InternalServerErrorException('failed after writing');
    return result;
  }

  /** Takes advisory lock 4242 inside the claim's transaction; X-Fail: 1 fails (and rolls back) after `ms`. */
  @Post('tx-lock')
  @Idempotent({ transaction: true, waitTimeout: '2s', fingerprint: false })
  async txLock(@Body() work: Work, @Headers('x-fail') fail: string | undefined, @IdempotentTransaction() em: EntityManager) {
    if (work.ms) await sleep(work.ms);
    if (fail === '1') throw new InternalServerErrorException('failed on purpose');
    await em.query('SELECT pg_advisory_xact_lock(4242)');
    return this.effect({ label: work.label }, em);
  }

  @Post('tx-short')
  @Idempotent({ transaction: true, waitTimeout: '300ms' })
  txShort(@Body() work: Work, @IdempotentTransaction() em: EntityManager) {
    return this.effect(work, em);
  }

  @Post('tx-stuck')
  @Idempotent({ transaction: true, lease: '1s', maxLease: '1s' })
  txStuck(@Body() work: Work, @IdempotentTransaction() em: EntityManager) {
    return this.effect(work, em);
  }

  @Post('tx-optional')
  @Idempotent({ transaction: true, required: false })
  txOptional(@Body() work: Work, @IdempotentTransaction() em: EntityManager) {
    return this.effect(work, em);
  }

  @Post('status')
  @Idempotent()
  async status(@Body() work: Work, @Res({ passthrough: true }) reply: Reply) {
    const result = await this.effect(work);
    const code = work.status ?? 200;
    if (code >= 400) throw new HttpException({ message: `answered ${code}`, label: work.label }, code);
    reply.status(code);
    return result;
  }

  @Post('crash')
  @Idempotent()
  async crash(@Body() work: Work) {
    await this.effect(work);
    throw new Error('the handler failed');
  }

  @Post('text')
  @Idempotent()
  async text(@Body() work: Work) {
    await this.effect(work);
    return `plain text for ${work.label}`;
  }

  @Post('buffer')
  @Idempotent()
  async buffer(@Body() work: Work) {
    await this.effect(work);
    return Buffer.from([0x00, 0xff, 0x10, 0x80, ...Buffer.from(work.label)]);
  }

  @Post('empty')
  @Idempotent()
  @HttpCode(204)
  async empty(@Body() work: Work) {
    await this.effect(work);
  }

  /** Headers set by the handler itself (static `@Header()`s are Nest's, on every response). */
  @Post('headers')
  @Idempotent({ replayHeaders: ['X-Custom'] })
  async headers(@Body() work: Work, @Res({ passthrough: true }) reply: Reply) {
    const result = await this.effect(work);
    for (const [name, value] of Object.entries({
      Location: `/t/orders/${result.id}`,
      ETag: `"${result.id}"`,
      'X-Custom': `kept-${result.id}`,
      'X-Other': 'dropped',
      'Set-Cookie': 'session=secret',
    })) {
      reply.header(name, value);
    }
    return result;
  }

  @Post('optional')
  @Idempotent({ required: false })
  optional(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('payload')
  @Idempotent({ key: 'payload-hash' })
  payload(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('custom')
  @Idempotent({
    key: (req: TenantRequest) => req.body.eventId,
    scope: (req: TenantRequest) => req.headers['x-tenant'],
  })
  custom(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('header-x')
  @Idempotent({ key: { header: 'X-Request-Id' } })
  headerX(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('multi')
  @Idempotent({ key: [{ header: 'X-Request-Id' }, 'payload-hash'] })
  multi(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('stripe')
  @Idempotent({ key: 'stripe' })
  stripe(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('stream')
  @Idempotent()
  async stream(@Body() work: Work) {
    await this.effect(work);
    return new StreamableFile(Buffer.from('streamed'));
  }

  @Post('large')
  @Idempotent({ maxResponseBytes: 1000 })
  async large(@Body() work: Work) {
    await this.effect(work);
    return { data: 'x'.repeat(2000) };
  }

  @Post('nofp')
  @Idempotent({ fingerprint: false })
  noFingerprint(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('piped')
  @Idempotent()
  piped(@Body(RejectInvalid) work: Work) {
    return this.effect(work);
  }

  @Post('store-if')
  @Idempotent({ storeIf: (status) => status < 300 })
  async storeIf(@Body() work: Work) {
    await this.effect(work);
    throw new BadRequestException('not stored');
  }

  @Post('bad-header')
  @Idempotent()
  async badHeader(@Body() work: Work, @Res({ passthrough: true }) reply: Reply) {
    await this.effect(work);
    reply.header('X-Bad', 'a\u0001b');
    return { ok: true };
  }

  /** Answers twice: through the response object, then by returning a value. */
  @Post('double')
  @Idempotent()
  async double(@Body() work: Work, @Res({ passthrough: true }) reply: Reply) {
    await this.effect(work);
    reply.status(201);
    if (reply.json) reply.json({ sentBy: 'handler' });
    else reply.send?.({ sentBy: 'handler' });
    return { sentBy: 'nest' };
  }

  /** Writes the body in parts on Node's response. */
  @Post('written')
  @Idempotent()
  async written(@Body() work: Work, @Res() reply: Reply) {
    await this.effect(work);
    const raw = reply.raw ?? (reply as unknown as ServerResponse);
    raw.writeHead(200, { 'content-type': 'text/plain' });
    raw.write('part one, ');
    raw.end('part two');
  }

  /** Sends 202 through the response object, then fails: Nest's exception filter answers again. */
  @Post('sent-then-thrown')
  @Idempotent()
  async sentThenThrown(@Body() work: Work, @Res() reply: Reply) {
    await this.effect(work);
    reply.status(202);
    if (reply.json) reply.json({ accepted: true });
    else reply.send?.({ accepted: true });
    throw new Error('after answering');
  }

  /** Writes a 500 in parts, past maxResponseBytes. */
  @Post('large-written')
  @Idempotent({ maxResponseBytes: 1000 })
  async largeWritten(@Body() work: Work, @Res() reply: Reply) {
    await this.effect(work);
    const raw = reply.raw ?? (reply as unknown as ServerResponse);
    raw.writeHead(500, { 'content-type': 'text/plain', 'content-length': '3000' });
    for (let part = 0; part < 3; part++) raw.write('x'.repeat(1000));
    raw.end();
  }

  @Post('observable')
  @Idempotent()
  observable(@Body() work: Work) {
    return from(this.effect(work));
  }

  @Post('items/:id/cancel')
  @Idempotent({ key: ['header', 'payload-hash'] })
  cancel(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('authed')
  @Idempotent()
  @UseGuards(SignedIn)
  authed(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('authed-scoped')
  @Idempotent({ scope: (req: { user: { id: string } }) => req.user.id })
  @UseGuards(SignedIn)
  authedScoped(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('lease')
  @Idempotent({ lease: '1s', maxLease: '1s' })
  lease(@Body() work: Work) {
    return this.effect(work);
  }

  /** Bodies may differ (no fingerprint), so a retry can be quicker than the attempt it takes over. */
  @Post('lease-any')
  @Idempotent({ lease: '1s', maxLease: '1s', fingerprint: false })
  leaseAny(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('renew')
  @Idempotent({ lease: '1s', maxLease: '10s' })
  renew(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('ttl')
  @Idempotent({ ttl: '1s' })
  ttl(@Body() work: Work) {
    return this.effect(work);
  }
}

/** `@Idempotent()` on the class applies to each route. */
@Controller('class-level')
@Idempotent()
export class ClassLevelController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Post('a')
  async a(@Body() work: Work) {
    const saved = await this.dataSource.getRepository(Effect).save({ label: work.label });
    return { id: saved.id };
  }
}
