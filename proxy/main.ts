/**
 * `npm run proxy -- [start|register|status|hash-password] --config FILE [--mode local|gateway]`:
 * the composition root of the protection proxies (the only file of `proxy/` that reads files
 * named on the command line, talks to the terminal and handles signals).
 */
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { StopSignals } from '../runtime/stop-signals.ts';
import { parseProxyArgs, USAGE, type ProxyArgs } from './cli-args.ts';
import { parseProxyConfig, type ProxyConfig } from './config.ts';
import { fetchFailure, fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';
import { hashPassword } from './password.ts';
import { ProtectionProxy } from './protection-proxy.ts';
import { registerIdentities } from './register-command.ts';

async function loadConfig(args: ProxyArgs): Promise<ProxyConfig> {
  const path = args.configPath ?? '';
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ProxyError('PROXY_CONFIG', `cannot read ${path}: ${(err as Error).message}`);
  }
  return parseProxyConfig(text, path, {
    ...(args.mode === undefined ? {} : { mode: args.mode }),
    ...(args.tofu ? { tofu: true } : {}),
  });
}

async function start(args: ProxyArgs): Promise<void> {
  const config = await loadConfig(args);
  const logger = pino({ name: 'e4proxy' });
  // A signal during start-up abandons the start (what was started is stopped) and exits 0, as a
  // stop of a running proxy does: the default action would end the process half-started. A
  // second one, during start-up or a stop that hangs (a broker that never answers), exits 130 at
  // once; a copy of the first (npm forwards one Ctrl-C twice) is not a second one.
  const starting = new AbortController();
  const running: { proxy?: ProtectionProxy } = {};
  const signals = new StopSignals();
  const stop = (signal: NodeJS.Signals): void => {
    const meaning = signals.receive();
    if (meaning === 'copy') return;
    if (meaning === 'again') {
      logger.warn({ signal }, 'stop signal again: exiting at once, without an orderly stop');
      process.exit(130);
    }
    const proxy = running.proxy;
    if (proxy === undefined) {
      logger.info({ signal }, 'stop requested during start-up: start abandoned');
      starting.abort(new Error(`stopped by ${signal} during start-up`));
      return;
    }
    logger.info({ signal }, 'stop requested');
    proxy.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let started: ProtectionProxy;
  try {
    started = await ProtectionProxy.start(config, {
      logger,
      signal: starting.signal,
      newLocalKey: args.newLocalKey,
    });
  } catch (err) {
    // The start's own clean-up has run: nothing is left running.
    if (starting.signal.aborted) process.exit(0);
    throw err;
  }
  if (starting.signal.aborted) {
    await started.close();
    process.exit(0);
  }
  running.proxy = started;
  const listen = started.listenAddress;
  const status = started.statusAddress;
  process.stdout.write(
    `e4 protection proxy (${config.mode}) listening on ${listen.host}:${listen.port}` +
      `${config.listen.tls === undefined ? '' : ' (TLS)'}, upstream ${config.upstream.url}, ` +
      `health http://${status.host}:${status.port}/healthz, metrics /metrics\n`,
  );
}

async function register(args: ProxyArgs): Promise<void> {
  await registerIdentities(
    await loadConfig(args),
    { rotate: args.rotate, replace: args.replace, newLocalKey: args.newLocalKey },
    (line) => process.stdout.write(`${line}\n`),
  );
}

async function status(args: ProxyArgs): Promise<void> {
  const config = await loadConfig(args);
  const host = config.health.host === '0.0.0.0' ? '127.0.0.1' : config.health.host;
  const url = `http://${host}:${config.health.port}/healthz`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new ProxyError(
      ProxyErrorCode.NotRunning,
      `no proxy answers at ${url}: ${fetchFailure(err)} (is it running with this configuration?)`,
      { cause: err },
    );
  }
  process.stdout.write(`${await response.text()}\n`);
  if (!response.ok) process.exitCode = 1;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function main(): Promise<void> {
  const args = parseProxyArgs(process.argv.slice(2));
  if (args === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  switch (args.command) {
    case 'start':
      return start(args);
    case 'register':
      return register(args);
    case 'status':
      return status(args);
    case 'hash-password': {
      const password = await readStdin();
      if (password.length === 0) throw new ProxyError('PROXY_CONFIG', 'empty password');
      process.stdout.write(`${hashPassword(password)}\n`);
      return;
    }
  }
}

main().catch((err: unknown) => {
  // The stable code, as docs/proxies.md names them, for scripts and searches; whatever no part
  // of the proxy recognised is PROXY_INTERNAL.
  const code = ProxyError.is(err) ? err.code : ProxyErrorCode.Internal;
  const message =
    err instanceof Error
      ? ProxyError.is(err)
        ? err.message
        : `unexpected error: ${fsFailure(err)}`
      : String(err);
  process.stderr.write(
    `e4proxy: ${message} [${code}]\n` + (code === ProxyErrorCode.Config ? `${USAGE}\n` : ''),
  );
  process.exit(code === ProxyErrorCode.Config ? 2 : 1);
});
