/**
 * The automation rules API over both transports: CRUD with optimistic concurrency (a stale
 * `expectedVersion` is 409 / ABORTED with `C2_CONFLICT`), server-side add/remove of triggers and
 * targets, typed validation errors, the pause switch and the firing history.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { AutomationService } from '../../cluster/domain/index.ts';
import { PgAutomation, PgAutomationStore } from '../../cluster/storage/index.ts';
import { startHarness, type C2Harness } from '../../cluster/test/support/c2-harness.ts';
import { ApiServer } from '../index.ts';
import { TEST_AUTOMATION_CAPABILITIES } from '../../cluster/test/support/test-service.ts';
import { GrpcTestClient, httpCall, MemoryLogger, type HttpResult } from './support/api-harness.ts';

void describe('automation API', () => {
  let h: C2Harness;
  let api: ApiServer;
  let grpc: GrpcTestClient;
  const http = (method: string, path: string, body?: object): Promise<HttpResult> =>
    httpCall(api.httpAddress.port, method, path, body === undefined ? {} : { body });

  before(async () => {
    h = await startHarness({ start: false });
    api = await ApiServer.start({
      service: h.service,
      automation: new AutomationService(
        new PgAutomationStore(h.schema.pool),
        TEST_AUTOMATION_CAPABILITIES,
      ),
      grpc: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      readiness: () => Promise.resolve({ ready: true, checks: {} }),
      logger: new MemoryLogger(),
    });
    grpc = new GrpcTestClient(`127.0.0.1:${api.grpcAddress.port}`, 'e4c2.v1.C2Automation');
  });

  after(async () => {
    grpc.close();
    await api.close(1000);
    await h.close();
  });

  void it('creates, reads, updates with a version check, and deletes a rule over HTTP', async () => {
    const created = await http('POST', '/v1/automation/rules', {
      rule: {
        description: 'nightly plant rotation',
        action: 'rotate-topic-key',
        triggers: [{ kind: 'cron', expr: '0 3 * * *', timeZone: 'Europe/Berlin' }],
        targets: [{ kind: 'topic', match: 'prefix', expr: 'plant/' }],
        rollout: { maxDevicesPerMinute: 600, abortFailureRatio: 0.2, timeoutSeconds: 900 },
      },
    });
    assert.equal(created.status, 200, created.text);
    const rule = created.json as {
      id: string;
      version: number;
      enabled: boolean;
      triggers: Array<{ id: string; timeZone: string }>;
      rollout: { maxDevicesPerMinute: number };
    };
    assert.equal(rule.version, 1);
    assert.equal(rule.enabled, true);
    assert.equal(rule.triggers[0]?.timeZone, 'Europe/Berlin');
    assert.equal(rule.rollout.maxDevicesPerMinute, 600);

    const listed = await http('GET', '/v1/automation/rules');
    assert.deepEqual(
      (listed.json as { rules: Array<{ id: string }> }).rules.map((r) => r.id),
      [rule.id],
    );

    const spec = {
      action: 'rotate-topic-key',
      triggers: [{ kind: 'interval', everySeconds: 3600 }],
      targets: [{ kind: 'topic', expr: 'plant/a' }],
    };
    const updated = await http('PUT', `/v1/automation/rules/${rule.id}`, {
      expectedVersion: 1,
      rule: spec,
    });
    assert.equal(updated.status, 200, updated.text);
    assert.equal((updated.json as { version: number }).version, 2);
    const stale = await http('PUT', `/v1/automation/rules/${rule.id}`, {
      expectedVersion: 1,
      rule: spec,
    });
    assert.equal(stale.status, 409, stale.text);
    assert.match(stale.text, /C2_CONFLICT/);

    const deleted = await http('DELETE', `/v1/automation/rules/${rule.id}?expectedVersion=2`);
    assert.equal(deleted.status, 200, deleted.text);
    const gone = await http('GET', `/v1/automation/rules/${rule.id}`);
    assert.equal(gone.status, 404, gone.text);
  });

  void it('rejects invalid rules with the field at fault', async () => {
    const noZone = await http('POST', '/v1/automation/rules', {
      rule: { action: 'rotate-topic-key', triggers: [{ kind: 'cron', expr: '0 3 * * *' }] },
    });
    assert.equal(noZone.status, 400, noZone.text);
    assert.match(noZone.text, /timeZone/);
    const badAction = await http('POST', '/v1/automation/rules', { rule: { action: 'explode' } });
    assert.equal(badAction.status, 400, badAction.text);
    // NUL reached PostgreSQL (500); escapes would reach the terminals of operators reading rules.
    const interval = { kind: 'interval', everySeconds: 60 };
    for (const [rule, field] of [
      [{ action: 'rotate-topic-key', description: 'x\u0000' }, 'description'],
      [{ action: 'rotate-topic-key', description: 'esc \u001b[31mRED' }, 'description'],
      // A lone surrogate (valid JSON, no UTF-8) was stored as U+FFFD: read back, another text.
      [{ action: 'rotate-topic-key', description: 'lone \ud800 surrogate' }, 'description'],
      [
        {
          action: 'rotate-topic-key',
          triggers: [interval],
          targets: [{ kind: 'topic', match: 'exact', expr: 'a\u0000b' }],
        },
        'targets[0].expr',
      ],
      // Names no topic or client can have: skipped at every firing, a schedule doing nothing.
      [
        {
          action: 'rotate-topic-key',
          triggers: [interval],
          targets: [{ kind: 'topic', match: 'exact', expr: 'plant/+/temp' }],
        },
        'targets[0].expr',
      ],
      [
        {
          action: 'rotate-client-key',
          triggers: [interval],
          targets: [{ kind: 'client', match: 'exact', expr: 'x'.repeat(256) }],
        },
        'targets[0].expr',
      ],
    ] as const) {
      const res = await http('POST', '/v1/automation/rules', { rule });
      assert.equal(res.status, 400, res.text);
      assert.match(res.text, /C2_VALIDATION/);
      const details = (res.json as { error: { details?: { field?: string } } }).error.details;
      assert.equal(details?.field, `rule.${field}`, 'the path in the request, as the codec names');
    }
    // The request's shape (codec) and the rule's meaning (domain) name fields the same way.
    for (const [trigger, field] of [
      [{ kind: 'interval', everySeconds: 'x' }, 'rule.triggers[0].everySeconds'],
      [{ kind: 'member-removed' }, 'rule.triggers[0].kind'],
      [{ kind: 'bogus' }, 'rule.triggers[0].kind'],
    ] as const) {
      const res = await http('POST', '/v1/automation/rules', {
        rule: { action: 'rotate-client-key', triggers: [trigger] },
      });
      assert.equal(res.status, 400, res.text);
      const details = (res.json as { error: { details?: { field?: string } } }).error.details;
      assert.equal(details?.field, field, res.text);
    }
    const lines = await http('POST', '/v1/automation/rules', {
      rule: { action: 'rotate-topic-key', description: 'two\nlines\tand a tab' },
    });
    assert.equal(lines.status, 200, lines.text);
    // A rule that could never run here (symmetric-key mode has no C2 key): a typed refusal.
    const noC2Key = await http('POST', '/v1/automation/rules', {
      rule: { action: 'rotate-c2-key' },
    });
    assert.equal(noC2Key.status, 400, noC2Key.text);
    assert.equal((noC2Key.json as { error: { code: string } }).error.code, 'C2_CRYPTO_MODE');
    const badReason = await http('POST', '/v1/automation/pause', { reason: 'x\u0000' });
    assert.equal(badReason.status, 400, badReason.text);
    const loneReason = await http('POST', '/v1/automation/pause', { reason: 'lone \udc00' });
    assert.equal(loneReason.status, 400, loneReason.text);
    assert.match(loneReason.text, /"field":"reason"/);
    assert.equal(
      ((await http('GET', '/v1/automation/status')).json as { paused: boolean }).paused,
      false,
    );
  });

  void it('adds and removes triggers and targets over gRPC, fencing stale versions', async () => {
    const rule = await grpc.call('CreateRule', {
      rule: { action: 'rotate-client-key', targets: [{ kind: 'client', expr: 'dev-1' }] },
    });
    const id = rule['id'] as string;
    const withTrigger = await grpc.call('AddTrigger', {
      rule_id: id,
      expected_version: 1,
      trigger: { kind: 'max-key-age', max_age_seconds: 86_400 },
    });
    assert.equal(withTrigger['version'], 2);
    const triggerId = (withTrigger['triggers'] as Array<{ id: string }>)[0]?.id ?? '';
    await assert.rejects(
      grpc.call('AddTarget', {
        rule_id: id,
        expected_version: 1,
        target: { kind: 'client', expr: 'dev-2' },
      }),
      (err: ServiceError) => err.code === GrpcStatus.ABORTED,
    );
    await assert.rejects(
      grpc.call('AddTarget', { rule_id: id, target: { kind: 'topic', expr: 'a/b' } }),
      (err: ServiceError) => err.code === GrpcStatus.INVALID_ARGUMENT,
    );
    const withTarget = await grpc.call('AddTarget', {
      rule_id: id,
      target: { kind: 'client', match: 'pattern', expr: 'dev-[0-9]+' },
    });
    assert.equal((withTarget['targets'] as unknown[]).length, 2);
    const removed = await grpc.call('RemoveTrigger', { rule_id: id, trigger_id: triggerId });
    assert.deepEqual(removed['triggers'], []);
    assert.equal(removed['version'], 4);
  });

  void it('serves the reference C2AE API (/rules, pb.C2AutomationEngine) on our rules', async () => {
    const settings = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64');
    const added = await http('POST', '/rules', {
      description: 'reference rule',
      action: 'KEY_ROTATION',
      triggers: [
        { type: 'TIME_INTERVAL', settings: settings({ expr: '0 * * * *' }) },
        {
          type: 'EVENT',
          settings: settings({ eventType: 'CLIENT_UNSUBSCRIBED', maxOccurrence: 3 }),
        },
      ],
      targets: [{ type: 'TOPIC', expr: 'ref/topic' }],
    });
    assert.equal(added.status, 200, added.text);
    const rule = (added.json as { rule: { id: number; triggers: Array<{ id: number }> } }).rule;
    assert.deepEqual(
      rule.triggers.map((t) => t.id),
      [1, 2],
    );
    const ours = (await http('GET', `/v1/automation/rules/${rule.id}`)).json as {
      action: string;
      triggers: Array<{ id: string; kind: string; timeZone: string; threshold: number }>;
      targets: Array<{ match: string }>;
    };
    assert.equal(ours.action, 'rotate-topic-key');
    assert.equal(ours.triggers[0]?.timeZone, 'UTC');
    assert.equal(ours.triggers[1]?.threshold, 3);
    assert.equal(ours.targets[0]?.match, 'exact');

    // Full replace keeping trigger 2 (its counter survives: same id on our side).
    const updated = await http('PUT', '/rules', {
      ruleId: rule.id,
      description: 'edited',
      action: 'KEY_ROTATION',
      triggers: [
        {
          id: 2,
          type: 'EVENT',
          settings: settings({ eventType: 'CLIENT_UNSUBSCRIBED', maxOccurrence: 5 }),
        },
      ],
      targets: [{ type: 'TOPIC', expr: 'ref/topic' }],
    });
    assert.equal(updated.status, 200, updated.text);
    const after = (await http('GET', `/v1/automation/rules/${rule.id}`)).json as {
      triggers: Array<{ id: string }>;
    };
    assert.deepEqual(
      after.triggers.map((t) => t.id),
      [ours.triggers.at(1)?.id],
    );
    // A reference client's read-then-write of our prefix rule keeps it a prefix rule (the
    // reference's targets have no match kind; the write had made it exact, matching nothing).
    const prefixRule = await http('POST', '/v1/automation/rules', {
      rule: {
        action: 'rotate-topic-key',
        triggers: [{ kind: 'cron', expr: '0 3 * * *', timeZone: 'UTC' }],
        targets: [{ kind: 'topic', match: 'prefix', expr: 'plant/' }],
      },
    });
    assert.equal(prefixRule.status, 200, prefixRule.text);
    const prefixId = Number((prefixRule.json as { id: string }).id);
    const targetIds = (prefixRule.json as { targets: Array<{ id: string }> }).targets.map(
      (t) => t.id,
    );
    const read = (await http('GET', `/rules/${prefixId}`)).json as {
      rule: Record<string, unknown>;
    };
    const written = await http('PUT', '/rules', {
      ruleId: prefixId,
      description: read.rule['description'],
      action: read.rule['action'],
      triggers: read.rule['triggers'],
      targets: read.rule['targets'],
    });
    assert.equal(written.status, 200, written.text);
    const kept = (await http('GET', `/v1/automation/rules/${prefixId}`)).json as {
      targets: Array<{ id: string; match: string; expr: string }>;
    };
    assert.deepEqual(
      kept.targets.map((t) => [t.match, t.expr]),
      [['prefix', 'plant/']],
    );
    // ... and keeps its target's id (an operator's saved remove-target still names it).
    assert.deepEqual(
      kept.targets.map((t) => t.id),
      targetIds,
    );

    const mixed = await http('POST', '/rules', {
      action: 'KEY_ROTATION',
      targets: [
        { type: 'TOPIC', expr: 'a' },
        { type: 'CLIENT', expr: 'b' },
      ],
    });
    assert.equal(mixed.status, 400, mixed.text);

    const reference = new GrpcTestClient(
      `127.0.0.1:${api.grpcAddress.port}`,
      'pb.C2AutomationEngine',
    );
    try {
      const listed = await reference.call('ListRules', {});
      assert.ok(
        (listed['rules'] as Array<{ id: number }>).some((r) => r.id === rule.id),
        'the rule is listed over gRPC',
      );
      assert.deepEqual(await reference.call('DeleteRule', { ruleId: rule.id }), {
        ruleId: rule.id,
      });
    } finally {
      reference.close();
    }
    assert.equal((await http('GET', `/rules/${rule.id}`)).status, 404);
  });

  void it('pauses and resumes automation, visible in the status', async () => {
    const paused = await grpc.call('PauseAutomation', { reason: 'broker maintenance' });
    assert.equal(paused['paused'], true);
    assert.equal(paused['pause_reason'], 'broker maintenance');
    const status = await http('GET', '/v1/automation/status');
    assert.equal((status.json as { paused: boolean }).paused, true);
    const resumed = await http('POST', '/v1/automation/resume', {});
    assert.equal((resumed.json as { paused: boolean }).paused, false);
    const firings = await http('GET', '/v1/automation/firings?limit=5');
    assert.deepEqual((firings.json as { firings: unknown[] }).firings, []);
    // A rule that does not exist is not "a rule that never fired".
    const unknown = await http('GET', '/v1/automation/firings?ruleId=999999');
    assert.equal(unknown.status, 404, unknown.text);
    assert.match(unknown.text, /C2_NOT_FOUND/);
  });

  void it('counts every pending firing in the status, past any page size', async () => {
    const created = await http('POST', '/v1/automation/rules', {
      rule: {
        action: 'rotate-topic-key',
        triggers: [{ kind: 'interval', everySeconds: 3600 }],
        targets: [{ kind: 'topic', match: 'prefix', expr: 'backlog/' }],
      },
    });
    assert.equal(created.status, 200, created.text);
    const ruleId = (created.json as { id: string }).id;
    // A backlog as a long pause leaves it (no engine runs here): 1,001 open firings, in one
    // statement. The status read at most 1,000 of them and said 1,000.
    await h.schema.pool.query(
      `INSERT INTO automation_firings
         (rule_id, due_at, subject, trigger_id, rule_version, snapshot, coalesced, planned_epoch)
       SELECT $1, now() - make_interval(secs => g), '', '', 1, '{}'::jsonb, 1, 0
       FROM generate_series(1, 1001) AS g`,
      [ruleId],
    );
    try {
      const status = await http('GET', '/v1/automation/status');
      assert.equal(status.status, 200, status.text);
      assert.equal((status.json as { pendingFirings: number }).pendingFirings, 1001);
    } finally {
      await h.schema.pool.query('DELETE FROM automation_firings WHERE rule_id = $1', [ruleId]);
    }
  });

  void it('lists a firing with its failed calls by error code, over HTTP and gRPC', async () => {
    const created = await http('POST', '/v1/automation/rules', {
      rule: {
        action: 'rotate-topic-key',
        triggers: [{ kind: 'interval', everySeconds: 3600 }],
        targets: [{ kind: 'topic', match: 'prefix', expr: 'firing-errors/' }],
      },
    });
    assert.equal(created.status, 200, created.text);
    const ruleId = (created.json as { id: string }).id;
    // A firing as the runner records it (the engine itself is tested in worker/test/automation).
    const store = new PgAutomation(h.schema.pool);
    const epoch = await store.claimEpoch('api-test');
    const snapshot = {
      action: 'rotate-topic-key' as const,
      targets: [
        { id: 't1', kind: 'topic' as const, match: 'prefix' as const, expr: 'firing-errors/' },
      ],
      rollout: {},
    };
    assert.ok(
      await store.insertFiring(
        {
          ruleId,
          dueAt: new Date(),
          subject: '',
          triggerId: '',
          ruleVersion: 1,
          snapshot,
          coalesced: 1,
        },
        epoch,
      ),
      'the firing was recorded',
    );
    const [firing] = (await store.pendingFirings(10)).filter((f) => f.ruleId === ruleId);
    assert.ok(firing !== undefined, 'the firing is pending');
    assert.ok(await store.startFiring(firing.id), 'the firing started');
    const progress = { targets: 9, done: 2, failed: 0, skipped: 0, devices: 20, errors: {} };
    assert.ok(await store.saveFiringProgress(firing.id, progress), 'its progress was saved');
    const running = await http('GET', `/v1/automation/firings?ruleId=${ruleId}`);
    const [runningFiring] = (running.json as { firings: Array<Record<string, unknown>> }).firings;
    assert.deepEqual(
      [runningFiring?.['status'], runningFiring?.['targets'], runningFiring?.['done']],
      ['pending', 9, 2],
      'a running firing shows its counts so far',
    );
    const result = {
      targets: 9,
      done: 3,
      failed: 3,
      skipped: 0,
      devices: 40,
      failedDevices: 5,
      // Only stable codes reach the API; anything else in the record is not passed on.
      errors: { C2_NOT_FOUND: 2, C2_UNAVAILABLE: 1, 'not a code': 7, C2_BOGUS: 'x' },
      reason: 'rotate-client-key cannot run on node worker-2: ...',
    };
    assert.ok(await store.finishFiring(firing.id, 'failed', result, epoch), 'the firing finished');
    assert.equal(
      await store.saveFiringProgress(firing.id, progress),
      false,
      'progress never overwrites an outcome',
    );

    const listed = await http('GET', `/v1/automation/firings?ruleId=${ruleId}`);
    assert.equal(listed.status, 200, listed.text);
    const [viaHttp] = (listed.json as { firings: Array<Record<string, unknown>> }).firings;
    assert.equal(viaHttp?.['status'], 'failed');
    assert.deepEqual(viaHttp['errors'], { C2_NOT_FOUND: 2, C2_UNAVAILABLE: 1 });
    assert.equal(viaHttp['failedDevices'], 5);
    assert.equal(viaHttp['reason'], result.reason, 'why the leader could not run it');
    const viaGrpc = await grpc.call('ListFirings', { rule_id: ruleId, limit: 10 });
    const [grpcFiring] = viaGrpc['firings'] as Array<Record<string, unknown>>;
    assert.deepEqual(grpcFiring?.['errors'], { C2_NOT_FOUND: 2, C2_UNAVAILABLE: 1 });
    assert.equal(grpcFiring['failed_devices'], 5);
    assert.equal(grpcFiring['targets'], 9);
    assert.equal(grpcFiring['reason'], result.reason);
  });
});
