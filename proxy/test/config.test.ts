/** The configuration file and the command line. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseProxyArgs } from '../cli-args.ts';
import { parseProxyConfig } from '../config.ts';
import { ProxyError } from '../errors.ts';
import { tempDir } from './support.ts';

const PATH = '/etc/e4proxy/proxy.yaml';

/** Asserts that `text` is refused as PROXY_CONFIG with each of `expected` among its problems. */
function assertProblems(text: string, expected: readonly string[]): void {
  assert.throws(
    () => parseProxyConfig(text, PATH),
    (err: unknown) => {
      assert.ok(ProxyError.is(err, 'PROXY_CONFIG'));
      for (const problem of expected) {
        assert.ok(err.message.includes(problem), `missing: ${problem}\n${err.message}`);
      }
      return true;
    },
  );
}

void describe('proxy configuration', () => {
  void it('has safe defaults for local mode', () => {
    const c = parseProxyConfig('identities:\n  - name: app-1\n', PATH);
    assert.equal(c.mode, 'local');
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 1884 });
    assert.equal(c.upstream.url, 'mqtt://127.0.0.1:1883');
    assert.equal(c.stateDir, '/etc/e4proxy/data/proxy');
    assert.equal(c.localKeyFile, '/etc/e4proxy/data/proxy/local.key');
    assert.equal(c.policy.otherTopics, 'forward');
    assert.equal(c.policy.maxPayloadBytes, 256 * 1024);
    assert.deepEqual(c.policy.rotationHold, {
      ms: 5000,
      messagesPerTopic: 100,
      bytesPerTopic: 1024 * 1024,
      messagesPerConnection: 250,
      bytesPerConnection: 4 * 1024 * 1024,
      messages: 1000,
      bytes: 16 * 1024 * 1024,
    });
    assert.equal(c.c2.tofu, false);
  });

  void it('reads policy.rotationHold, and refuses what is out of range', () => {
    const c = parseProxyConfig(
      'identities: [{ name: app-1 }]\npolicy: { rotationHold: { ms: 0, messages: 10 } }\n',
      PATH,
    );
    assert.equal(c.policy.rotationHold.ms, 0);
    assert.equal(c.policy.rotationHold.messages, 10);
    assert.equal(c.policy.rotationHold.messagesPerTopic, 100);
    // A connection's share follows the total: a quarter of it.
    assert.equal(c.policy.rotationHold.messagesPerConnection, 3);
    assert.equal(c.policy.rotationHold.bytesPerConnection, 4 * 1024 * 1024);
    assertProblems(
      'identities: [{ name: app-1 }]\npolicy: { rotationHold: { messages: 10, messagesPerConnection: 11 } }\n',
      ['policy.rotationHold.messagesPerConnection: must be a whole number from 1 to 10'],
    );
    assertProblems(
      'identities: [{ name: app-1 }]\npolicy: { rotationHold: { ms: 60001, bytes: 0, seconds: 3 } }\n',
      [
        'policy.rotationHold.ms: must be a whole number from 0 to 60000',
        'policy.rotationHold.bytes: must be a whole number from 1 to',
        'policy.rotationHold.seconds: unknown setting',
      ],
    );
  });

  void it('reads a gateway with devices, and the mode from the command line', () => {
    const c = parseProxyConfig(
      JSON.stringify({
        identities: [{ name: 'dev-1', topics: ['plant/1'] }, { name: 'gw' }],
        devices: [
          { clientId: 'd1', passwordHash: `scrypt$00ff$${'ab'.repeat(32)}`, identity: 'dev-1' },
        ],
        gatewayIdentity: 'gw',
        policy: { protect: ['plant/#'], otherTopics: 'drop' },
        c2: { url: 'http://127.0.0.1:8888/', tofu: true },
      }),
      PATH,
      { mode: 'gateway' },
    );
    assert.equal(c.mode, 'gateway');
    assert.equal(c.listen.host, '0.0.0.0');
    assert.equal(c.devices[0]?.identity, 'dev-1');
    assert.equal(c.c2.url, 'http://127.0.0.1:8888');
  });

  void it('lists every problem at once', () => {
    const text = [
      'mode: bridge',
      'identities:',
      '  - name: a',
      '    initialKey: nothex',
      '    topics: ["x/#"]',
      '  - name: a',
      'devices:',
      '  - identity: nobody',
      '  - clientId: d2',
      'policy:',
      '  protect: ["a/#/b"]',
      '  maxPayloadBytes: 0',
      'listen: { tls: { requireClientCert: true } }',
      'colour: blue',
    ].join('\n');
    assertProblems(text, [
      "mode: must be 'local' or 'gateway'",
      'initialKey: must be 64 hex digits',
      'topics[0]: must be a topic, not a filter',
      "'a' is listed twice",
      'needs clientId, username or certCommonName',
      "'nobody' is not one of the identities",
      'devices[1].identity: is required',
      'policy.protect[0]: not a valid topic filter',
      'policy.maxPayloadBytes: must be a whole number',
      'listen.tls: certFile and keyFile are required',
      'needs listen.tls.caFile',
      'colour: unknown setting',
    ]);
    assert.throws(() => parseProxyConfig('[1, 2', PATH), /not valid YAML/);
    assert.throws(
      () =>
        parseProxyConfig('identities:\n  - name: a\n upstream: { password: "hunter2secret" ', PATH),
      (err: Error) => {
        assert.match(err.message, /not valid YAML or JSON \(line \d+, column \d+\)/);
        assert.ok(!err.message.includes('hunter2secret'), 'the line is not quoted');
        return true;
      },
    );
    assert.throws(() => parseProxyConfig('identities: []', PATH), /at least one identity/);
  });

  void it('refuses what would leak: an unprotected identity topic, credentials in the URL', () => {
    const text = [
      'identities:',
      '  - name: app-1',
      '    topics: [plant/temp, audit/secret]',
      'policy: { protect: ["plant/#"] }',
      'upstream: { url: "mqtt://gw:S3cretPw@broker:1883", clientIdPrefix: 7 }',
      'c2: { url: "https://c2user:C2Passw0rd@c2.example:8888" }',
    ].join('\n');
    assert.throws(
      () => parseProxyConfig(text, PATH),
      (err: unknown) => {
        assert.ok(ProxyError.is(err, 'PROXY_CONFIG'));
        assert.match(
          err.message,
          /identities\[0\]\.topics\[1\]: 'audit\/secret' is matched by no policy\.protect filter/,
        );
        assert.doesNotMatch(err.message, /plant\/temp/, 'a protected topic is fine');
        assert.match(err.message, /upstream\.url: must not hold credentials/);
        assert.match(err.message, /upstream\.clientIdPrefix: must be a string/);
        assert.doesNotMatch(err.message, /S3cretPw/);
        assert.match(err.message, /c2\.url: must not hold credentials; use c2\.token/);
        assert.doesNotMatch(err.message, /C2Passw0rd/);
        return true;
      },
    );
  });

  void it('names certificate files it cannot read, all at once', () => {
    const text = [
      'identities: [{ name: app-1 }]',
      'listen: { tls: { certFile: tls/nope.crt, keyFile: tls/nope.key } }',
      'upstream: { caFile: /nonexistent/ca.crt }',
      'c2: { url: "https://127.0.0.1:8888", caFile: tls/c2-ca.pem }',
    ].join('\n');
    assertProblems(text, [
      'listen.tls.certFile: cannot read /etc/e4proxy/tls/nope.crt (ENOENT)',
      'listen.tls.keyFile: cannot read /etc/e4proxy/tls/nope.key (ENOENT)',
      'upstream.caFile: cannot read /nonexistent/ca.crt (ENOENT)',
      'c2.caFile: cannot read /etc/e4proxy/tls/c2-ca.pem (ENOENT)',
    ]);
  });

  void it('refuses a directory given as a certificate file, naming the setting', async () => {
    const dir = await tempDir();
    try {
      const text = [
        'identities: [{ name: app-1 }]',
        `upstream: { caFile: "${dir.path}" }`,
        `c2: { url: "https://127.0.0.1:8888", caFile: "${dir.path}" }`,
      ].join('\n');
      assertProblems(text, [
        `upstream.caFile: cannot read ${dir.path} (EISDIR: a directory, not a file)`,
        `c2.caFile: cannot read ${dir.path} (EISDIR: a directory, not a file)`,
      ]);
    } finally {
      await dir.cleanup();
    }
  });

  void it("resolves c2.caFile, the C2's CA, against the configuration's directory", async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'c2-ca.pem'), 'PEM');
      const c = parseProxyConfig(
        'identities: [{ name: app-1 }]\nc2: { url: "https://127.0.0.1:8888", caFile: c2-ca.pem }\n',
        join(dir.path, 'proxy.yaml'),
      );
      assert.equal(c.c2.caFile, join(dir.path, 'c2-ca.pem'));
      assert.equal(parseProxyConfig('identities: [{ name: app-1 }]', PATH).c2.caFile, undefined);
    } finally {
      await dir.cleanup();
    }
  });
  void it('keeps a local listener on loopback: it authenticates no one', () => {
    const local = (host: string, mode = 'local'): string =>
      `mode: ${mode}\nlisten: { host: "${host}", port: 1884 }\nidentities: [{ name: app-1 }]\n`;
    for (const host of ['127.0.0.1', '127.0.0.53', '::1', 'localhost']) {
      assert.equal(parseProxyConfig(local(host), PATH).listen.host, host);
    }
    for (const host of ['0.0.0.0', '::', '192.0.2.7', 'proxy.example']) {
      assertProblems(local(host), [`listen.host: '${host}' is not a loopback address`]);
    }
    // The same file in gateway mode, and its default host on --mode local.
    assert.equal(parseProxyConfig(local('0.0.0.0', 'gateway'), PATH).listen.host, '0.0.0.0');
    assert.throws(
      () => parseProxyConfig(local('0.0.0.0', 'gateway'), PATH, { mode: 'local' }),
      /listen\.host: '0\.0\.0\.0' is not a loopback address/,
    );
    const noHost = 'mode: gateway\nidentities: [{ name: app-1 }]\n';
    assert.equal(parseProxyConfig(noHost, PATH, { mode: 'local' }).listen.host, '127.0.0.1');
  });

  void it('refuses one port for the listener and the health endpoint', () => {
    const ports = (listen: string, health: string): string =>
      `listen: ${listen}\nhealth: ${health}\nidentities: [{ name: app-1 }]\n`;
    for (const health of [
      '{ port: 1884 }',
      '{ host: 0.0.0.0, port: 1884 }',
      '{ host: localhost, port: 1884 }',
    ]) {
      assertProblems(ports('{ host: 127.0.0.1, port: 1884 }', health), [
        'health.port: 1884 is listen.port too',
      ]);
    }
    assert.equal(parseProxyConfig(ports('{ port: 0 }', '{ port: 0 }'), PATH).health.port, 0);
    assert.equal(
      parseProxyConfig(ports('{ host: 127.0.0.2, port: 1884 }', '{ port: 1884 }'), PATH).health
        .port,
      1884,
    );
  });

  void it('refuses identity names the C2 refuses', () => {
    const text = JSON.stringify({
      mode: 'gateway',
      identities: ['..', '.', 'ok.name', 'bell\u0007', 'x'.repeat(256), 'a\uFFFD'].map((name) => ({
        name,
      })),
    });
    assertProblems(text, [
      "identities[0].name: '..' cannot be a name: URLs resolve it as a path step",
      "identities[1].name: '.' cannot be a name",
      'identities[3].name: holds control characters',
      'identities[4].name: longer than 255 bytes',
      'identities[5].name: not valid UTF-8 (or holds U+FFFD)',
    ]);
    assert.throws(
      () => parseProxyConfig(text, PATH),
      (err: Error) => !err.message.includes('identities[2]'),
    );
  });
});

void describe('proxy command line', () => {
  void it('parses commands and options', () => {
    assert.deepEqual(parseProxyArgs(['--mode', 'local', '--config', 'p.yaml']), {
      command: 'start',
      configPath: 'p.yaml',
      mode: 'local',
      tofu: false,
      rotate: false,
      replace: false,
      newLocalKey: false,
    });
    assert.equal(parseProxyArgs(['register', '--config', 'p', '--rotate'])?.rotate, true);
    assert.equal(parseProxyArgs(['register', '--config', 'p', '--replace'])?.replace, true);
    assert.equal(parseProxyArgs(['--help']), undefined);
    assert.equal(parseProxyArgs(['hash-password'])?.configPath, undefined);
    for (const args of [
      ['start'],
      ['--mode', 'x', '--config', 'p'],
      ['fly', '--config', 'p'],
      ['--bad'],
      ['--replace', '--config', 'p'],
    ]) {
      assert.throws(
        () => parseProxyArgs(args),
        (err: unknown) => ProxyError.is(err, 'PROXY_CONFIG'),
      );
    }
  });
});
