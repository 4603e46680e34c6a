#!/usr/bin/env node
import { runCli } from './cli';

// `npx nestjs-idempotency inspect|stats|purge`: see `runCli` and each command's --help.
void runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  interactive: process.stderr.isTTY,
}).then((code) => {
  process.exitCode = code;
});
