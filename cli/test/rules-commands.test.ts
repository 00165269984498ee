import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { AutomationRpcs } from '../api.ts';
import { ExitCode } from '../errors.ts';
import { FakeApi, grpcError, runWith } from './support/fake-api.ts';

/** The fake server, also serving `e4c2.v1.C2Automation`. */
class AutomationFakeApi extends FakeApi {
  readonly automationCalls: Array<{ method: string; request: unknown }> = [];
  fail: Error | undefined;
  /** Fields that replace those of the canned reply. */
  reply: Record<string, unknown> = {};

  async automation<M extends keyof AutomationRpcs>(
    method: M,
    request: AutomationRpcs[M]['request'],
  ): Promise<AutomationRpcs[M]['response']> {
    this.automationCalls.push({ method, request });
    await Promise.resolve();
    if (this.fail !== undefined) throw this.fail;
    return {
      id: '7',
      version: 2,
      action: 'rotate-topic-key',
      enabled: true,
      triggers: [],
      targets: [],
      rules: [],
      firings: [],
      rule_id: '7',
      ...this.reply,
    } as unknown as AutomationRpcs[M]['response'];
  }
}

void describe('rules commands', () => {
  void it('create builds one trigger, one target and the rollout from flags', async () => {
    const api = new AutomationFakeApi();
    const r = await runWith(
      [
        'rules',
        'create',
        '--action',
        'rotate-topic-key',
        '--cron',
        '0 3 * * *',
        '--tz',
        'Europe/Berlin',
        '--topic-prefix',
        'plant/',
        '--max-per-minute',
        '600',
        '--abort-ratio',
        '0.2',
      ],
      { api },
    );
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(api.automationCalls, [
      {
        method: 'CreateRule',
        request: {
          rule: {
            action: 'rotate-topic-key',
            description: '',
            triggers: [{ kind: 'cron', expr: '0 3 * * *', time_zone: 'Europe/Berlin' }],
            targets: [{ kind: 'topic', match: 'prefix', expr: 'plant/' }],
            rollout: { max_devices_per_minute: 600, abort_failure_ratio: 0.2, timeout_seconds: 0 },
            disabled: false,
          },
        },
      },
    ]);
  });

  void it('create --file takes the HTTP body camelCase rule (as the docs show) or snake_case', async () => {
    const camel = {
      action: 'rotate-topic-key',
      triggers: [
        { kind: 'cron', expr: '0 3 * * *', timeZone: 'Europe/Berlin' },
        { kind: 'interval', everySeconds: 60 },
      ],
      targets: [{ kind: 'topic', match: 'prefix', expr: 'plant/' }],
      rollout: { maxDevicesPerMinute: 600, abortFailureRatio: 0.2, timeoutSeconds: 900 },
    };
    const expected = {
      action: 'rotate-topic-key',
      triggers: [
        { kind: 'cron', expr: '0 3 * * *', time_zone: 'Europe/Berlin' },
        { kind: 'interval', every_seconds: 60 },
      ],
      targets: [{ kind: 'topic', match: 'prefix', expr: 'plant/' }],
      rollout: { max_devices_per_minute: 600, abort_failure_ratio: 0.2, timeout_seconds: 900 },
    };
    for (const content of [camel, { rule: camel }, expected]) {
      const api = new AutomationFakeApi();
      const r = await runWith(['rules', 'create', '--file', 'rule.json'], {
        api,
        files: { 'rule.json': JSON.stringify(content) },
      });
      assert.equal(r.code, ExitCode.Ok, r.stderr);
      assert.deepEqual(api.automationCalls, [
        { method: 'CreateRule', request: { rule: expected } },
      ]);
    }
  });

  void it('create --file refuses unknown fields, flags beside it and a missing file, before calling', async () => {
    const cases: Array<[readonly string[], Record<string, string>, RegExp]> = [
      [[], { 'r.json': '{"action":"rotate-topic-key","bogus":1}' }, /r\.json: unknown field bogus/],
      [
        [],
        { 'r.json': '{"triggers":[{"kind":"interval","everySecond":5}]}' },
        /unknown field triggers\[0\]\.everySecond/,
      ],
      [[], { 'r.json': '{"triggers":{"kind":"interval"}}' }, /triggers must be a list/],
      [[], { 'r.json': '{"timeZone":"UTC","time_zone":"UTC"}' }, /unknown field timeZone/],
      [[], { 'r.json': '[1]' }, /the rule must be an object/],
      [[], { 'r.json': '{"action":' }, /r\.json is not JSON/],
      // uint32 fields: the gRPC encoder would wrap 2^32 + 1 to 1 without a word
      [
        [],
        { 'r.json': '{"triggers":[{"kind":"interval","everySeconds":4294967297}]}' },
        /triggers\[0\]\.everySeconds must be a whole number from 0 to 4294967295/,
      ],
      [[], { 'r.json': '{"rollout":{"timeoutSeconds":-1}}' }, /rollout\.timeoutSeconds must be/],
      [[], { 'r.json': '{"rollout":{"maxDevicesPerMinute":1.5}}' }, /maxDevicesPerMinute must be/],
      [
        ['--every', '5'],
        { 'r.json': '{}' },
        /--file holds the whole rule: give --every in the file/,
      ],
      [[], {}, /cannot read rule file r\.json: ENOENT/],
    ];
    for (const [extra, files, message] of cases) {
      const api = new AutomationFakeApi();
      const r = await runWith(['rules', 'create', '--file', 'r.json', ...extra], { api, files });
      assert.equal(r.code, ExitCode.Usage, `${JSON.stringify(files)}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(api.automationCalls.length, 0);
    }
  });

  void it('refuses a cron trigger without an explicit time zone, before calling', async () => {
    const api = new AutomationFakeApi();
    const r = await runWith(
      ['rules', 'create', '--action', 'rotate-topic-key', '--cron', '0 3 * * *'],
      { api },
    );
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /--tz/);
    assert.equal(api.automationCalls.length, 0);
  });

  void it('update --file takes a rule as get --json prints it (read-only fields dropped)', async () => {
    const read = {
      id: '7',
      version: 2,
      description: 'nightly',
      action: 'rotate-topic-key',
      triggers: [{ id: 't-1', kind: 'interval', every_seconds: 60 }],
      targets: [{ id: 'g-1', kind: 'topic', match: 'prefix', expr: 'plant/' }],
      rollout: { max_devices_per_minute: 0, abort_failure_ratio: 0, timeout_seconds: 0 },
      enabled: false,
      created_at: '2026-11-27T00:00:00Z',
      updated_at: '2026-11-27T00:00:00Z',
    };
    const api = new AutomationFakeApi();
    const files = { 'r.json': JSON.stringify(read) };
    const r = await runWith(['rules', 'update', '--id', '7', '--file', 'r.json'], { api, files });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const sent = api.automationCalls[0]?.request as { rule: Record<string, unknown> };
    assert.deepEqual(sent.rule, {
      description: 'nightly',
      action: 'rotate-topic-key',
      triggers: read.triggers,
      targets: read.targets,
      rollout: read.rollout,
      disabled: true,
    });
    const both = await runWith(['rules', 'update', '--id', '7', '--file', 'r.json'], {
      api: new AutomationFakeApi(),
      files: { 'r.json': JSON.stringify({ ...read, disabled: true }) },
    });
    assert.equal(both.code, ExitCode.Usage);
    assert.match(both.stderr, /give enabled or disabled, not both/);
  });

  void it('enable and disable rewrite the rule as read, with only its state changed', async () => {
    const api = new AutomationFakeApi();
    const r = await runWith(['rules', 'disable', '--id', '7'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(api.automationCalls, [
      { method: 'GetRule', request: { rule_id: '7' } },
      {
        method: 'UpdateRule',
        request: {
          rule_id: '7',
          expected_version: 2, // the version read: an edit made meanwhile is refused
          rule: {
            description: '',
            action: 'rotate-topic-key',
            triggers: [],
            targets: [],
            rollout: {},
            disabled: true,
          },
        },
      },
    ]);
    const enabled = new AutomationFakeApi();
    assert.equal((await runWith(['rules', 'enable', '--id', '7'], { api: enabled })).code, 0);
    const sent = enabled.automationCalls[1]?.request as { rule: { disabled: boolean } };
    assert.equal(sent.rule.disabled, false);
    const given = new AutomationFakeApi();
    await runWith(['rules', 'enable', '--id', '7', '--expected-version', '1'], { api: given });
    const checked = given.automationCalls[1]?.request as { expected_version: number };
    assert.equal(checked.expected_version, 1, 'the version given is the one the server checks');
  });

  void it('sends the expected version of an edit, and a conflict is a refusal', async () => {
    const api = new AutomationFakeApi();
    api.fail = grpcError(status.ABORTED, 'rule 7 is at version 3, not 2: re-read it and retry');
    const r = await runWith(
      ['rules', 'add-target', '--id', '7', '--expected-version', '2', '--client', 'dev-1'],
      { api },
    );
    assert.equal(r.code, ExitCode.Refused);
    assert.deepEqual(api.automationCalls[0], {
      method: 'AddTarget',
      request: {
        rule_id: '7',
        expected_version: 2,
        target: { kind: 'client', match: 'exact', expr: 'dev-1' },
      },
    });
  });

  void it('pauses with a reason', async () => {
    const api = new AutomationFakeApi();
    const r = await runWith(['automation', 'pause', '--reason', 'broker upgrade'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(api.automationCalls, [
      { method: 'PauseAutomation', request: { reason: 'broker upgrade' } },
    ]);
  });

  void it('pauses with an empty reason (an empty value is refused for most flags, not this one)', async () => {
    const api = new AutomationFakeApi();
    const r = await runWith(['automation', 'pause', '--reason', ''], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(api.automationCalls, [{ method: 'PauseAutomation', request: { reason: '' } }]);
  });

  void it('firings shows the failed calls of each firing by error code', async () => {
    const api = new AutomationFakeApi();
    const firing = {
      id: '12',
      rule_id: '7',
      status: 'failed',
      targets: 9,
      done: 1,
      failed: 3,
      skipped: 5,
      attempts: 1,
    };
    api.reply = {
      firings: [
        { ...firing, errors: { C2_UNAVAILABLE: 1, C2_NOT_FOUND: 2 } },
        { ...firing, id: '11' },
      ],
    };
    const r = await runWith(['rules', 'firings', '--id', '7'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const [header, first, second] = r.stdout.trimEnd().split('\n');
    assert.match(
      header ?? '',
      /\bTARGETS\s+DONE\s+FAILED\s+SKIPPED\s+ATTEMPTS\s+STARTED\s+FINISHED\s+ERRORS$/,
    );
    assert.match(
      first ?? '',
      /^12\b.*\b9\s+1\s+3\s+5\s+1\s+-\s+-\s+C2_NOT_FOUND=2 C2_UNAVAILABLE=1$/,
    );
    assert.match(second ?? '', /^11\b.*\b1\s+-\s+-\s*$/, 'a firing without errors ends there');
  });

  void it('firings and get say why a firing failed when its leader could not run it', async () => {
    const api = new AutomationFakeApi();
    const reason = 'rotate-client-key cannot run on node worker-2: E4C2_PK_SERVER_KEYGEN is off';
    api.reply = {
      firings: [
        {
          id: '5',
          rule_id: '7',
          due_at: '2026-11-27T10:00:00Z',
          status: 'failed',
          failed: 1,
          errors: { C2_FAILED_PRECONDITION: 1 },
          reason,
        },
      ],
    };
    const r = await runWith(['rules', 'firings', '--id', '7'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const row = r.stdout.trimEnd().split('\n')[1] ?? '';
    assert.ok(row.endsWith(` C2_FAILED_PRECONDITION=1: ${reason}`), row);
    const get = await runWith(['rules', 'get', '--id', '7'], { api });
    assert.equal(get.code, ExitCode.Ok, get.stderr);
    assert.ok(
      get.stdout.includes(
        `\nlast firing  #5 due 2026-11-27T10:00:00Z: failed, 0 of 0 done (C2_FAILED_PRECONDITION=1): ${reason}\n`,
      ),
      get.stdout,
    );
  });

  void it('firings shows the status the API gives, and when each firing started and finished', async () => {
    const api = new AutomationFakeApi();
    api.reply = {
      firings: [
        // Started, then stopped by a pause (or running: the API does not tell them apart).
        { id: '3', rule_id: '7', status: 'pending', started_at: '2026-11-27T10:00:01Z' },
        { id: '2', rule_id: '7', status: 'pending' },
        {
          id: '1',
          rule_id: '7',
          status: 'succeeded',
          started_at: '2026-11-27T09:00:01Z',
          finished_at: '2026-11-27T09:00:02Z',
        },
      ],
    };
    const r = await runWith(['rules', 'firings', '--id', '7'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    assert.match(header ?? '', /\bSTATUS\b.*\bSTARTED\s+FINISHED\b/);
    assert.match(rows[0] ?? '', /^3\s+7\s+pending\b.*\s2026-11-27T10:00:01Z\s+-\s*$/);
    assert.match(rows[1] ?? '', /^2\s+7\s+pending\b.*\s-\s+-\s*$/);
    assert.match(
      rows[2] ?? '',
      /^1\s+7\s+succeeded\b.*2026-11-27T09:00:01Z\s+2026-11-27T09:00:02Z\s*$/,
    );
    assert.doesNotMatch(r.stdout, /running|queued/, 'no status the API did not give');
  });

  void it('get shows the rollout policy and how the rule last fired', async () => {
    const api = new AutomationFakeApi();
    api.reply = {
      rollout: { max_devices_per_minute: 600, abort_failure_ratio: 0.1, timeout_seconds: 0 },
      firings: [
        {
          id: '68',
          rule_id: '7',
          due_at: '2026-11-27T10:00:00Z',
          status: 'pending',
          started_at: '2026-11-27T10:00:01Z',
          targets: 4,
          done: 1,
          errors: { C2_UNAVAILABLE: 1 },
        },
      ],
    };
    const r = await runWith(['rules', 'get', '--id', '7'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.match(
      r.stdout,
      /\nrollout +at most 600 devices a minute, abort above 0\.1 failed devices\n/,
    );
    assert.match(
      r.stdout,
      /\nlast firing +#68 due 2026-11-27T10:00:00Z: pending, started 2026-11-27T10:00:01Z, 1 of 4 done \(C2_UNAVAILABLE=1\)\n/,
    );
    assert.deepEqual(
      api.automationCalls.map((c) => c.method),
      ['GetRule', 'ListFirings'],
    );
    api.reply = { firings: [] };
    const none = await runWith(['rules', 'get', '--id', '7'], { api });
    assert.match(none.stdout, /\nrollout +no limits\nlast firing +none\n/);
    const json = await runWith(['rules', 'get', '--id', '7', '--json'], { api });
    assert.equal(json.code, ExitCode.Ok, json.stderr);
    assert.equal(api.automationCalls.at(-1)?.method, 'GetRule', 'JSON: the rule only');
  });
});
