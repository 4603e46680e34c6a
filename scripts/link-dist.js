// The compiled sample app and test apps import 'nestjs-idempotency' as users do; this link makes
// Node resolve that name to the package built in dist/libs/idempotency.
const { mkdirSync, rmSync, symlinkSync } = require('node:fs');
const { join } = require('node:path');

const modules = join(__dirname, '../dist/node_modules');
mkdirSync(modules, { recursive: true });
rmSync(join(modules, 'nestjs-idempotency'), { force: true, recursive: true });
symlinkSync('../libs/idempotency', join(modules, 'nestjs-idempotency'), 'dir');
