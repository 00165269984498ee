// docker-compose.ha.yml against the code, without a Docker engine: setting names and values (the
// real loadConfig), ports, health checks, restart policies, sites, Redis roles, secrets, and the
// files it mounts (haproxy.cfg, mosquitto.conf, prometheus.yml).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { loadConfig, type Config } from '../../cluster/config/index.ts';
import { defaultServiceName } from '../../cluster/telemetry/index.ts';
import {
  DEFAULT_PORTS,
  FILE_KEYS,
  GRPC_HEALTH_SERVICES,
  isStandardEnvName,
  MQTT_PORT,
  PENDING_ENV_NAMES,
  PENDING_FILE_KEYS,
  probePaths,
  SECRET_ENV_NAMES,
  SECRET_FILE_KEYS,
  SETTING_ENV_NAMES,
} from './support/code-facts.ts';
import {
  flagValue,
  haproxySection,
  isRecord,
  list,
  loadCompose,
  parseHaproxy,
  parseYaml,
  readRepoFile,
  record,
  ROOT,
  scalar,
  scalars,
  type ComposeService,
} from './support/ops-files.ts';

const compose = loadCompose();
const services = [...compose.services.values()];
const service = (name: string): ComposeService => {
  const found = compose.services.get(name);
  assert.ok(found !== undefined, `docker-compose.ha.yml has no service ${name}`);
  return found;
};
const EXAMPLE_CONFIG = 'ops/secrets/c2-config.example.json';
const exampleConfigText = readRepoFile(EXAMPLE_CONFIG);

/** C2 processes: the services built from this repository's Dockerfile. */
const c2 = services.filter((s) => s.raw['build'] !== undefined);
const role = (s: ComposeService): string => s.labels['e4c2.role'] ?? '';
const site = (s: ComposeService): string => s.labels['e4c2.site'] ?? '';
const apis = c2.filter((s) => s.environment['E4C2_ROLE'] === 'api');
const workers = c2.filter((s) => s.environment['E4C2_ROLE'] === 'worker');

/** Host names of `redis://` URLs. */
const hostsOf = (urls: readonly string[]): string[] => urls.map((u) => new URL(u).hostname);

/** A service's env without pending names that SETTINGS does not have yet (loadConfig rejects them). */
function settingsEnv(s: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(s.environment).filter(
      ([name]) => SETTING_ENV_NAMES.has(name) || !PENDING_ENV_NAMES.includes(name),
    ),
  );
}

/** The example config file without pending keys that SETTINGS does not have yet. */
function settingsFileText(): string {
  const parsed = record(JSON.parse(exampleConfigText) as unknown, EXAMPLE_CONFIG);
  const drop = PENDING_FILE_KEYS.filter((k) => !FILE_KEYS.has(k));
  for (const key of drop) {
    const [section, leaf] = key.split('.');
    const holder = section === undefined ? undefined : parsed[section];
    if (isRecord(holder) && leaf !== undefined) holder[leaf] = undefined;
  }
  return JSON.stringify(parsed);
}

/** loadConfig as the process in `s` runs it (its env, the example secret config file). */
function configOf(s: ComposeService): Config {
  return loadConfig(settingsEnv(s), settingsFileText());
}

/** Leaf keys of a JSON object, dotted. */
function leafKeys(value: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(value).flatMap(([k, v]) =>
    isRecord(v) ? leafKeys(v, `${prefix}${k}.`) : [`${prefix}${k}`],
  );
}

