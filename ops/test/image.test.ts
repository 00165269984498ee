// The Dockerfile and .dockerignore against the code: base image, runtime dependencies, user,
// command, ports, the health check's route, and that the build context holds every file the
// node loads. Also runs ops/docker/healthcheck.mjs against a local HTTP server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../../bin/free-ports.ts';
import { DEFAULT_PORTS, probePaths } from './support/code-facts.ts';
import {
  dockerignoreIncludes,
  filesBelow,
  importClosure,
  parseDockerfile,
  readRepoFile,
  record,
  repoFileExists,
  ROOT,
  scalar,
} from './support/ops-files.ts';

const instructions = parseDockerfile(readRepoFile('Dockerfile'));
const all = (keyword: string): string[] =>
  instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
const last = (keyword: string): string => {
  const found = all(keyword).at(-1);
  assert.ok(found !== undefined, `Dockerfile has no ${keyword}`);
  return found;
};
const packageJson = record(JSON.parse(readRepoFile('package.json')) as unknown, 'package.json');
const HEALTHCHECK_SCRIPT = 'ops/docker/healthcheck.mjs';
/** Files beside the runtime code that the server never reads: tests and the conformance runner. */
const NOT_RUNTIME = [/(^|\/)test\//, /\.test\.ts$/, /^e4\/conformance\//];

/** `["a", "b"]` (exec form) as an array. */
function execForm(args: string, where: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  assert.ok(Array.isArray(parsed), `${where} is not in exec form`);
  return parsed.map((p, i) => scalar(p, `${where}[${i}]`));
}

void describe('Dockerfile', () => {
  void it('builds on a pinned Node 20 bookworm-slim image that satisfies engines', () => {
    const args = new Map(
      all('ARG').map((a) => {
        const [name, value] = a.split('=');
        return [name ?? '', value ?? ''];
      }),
    );
    for (const from of all('FROM')) {
      const image = (from.split(/\s+/)[0] ?? '').replace(
        /\$\{(\w+)\}/g,
        (_, name: string) => args.get(name) ?? '',
      );
      const match = /^node:(\d+)\.(\d+)\.(\d+)-bookworm-slim$/.exec(image);
      assert.ok(match !== null, `FROM ${image}: expected node:<x.y.z>-bookworm-slim`);
      const engines = record(packageJson['engines'], 'engines');
      const floor = /^>=(\d+)\.(\d+)/.exec(scalar(engines['node'], 'engines.node'));
      assert.equal(match[1], '20', 'Node major');
      assert.ok(Number(match[2]) >= Number(floor?.[2] ?? 0), `${image} is older than engines`);
    }
  });

  void it('installs production dependencies only, and tsx is one of them', () => {
    assert.ok(all('RUN').some((r) => r.includes('npm ci --omit=dev')));
    const deps = record(packageJson['dependencies'], 'dependencies');
    const devDeps = record(packageJson['devDependencies'], 'devDependencies');
    assert.ok('tsx' in deps, 'tsx runs every process: it must be a dependency');
    assert.ok(!('tsx' in devDeps));
  });

  void it('runs npm start as a non-root user', () => {
    const user = last('USER').split(':')[0] ?? '';
    assert.ok(!['', 'root', '0'].includes(user), `USER ${user}`);
    const command = execForm(last('CMD'), 'CMD');
    const scripts = record(packageJson['scripts'], 'scripts');
    // The script execs node (so that npm's signals reach it); the image runs node itself.
    const start = scalar(scripts['start'], 'scripts.start').replace(/^exec /, '');
    assert.equal(command.join(' '), start);
  });

  void it('records the build (E4C2_BUILD) where the version label reads it, and compose passes it', () => {
    assert.ok(
      all('ARG').some((a) => a.split('=')[0] === 'E4C2_BUILD'),
      'ARG E4C2_BUILD',
    );
    // bin/build-version.ts reads BUILD_ID beside package.json (WORKDIR /app).
    assert.ok(
      all('RUN').some((r) => r.includes('"$E4C2_BUILD" > BUILD_ID')),
      'RUN … > BUILD_ID',
    );
    assert.ok(readRepoFile('bin/build-version.ts').includes("join(root, 'BUILD_ID')"));
    assert.match(
      readRepoFile('docker-compose.ha.yml'),
      /args:\n\s+(#.*\n\s+)*E4C2_BUILD: \$\{E4C2_BUILD:-\}/,
    );
  });

  void it('exposes the default gRPC, HTTP and metrics ports', () => {
    const exposed = all('EXPOSE')
      .flatMap((e) => e.split(/\s+/))
      .map(Number)
      .sort((a, b) => a - b);
    const defaults = [DEFAULT_PORTS.grpc, DEFAULT_PORTS.http, DEFAULT_PORTS.metrics];
    assert.deepEqual(
      exposed,
      defaults.sort((a, b) => a - b),
    );
  });

  void it('health-checks a probe route the API serves', () => {
    const healthcheck = last('HEALTHCHECK');
    const cmd = /\bCMD\s+(\[.*\])\s*$/.exec(healthcheck)?.[1];
    assert.ok(cmd !== undefined, 'HEALTHCHECK CMD must be in exec form');
    const command = execForm(cmd, 'HEALTHCHECK');
    assert.deepEqual(command.slice(0, 2), ['node', HEALTHCHECK_SCRIPT]);
    assert.ok(repoFileExists(HEALTHCHECK_SCRIPT));
    const path = command[2] ?? '';
    assert.equal(path, '/healthz');
    assert.ok(probePaths().includes(path), `${path} is not in api/http/routes.ts`);
  });
});

void describe('.dockerignore', () => {
  const included = dockerignoreIncludes(readRepoFile('.dockerignore'));

  void it('sends every file the node loads, and every runtime asset beside them', () => {
    const closure = importClosure('bin/start.ts');
    assert.ok(closure.length > 20, `only ${closure.length} files reachable from bin/start.ts`);
    for (const file of closure) assert.ok(included(file), `${file} is left out of the image`);
    // Files read at run time rather than imported: migrations, .proto files, and the like.
    const dirs = new Set(closure.map((f) => f.split('/')[0] ?? ''));
    for (const dir of dirs) {
      if (!dir.includes('.')) {
        for (const file of filesBelow(dir)) {
          if (NOT_RUNTIME.some((re) => re.test(file))) continue;
          assert.ok(included(file), `${file} is left out of the image`);
        }
      }
    }
    // The web console, read by the API node at start-up.
    const consoleFiles = [
      'web/index.html',
      'web/main.js',
      'web/console.js',
      'web/sse.js',
      'web/console.css',
    ];
    for (const file of ['package.json', 'package-lock.json', HEALTHCHECK_SCRIPT, ...consoleFiles]) {
      assert.ok(included(file), `${file} is left out of the image`);
    }
  });

  void it('keeps secrets, data, tests and tooling out of the build context', () => {
    for (const file of [
      'ops/secrets/kek.key',
      'ops/secrets/c2-config.json',
      'data/kek.key',
      'node_modules/tsx/package.json',
      '.git/config',
      'cluster/test/config/load-config.test.ts',
      'api/test/support/api-harness.ts',
      'docker-compose.ha.yml',
      'docs/deployment.md',
    ]) {
      assert.ok(!included(file), `${file} reaches the image`);
    }
  });
});

void describe('ops/docker/healthcheck.mjs', () => {
  const run = promisify(execFile);
  let server: Server;
  let port = 0;
  /** A port nothing listens on, drawn below the ephemeral range so no connection takes it. */
  let quietPort = 0;

  before(async () => {
    quietPort = await freePort();
    server = createServer((req, res) => {
      res.statusCode = req.url === '/healthz' ? 200 : 503;
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.close();
  });

  /** Exit code of the probe with `env` (on top of a clean environment). */
  async function probe(path: string, env: Record<string, string>): Promise<number> {
    try {
      await run(process.execPath, [HEALTHCHECK_SCRIPT, path], {
        cwd: ROOT,
        env: { PATH: process.env['PATH'] ?? '', ...env },
        timeout: 20_000,
      });
      return 0;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      return typeof code === 'number' ? code : -1;
    }
  }

  void it('passes on 2xx from the HTTP listener, fails on 503 and when nothing listens', async () => {
    assert.equal(await probe('/healthz', { E4C2_HTTP_ADDR: `0.0.0.0:${port}` }), 0);
    assert.equal(await probe('/readyz', { E4C2_HTTP_ADDR: `127.0.0.1:${port}` }), 1);
    assert.equal(await probe('/healthz', { E4C2_HTTP_ADDR: `127.0.0.1:${quietPort}` }), 1);
  });

  void it('probes the metrics listener of a worker', async () => {
    const env = { E4C2_ROLE: 'worker', E4C2_METRICS_ADDR: `0.0.0.0:${port}` };
    assert.equal(await probe('/healthz', { ...env, E4C2_HTTP_ADDR: '127.0.0.1:1' }), 0);
  });

  void it('falls back to plain HTTP when TLS is configured but not spoken', async () => {
    const env = { E4C2_HTTP_ADDR: `127.0.0.1:${port}`, E4C2_TLS_CERT: '/run/secrets/c2_tls_cert' };
    assert.equal(await probe('/healthz', env), 0);
  });
});