void describe('docker-compose.ha.yml: services', () => {
  void it('parses, and every service has a health check and a restart policy', () => {
    assert.ok(services.length >= 12, `only ${services.length} services`);
    for (const s of services) {
      const hc = record(s.raw['healthcheck'], `${s.name}.healthcheck`);
      assert.notEqual(hc['disable'], true, `${s.name}: health check disabled`);
      const test = scalars(hc['test'], `${s.name}.healthcheck.test`);
      assert.ok(['CMD', 'CMD-SHELL'].includes(test[0] ?? ''), `${s.name}: test must be CMD form`);
      assert.ok(test.length >= 2, `${s.name}: empty health check`);
      const restart = scalar(s.raw['restart'], `${s.name}.restart`);
      assert.ok(
        ['always', 'unless-stopped', 'on-failure'].includes(restart),
        `${s.name}: restart ${restart}`,
      );
    }
  });

  void it('pins every image by a version tag, never latest', () => {
    for (const s of services) {
      assert.ok(s.image !== undefined, `${s.name}: no image`);
      const match = /^(?<repo>[^:@]+(?::\d+)?[^:@]*):(?<tag>[\w][\w.-]*)$/.exec(s.image);
      const tag = match?.groups?.['tag'];
      assert.ok(tag !== undefined, `${s.name}: image ${s.image} has no tag`);
      assert.notEqual(tag, 'latest', `${s.name}: image ${s.image}`);
      // Pulled images need a version in the tag; our own image is built from this tree.
      if (s.raw['build'] === undefined) assert.match(tag, /\d/, `${s.name}: image ${s.image}`);
    }
  });

  void it('runs at least 2 API nodes and 2 workers, spread over at least 2 sites', () => {
    assert.ok(apis.length >= 2, `${apis.length} API nodes`);
    assert.ok(workers.length >= 2, `${workers.length} workers`);
    assert.ok(new Set(apis.map(site)).size >= 2, 'API nodes are all in one site');
    assert.ok(new Set(workers.map(site)).size >= 2, 'workers are all in one site');
    for (const s of c2) {
      assert.equal(role(s), s.environment['E4C2_ROLE'], `${s.name}: e4c2.role label`);
      assert.notEqual(site(s), '', `${s.name}: no e4c2.site label`);
    }
    for (const s of services) assert.notEqual(site(s), '', `${s.name}: no e4c2.site label`);
  });

  void it('runs every C2 process as the same image, named after its service', () => {
    assert.equal(new Set(c2.map((s) => s.image)).size, 1, 'C2 services use different images');
    for (const s of c2) {
      assert.equal(s.environment['E4C2_NODE_ID'], s.name, `${s.name}: E4C2_NODE_ID`);
      assert.equal(s.raw['init'], true, `${s.name}: init (signals, zombies)`);
      assert.deepEqual(s.ports, [], `${s.name}: C2 nodes are reached through the load balancers`);
    }
  });

  void it('gates start-up on healthy Postgres, queue Redis and broker; every dependency exists', () => {
    for (const s of services) {
      const deps = s.raw['depends_on'];
      if (deps === undefined) continue;
      for (const [target, spec] of Object.entries(record(deps, `${s.name}.depends_on`))) {
        const dep = service(target);
        const condition = scalar(
          record(spec, `${s.name}.depends_on.${target}`)['condition'],
          target,
        );
        if (condition === 'service_healthy') {
          assert.ok(dep.raw['healthcheck'] !== undefined, `${target} has no health check`);
        }
      }
    }
    for (const s of c2) {
      const deps = record(s.raw['depends_on'], `${s.name}.depends_on`);
      for (const needed of ['postgres', 'redis-queue', 'mosquitto']) {
        const spec = record(deps[needed], `${s.name}.depends_on.${needed}`);
        assert.equal(spec['condition'], 'service_healthy', `${s.name} -> ${needed}`);
      }
    }
  });

  void it('keeps databases and queues off the edge network, unpublished', () => {
    const networks = record(compose.raw['networks'], 'networks');
    assert.equal(record(networks['backend'], 'networks.backend')['internal'], true);
    for (const name of ['postgres', 'redis-queue', 'redlock-1', 'redlock-2', 'redlock-3']) {
      const s = service(name);
      assert.deepEqual(s.networks, ['backend'], `${name} networks`);
      assert.deepEqual(s.ports, [], `${name} publishes ports`);
    }
    for (const s of services) {
      for (const n of s.networks) assert.ok(n in networks, `${s.name}: network ${n} undeclared`);
    }
  });

  void it('keeps PostgreSQL and every Redis on a named volume', () => {
    const declared = Object.keys(record(compose.raw['volumes'], 'volumes'));
    const dataVolume = (s: ComposeService, target: string): string => {
      const mount = s.volumes.find((v) => v.split(':')[1] === target);
      assert.ok(mount !== undefined, `${s.name}: nothing mounted at ${target}`);
      const source = mount.split(':')[0] ?? '';
      assert.ok(declared.includes(source), `${s.name}: ${source} is not a named volume`);
      return source;
    };
    dataVolume(service('postgres'), '/var/lib/postgresql/data');
    dataVolume(service('mosquitto'), '/mosquitto/data');
    const redisVolumes = ['redis-queue', 'redlock-1', 'redlock-2', 'redlock-3'].map((n) =>
      dataVolume(service(n), '/data'),
    );
    assert.equal(new Set(redisVolumes).size, 4, 'two Redis instances share a volume');
  });
});

void describe('docker-compose.ha.yml: C2 settings', () => {
  void it('uses only known settings (or flagged pending ones) and standard variables', () => {
    for (const s of c2) {
      for (const name of Object.keys(s.environment)) {
        assert.ok(
          SETTING_ENV_NAMES.has(name) ||
            PENDING_ENV_NAMES.includes(name) ||
            isStandardEnvName(name),
          `${s.name}: ${name} is neither a setting of cluster/config/settings.ts, nor pending, nor standard`,
        );
      }
    }
  });

  void it('reports pending names that SETTINGS now has (drop them from the pending list)', (t) => {
    const landed = [
      ...PENDING_ENV_NAMES.filter((n) => SETTING_ENV_NAMES.has(n)),
      ...PENDING_FILE_KEYS.filter((k) => FILE_KEYS.has(k)),
    ];
    if (landed.length > 0) t.diagnostic(`now in SETTINGS: ${landed.join(', ')}`);
  });

  void it('is accepted by loadConfig, for every C2 service, with the example secret file', () => {
    for (const s of c2) {
      assert.doesNotThrow(() => configOf(s), `${s.name}: loadConfig rejects its settings`);
    }
  });

  void it('listens on the default ports, on every interface of the container', () => {
    for (const s of c2) {
      const config = configOf(s);
      assert.equal(config.api.metrics.port, DEFAULT_PORTS.metrics, `${s.name}: metrics port`);
      assert.equal(config.api.metrics.host, '0.0.0.0', `${s.name}: metrics host`);
    }
    for (const s of apis) {
      const config = configOf(s);
      assert.deepEqual(config.api.grpc, { host: '0.0.0.0', port: DEFAULT_PORTS.grpc }, s.name);
      assert.deepEqual(config.api.http, { host: '0.0.0.0', port: DEFAULT_PORTS.http }, s.name);
      assert.equal(config.tls.kind, 'files', `${s.name}: API nodes serve TLS`);
    }
  });

  void it('sends every C2 process spans to the collector, named by role and node', () => {
    const collectorFile = 'ops/otel/collector.yaml';
    const collector = record(parseYaml(readRepoFile(collectorFile), collectorFile), collectorFile);
    const http = record(
      record(
        record(record(collector['receivers'], 'receivers')['otlp'], 'otlp')['protocols'],
        'protocols',
      )['http'],
      'otlp http',
    );
    const port = /:(\d+)$/.exec(scalar(http['endpoint'], 'otlp http endpoint'))?.[1];
    assert.ok(port !== undefined, `${collectorFile}: no OTLP/HTTP port`);
    service('otel-collector');
    const names = new Map<string, Set<string>>();
    for (const s of c2) {
      const telemetry = configOf(s).telemetry;
      assert.equal(telemetry.tracesExporter, 'otlp', `${s.name}: spans exported`);
      assert.equal(
        telemetry.otlpTracesUrl,
        `http://otel-collector:${port}/v1/traces`,
        `${s.name}: where the collector takes OTLP/HTTP`,
      );
      // The resource variable adds the site; the node id (service.instance.id) is E4C2_NODE_ID's,
      // which wins over the variable: setting it there too could only disagree.
      const attributes = new Map(
        (s.environment['OTEL_RESOURCE_ATTRIBUTES'] ?? '').split(',').map((pair) => {
          const [key = '', value = ''] = pair.split('=');
          return [key.trim(), value.trim()] as const;
        }),
      );
      assert.equal(attributes.get('e4c2.site'), site(s), `${s.name}: e4c2.site of its spans`);
      assert.ok(!attributes.has('service.instance.id'), `${s.name}: the node id is E4C2_NODE_ID`);
      const name = telemetry.serviceName ?? defaultServiceName(role(s));
      names.set(role(s), (names.get(role(s)) ?? new Set()).add(name));
    }
    assert.deepEqual(
      [...names.entries()].map(([r, n]) => [r, [...n]]),
      [...names.keys()].map((r) => [r, [defaultServiceName(r)]]),
      'one service.name per role, as docs/observability.md names them',
    );
  });

  void it('puts no secret in an environment value, anywhere', () => {
    const looksSecret = /PASSWORD|PASSPHRASE|SECRET|TOKEN|PRIVATE|_KEY$/;
    for (const s of services) {
      for (const [name, value] of Object.entries(s.environment)) {
        assert.ok(!SECRET_ENV_NAMES.has(name), `${s.name}: secret setting ${name} in environment`);
        if (looksSecret.test(name)) {
          assert.match(value, /^\/run\/secrets\//, `${s.name}: ${name} must name a secret file`);
        }
        assert.doesNotMatch(value, /:\/\/[^/@\s]*:[^/@\s]+@/, `${s.name}: ${name} has credentials`);
      }
    }
  });

  void it('mounts every file a setting names as a compose secret the service has', () => {
    const declared = record(compose.raw['secrets'], 'secrets');
    const generator = readRepoFile('ops/secrets/init-secrets.sh');
    for (const s of services) {
      for (const value of Object.values(s.environment)) {
        const match = /^\/run\/secrets\/([\w.-]+)$/.exec(value);
        if (match?.[1] === undefined) continue;
        assert.ok(s.secrets.includes(match[1]), `${s.name}: ${value} is not one of its secrets`);
      }
      for (const name of s.secrets) {
        const spec = record(declared[name], `secrets.${name}`);
        const file = scalar(spec['file'], `secrets.${name}.file`);
        assert.match(file, /^\.\/ops\/secrets\/[\w.-]+$/, `secret ${name}`);
        const base = file.split('/').at(-1) ?? '';
        assert.ok(generator.includes(base), `init-secrets.sh does not create ${base}`);
      }
    }
  });

  void it('keeps only secret settings, all known, in the secret config file', () => {
    const keys = leafKeys(record(JSON.parse(exampleConfigText) as unknown, EXAMPLE_CONFIG));
    for (const key of keys) {
      assert.ok(
        FILE_KEYS.has(key) || PENDING_FILE_KEYS.includes(key),
        `${EXAMPLE_CONFIG}: ${key} is not a config-file key of cluster/config/settings.ts`,
      );
      assert.ok(
        SECRET_FILE_KEYS.has(key) || (PENDING_FILE_KEYS.includes(key) && !FILE_KEYS.has(key)),
        `${EXAMPLE_CONFIG}: ${key} is not secret; set it in the environment, where it is visible`,
      );
    }
  });
});

void describe('docker-compose.ha.yml: Redis, broker and database', () => {
  const example = record(JSON.parse(exampleConfigText) as unknown, EXAMPLE_CONFIG);
  const redis = record(example['redis'], 'redis');
  const queueUrl = scalar(redis['url'], 'redis.url');
  const redlockUrls = scalar(redis['redlockUrls'], 'redis.redlockUrls').split(',');

  void it('runs the BullMQ Redis with noeviction and AOF', () => {
    const [host] = hostsOf([queueUrl]);
    const queue = service(host ?? '');
    assert.equal(flagValue(queue.command, '--maxmemory-policy'), 'noeviction');
    assert.equal(flagValue(queue.command, '--appendonly'), 'yes');
    assert.ok(flagValue(queue.command, '--maxmemory') !== undefined, 'no maxmemory: OOM-kill');
  });

  void it('runs three distinct, independent Redis instances for the Redlock quorum', () => {
    const hosts = hostsOf(redlockUrls);
    assert.equal(hosts.length, 3);
    assert.equal(new Set(hosts).size, 3, 'two Redlock URLs name one instance');
    assert.ok(!hosts.includes(hostsOf([queueUrl])[0] ?? ''), 'the queue Redis is not a lock vote');
    const sites = new Set<string>();
    for (const host of hosts) {
      const s = service(host);
      assert.match(s.image ?? '', /^redis:/, `${host} is not a Redis`);
      assert.equal(flagValue(s.command, '--maxmemory-policy'), 'noeviction', host);
      assert.ok(
        !s.command.some((a) => /replicaof|slaveof/i.test(a)),
        `${host} replicates another instance: a failover could hand a lock out twice`,
      );
      sites.add(site(s));
    }
    assert.equal(sites.size, 3, 'the Redlock instances should be in three failure domains');
    for (const s of c2) {
      const config = configOf(s);
      assert.equal(config.redis.kind, 'external', `${s.name}: REDIS_URL`);
    }
  });

  void it('points every C2 process at the broker, on the port mosquitto.conf listens on', () => {
    const conf = readRepoFile('ops/mosquitto/mosquitto.conf');
    const listeners = [...conf.matchAll(/^listener\s+(\d+)(?:\s+(\S+))?\s*$/gm)].map((m) => ({
      port: Number(m[1]),
      host: m[2],
    }));
    const publicPorts = listeners.filter((l) => l.host === undefined).map((l) => l.port);
    assert.deepEqual(publicPorts, [MQTT_PORT]);
    assert.match(conf, /^persistence true$/m);
    const broker = service('mosquitto');
    assert.ok(
      broker.ports.some((p) => p.container === MQTT_PORT),
      'devices cannot reach 1883',
    );
    const passwordFile = /^password_file\s+\/run\/secrets\/(\S+)$/m.exec(conf)?.[1];
    assert.ok(passwordFile !== undefined && broker.secrets.includes(passwordFile));
    // The health check uses the loopback listener of mosquitto.conf.
    const hc = scalars(record(broker.raw['healthcheck'], 'hc')['test'], 'mosquitto.healthcheck');
    const probePort = Number(flagValue(hc, '-p'));
    assert.ok(
      listeners.some((l) => l.port === probePort && l.host === '127.0.0.1'),
      `health check port ${probePort} is not a loopback listener`,
    );
    for (const s of c2) {
      const config = configOf(s);
      assert.equal(config.mqtt.kind, 'external', s.name);
      const url = new URL(config.mqtt.url);
      assert.equal(url.hostname, 'mosquitto', s.name);
      assert.equal(Number(url.port === '' ? MQTT_PORT : url.port), MQTT_PORT, s.name);
      assert.equal(config.mqtt.username, 'e4c2', `${s.name}: the account init-secrets.sh creates`);
    }
  });

  void it('points every C2 process at the compose PostgreSQL, with a shared KEK file', () => {
    const url = new URL(scalar(record(example['database'], 'database')['url'], 'database.url'));
    const pg = service(url.hostname);
    assert.equal(pg.environment['POSTGRES_DB'], url.pathname.slice(1));
    assert.equal(pg.environment['POSTGRES_USER'], decodeURIComponent(url.username));
    for (const s of c2) {
      const config = configOf(s);
      assert.equal(config.database.kind, 'external', s.name);
      assert.equal(config.kek.kind, 'file', `${s.name}: every node reads the same KEK secret`);
    }
  });
});

void describe('docker-compose.ha.yml: C2 health checks', () => {
  void it('probe routes that the API serves', () => {
    const probes = probePaths();
    for (const s of c2) {
      const test = scalars(record(s.raw['healthcheck'], 'hc')['test'], `${s.name}.healthcheck`);
      assert.deepEqual(test.slice(0, 3), ['CMD', 'node', 'ops/docker/healthcheck.mjs'], s.name);
      const path = test[3] ?? '/healthz';
      assert.ok(
        probes.includes(path),
        `${s.name}: ${path} is not a probe route (${probes.join(', ')})`,
      );
    }
  });
});

void describe('ops/haproxy/haproxy.cfg', () => {
  const text = readRepoFile('ops/haproxy/haproxy.cfg');
  const sections = parseHaproxy(text);
  const lbs = services.filter((s) => role(s) === 'lb');

  /** `server <name> <host>:<port> ...` lines of a backend. */
  const servers = (backend: string): { name: string; address: string; words: string[] }[] =>
    haproxySection(sections, 'backend', backend)
      .lines.filter((l) => l[0] === 'server')
      .map((l) => ({ name: l[1] ?? '', address: l[2] ?? '', words: [...l] }));

  void it('parses, and every frontend uses a backend that exists', () => {
    for (const f of sections.filter((s) => s.kind === 'frontend')) {
      for (const line of f.lines.filter((l) => l[0] === 'default_backend')) {
        haproxySection(sections, 'backend', line[1] ?? '');
      }
    }
  });

  void it('is what every load balancer service mounts, with its ports published', () => {
    assert.ok(lbs.length >= 2, 'one load balancer is a single point of failure');
    assert.ok(new Set(lbs.map(site)).size >= 2, 'load balancers are all in one site');
    for (const lb of lbs) {
      assert.ok(
        lb.volumes.includes('./ops/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro'),
        `${lb.name} does not mount haproxy.cfg`,
      );
      const published = lb.ports.map((p) => p.container);
      for (const port of [DEFAULT_PORTS.grpc, DEFAULT_PORTS.http]) {
        assert.ok(published.includes(port), `${lb.name} does not publish ${port}`);
      }
    }
  });

  void it('listens on the default gRPC and HTTP ports', () => {
    const bind = (name: string): string =>
      haproxySection(sections, 'frontend', name).lines.find((l) => l[0] === 'bind')?.[1] ?? '';
    assert.equal(bind('grpc'), `:${DEFAULT_PORTS.grpc}`);
    assert.equal(bind('http'), `:${DEFAULT_PORTS.http}`);
  });

  void it('lists every API service, and nothing else, in both backends, each checked', () => {
    const expected = (port: number): string[] =>
      apis.map((a) => `${a.name}@${a.name}:${port}`).sort();
    const actual = (backend: string): string[] =>
      servers(backend)
        .map((s) => `${s.name}@${s.address}`)
        .sort();
    assert.deepEqual(actual('api_grpc'), expected(DEFAULT_PORTS.grpc));
    assert.deepEqual(actual('api_http'), expected(DEFAULT_PORTS.http));
    for (const backend of ['api_grpc', 'api_http']) {
      for (const s of servers(backend))
        assert.ok(s.words.includes('check'), `${backend}/${s.name}`);
    }
  });

  void it('checks HTTP readiness on a probe route the API serves', () => {
    const lines = haproxySection(sections, 'backend', 'api_http').lines;
    const send = lines.find((l) => l[0] === 'http-check' && l[1] === 'send');
    assert.ok(send !== undefined, 'api_http has no http-check send');
    const uri = send[send.indexOf('uri') + 1] ?? '';
    assert.equal(uri, '/readyz');
    assert.ok(probePaths().includes(uri), `${uri} is not a probe route`);
    assert.ok(lines.some((l) => l.join(' ') === 'http-check expect status 200'));
  });

  void it('checks gRPC with a well-formed grpc.health.v1.Health/Check exchange', () => {
    const lines = haproxySection(sections, 'backend', 'api_grpc').lines;
    const sent = Buffer.concat(
      lines
        .filter((l) => l[0] === 'tcp-check' && l[1] === 'send-binary')
        .map((l) => Buffer.from(l[2] ?? '', 'hex')),
    );
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    assert.ok(sent.subarray(0, preface.length).equals(preface), 'HTTP/2 preface');
    // Frames: 3-byte length, type, flags, 4-byte stream id, payload of that length.
    const frames: { type: number; flags: number; stream: number; payload: Buffer }[] = [];
    for (let at = preface.length; at < sent.length;) {
      assert.ok(at + 9 <= sent.length, 'truncated frame header');
      const length = sent.readUIntBE(at, 3);
      const payload = sent.subarray(at + 9, at + 9 + length);
      assert.equal(payload.length, length, 'frame length does not match its payload');
      frames.push({
        type: sent.readUInt8(at + 3),
        flags: sent.readUInt8(at + 4),
        stream: sent.readUInt32BE(at + 5),
        payload,
      });
      at += 9 + length;
    }
    const headers = frames.find((f) => f.type === 0x1);
    const data = frames.find((f) => f.type === 0x0);
    assert.ok(headers !== undefined && data !== undefined, 'HEADERS and DATA frames');
    assert.equal(headers.stream, 1);
    assert.equal(headers.flags & 0x4, 0x4, 'END_HEADERS');
    const block = headers.payload.toString('latin1');
    for (const needed of ['/grpc.health.v1.Health/Check', 'application/grpc', 'trailers']) {
      assert.ok(block.includes(needed), `HEADERS lacks ${needed}`);
    }
    assert.equal(data.stream, 1);
    assert.equal(data.flags & 0x1, 0x1, 'END_STREAM');
    // One uncompressed gRPC message: HealthCheckRequest{service: ''}, the whole server.
    assert.ok(data.payload.equals(Buffer.from([0, 0, 0, 0, 0])), 'empty HealthCheckRequest');
    assert.ok(GRPC_HEALTH_SERVICES.includes(''), 'the server does not answer for ""');
    const expect = lines.find((l) => l[0] === 'tcp-check' && l[1] === 'expect');
    assert.deepEqual(expect, ['tcp-check', 'expect', 'binary', '00000000020801']);
    // That answer is HealthCheckResponse{status: SERVING}, as health.proto numbers it.
    assert.match(readRepoFile('api/proto/health.proto'), /SERVING\s*=\s*1\s*;/);
  });

  void it('passes `haproxy -c` when HAProxy is installed', (t) => {
    const version = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
    if (version.error !== undefined) {
      t.skip('haproxy is not installed (apt-get install haproxy)');
      return;
    }
    const check = spawnSync('haproxy', ['-c', '-f', 'ops/haproxy/haproxy.cfg'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(check.status, 0, check.stderr);
  });
});

void describe('ops/prometheus/prometheus.yml', () => {
  const prom = record(
    parseYaml(readRepoFile('ops/prometheus/prometheus.yml'), 'prometheus.yml'),
    'prometheus.yml',
  );
  const jobs = list(prom['scrape_configs'], 'scrape_configs').map((j) => record(j, 'job'));
  const job = (name: string): Record<string, unknown> => {
    const found = jobs.find((j) => j['job_name'] === name);
    assert.ok(found !== undefined, `no scrape job ${name}`);
    return found;
  };
  /** `target -> labels` of a job's static configs. */
  const targets = (name: string): Map<string, Record<string, unknown>> => {
    const out = new Map<string, Record<string, unknown>>();
    for (const sc of list(job(name)['static_configs'], `${name}.static_configs`)) {
      const group = record(sc, 'static_config');
      const labels = group['labels'] === undefined ? {} : record(group['labels'], 'labels');
      for (const target of scalars(group['targets'], 'targets')) out.set(target, labels);
    }
    return out;
  };

  void it('scrapes every C2 service, and only those, on its metrics port with site and role', () => {
    const scraped = targets('e4c2');
    assert.deepEqual(
      [...scraped.keys()].sort(),
      c2.map((s) => `${s.name}:${DEFAULT_PORTS.metrics}`).sort(),
    );
    for (const s of c2) {
      const labels = scraped.get(`${s.name}:${DEFAULT_PORTS.metrics}`);
      assert.deepEqual(labels, { site: site(s), role: role(s) }, `${s.name} labels`);
    }
  });

  void it('scrapes every load balancer on its stats port', () => {
    const stats = haproxySection(
      parseHaproxy(readRepoFile('ops/haproxy/haproxy.cfg')),
      'frontend',
      'stats',
    );
    const port = (stats.lines.find((l) => l[0] === 'bind')?.[1] ?? '').replace(/^.*:/, '');
    const lbs = services.filter((s) => role(s) === 'lb');
    assert.deepEqual(
      [...targets('haproxy').keys()].sort(),
      lbs.map((l) => `${l.name}:${port}`).sort(),
    );
  });

  void it('loads the alert rules from where compose mounts them', () => {
    const files = scalars(prom['rule_files'], 'rule_files');
    const mounted = service('prometheus').volumes;
    for (const file of files) {
      assert.ok(
        mounted.some((v) => v.split(':')[1] === file && v.startsWith('./ops/prometheus/')),
        `${file} is not mounted`,
      );
    }
    assert.ok(mounted.includes('./ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro'));
  });
});
