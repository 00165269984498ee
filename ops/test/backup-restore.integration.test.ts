/**
 * ops/backup against the real PostgreSQL: backup.sh dumps a C2 schema that has seen every kind of
 * change, restore.sh restores it into a scratch database, the restored data is what was dumped,
 * and a node on the restored database works with the same KEK. Then the disaster-recovery
 * reconciliation: changes made after the backup (topic rotations, an identity rotation, clients
 * and topics created and removed) are known only to the off-site event archive; after
 * `ReconcileAfterRestore` every topic key is above anything issued, the client whose identity
 * key changed is reported unreachable (and sent nothing until re-provisioned), and a subscriber that resumes from
 * the archive's last position receives everything the reconciliation did.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { eventRecord } from '../../api/events/event-records.ts';
import { GrpcTestClient, type Message } from '../../api/test/support/api-harness.ts';
import {
  closeNode,
  startNode,
  startTwoNodes,
  type TestNode,
  type TwoNodes,
} from '../../api/test/support/two-nodes.ts';
import { summarizeEventArchive } from '../../cli/commands/restore.ts';
import { syncBatch, type BatchSyncDeps } from '../../cluster/delivery/index.ts';
import { PgDelivery } from '../../cluster/storage/index.ts';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { TEST_DATABASE_URL } from '../../cluster/test/support/postgres.ts';

const ctx = { actor: 'dr-test' };
const BACKUP = new URL('../backup/backup.sh', import.meta.url).pathname;
const RESTORE = new URL('../backup/restore.sh', import.meta.url).pathname;

/** The URL of another database on the same server. */
function databaseUrl(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

function run(script: string, args: string[], env: Record<string, string>) {
  const result = spawnSync('bash', [script, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(result.status, 0, `${script} failed:\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

/**
 * Per table: row count and a digest of every row, in a stable order. The mark restore.sh adds
 * (`restore_pending`) is left out: it is checked on its own.
 */
async function fingerprint(url: string, schema: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const tables = await client.query<{ tablename: string }>(
      'SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename',
      [schema],
    );
    const out: Record<string, string> = {};
    for (const { tablename } of tables.rows) {
      const skipMark = tablename === 'c2_settings' ? " WHERE t.name <> 'restore_pending'" : '';
      const { rows } = await client.query<{ n: string; digest: string | null }>(
        `SELECT count(*)::text AS n, md5(string_agg(t::text, '|' ORDER BY t::text)) AS digest
         FROM "${schema}"."${tablename}" t${skipMark}`,
      );
      out[tablename] = `${rows[0]?.n}:${rows[0]?.digest ?? '-'}`;
    }
    return out;
  } finally {
    await client.end();
  }
}

/** Whether restore.sh's mark (deliveries paused until the reconciliation) is in the database. */
async function restoreMarked(url: string, schema: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT 1 FROM "${schema}".c2_settings WHERE name = 'restore_pending'`,
    );
    return rows.length > 0;
  } finally {
    await client.end();
  }
}

/** The whole event stream as the off-site archive holds it (`events --after 0 --json`). */
async function archive(node: TestNode): Promise<string> {
  const events = await node.service.eventsAfter('0', 10_000);
  return events.map((e) => `${JSON.stringify(eventRecord(e))}\n`).join('');
}

void describe('backup, restore and reconciliation after a restore', { timeout: 180_000 }, () => {
  const kek = new Uint8Array(randomBytes(32));
  const scratch = `e4c2_restore_${randomBytes(5).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'e4c2-backup-'));
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  let source: TwoNodes;
  let restored: TestNode | undefined;
  let dump = '';
  let atBackup: Record<string, string> = {};
  let archived = '';

  before(async () => {
    await admin.connect();
    source = await startTwoNodes(kek);
  });
  after(async () => {
    if (restored !== undefined) await closeNode(restored);
    await source.close();
    await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  void it('backup.sh dumps the schema and restore.sh restores exactly that into another database', async () => {
    const [a] = source.nodes;
    const s = a.service;
    for (const c of ['c1', 'c2', 'c3']) await s.newClient(ctx, c, new Uint8Array(randomBytes(32)));
    for (const t of ['t1', 't2']) await s.newTopic(ctx, t);
    await s.newTopicClient(ctx, 'c1', 't1');
    await s.newTopicClient(ctx, 'c2', 't1');
    await s.newTopicClient(ctx, 'c3', 't2');
    await s.rotateTopicKey(ctx, 't1');
    await s.sequenceEvents();
    const schema = source.schema.schema;
    atBackup = await fingerprint(TEST_DATABASE_URL, schema);

    dump = run(BACKUP, ['-o', dir, '-n', schema], { DATABASE_URL: TEST_DATABASE_URL }).trim();
    assert.match(dump, /e4c2-\d{8}T\d{6}Z\.dump$/);
    assert.equal(statSync(dump).mode & 0o077, 0, 'the dump (every sealed key) is private');
    const manifest = JSON.parse(
      readFileSync(dump.replace(/\.dump$/, '.manifest.json'), 'utf8'),
    ) as {
      schema: string;
      sha256: string;
      eventSeqAtStart: string;
    };
    assert.equal(manifest.schema, schema);
    assert.match(manifest.sha256, /^[0-9a-f]{64}$/);
    assert.ok(Number(manifest.eventSeqAtStart) > 0);

    await admin.query(`CREATE DATABASE ${scratch}`);
    const target = databaseUrl(scratch);
    // A C2 node still connected to the target is refused: it would deliver the restored keys.
    const node = new pg.Client({ connectionString: target, application_name: 'e4c2-node-x' });
    await node.connect();
    try {
      const refused = spawnSync('bash', [RESTORE, '-f', dump], {
        env: { ...process.env, DATABASE_URL: target },
        encoding: 'utf8',
      });
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(refused.stderr, /C2 nodes are connected to this database \(e4c2-node-x\)/);
      assert.match(refused.stderr, /pass --ignore-connected/);
    } finally {
      await node.end();
    }
    const out = run(RESTORE, ['-f', dump], { DATABASE_URL: target });
    assert.match(out, new RegExp(`restored schema ${schema}`));
    assert.match(out, /deliveries are paused until: e4c2 restore-reconcile/);
    assert.deepEqual(await fingerprint(target, schema), atBackup);
    assert.ok(Object.keys(atBackup).includes('events') && Object.keys(atBackup).length > 10);
    // Marked: nodes deliver nothing from it until the reconciliation.
    assert.equal(await restoreMarked(target, schema), true);

    // A second restore over live data is refused; the data stays.
    const again = spawnSync('bash', [RESTORE, '-f', dump], {
      env: { ...process.env, DATABASE_URL: target },
      encoding: 'utf8',
    });
    assert.equal(again.status, 1);
    assert.match(again.stderr, /use --clean/);
    assert.deepEqual(await fingerprint(target, schema), atBackup);
  });

  void it('restore.sh refuses a dump whose checksum does not match its manifest', () => {
    const copy = join(dir, 'tampered.dump');
    const bytes = readFileSync(dump);
    bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) ^ 1;
    writeFileSync(copy, bytes);
    writeFileSync(
      join(dir, 'tampered.manifest.json'),
      readFileSync(dump.replace(/\.dump$/, '.manifest.json')),
    );
    const result = spawnSync('bash', [RESTORE, '-f', copy], {
      env: { ...process.env, DATABASE_URL: databaseUrl(scratch) },
      encoding: 'utf8',
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /checksum mismatch/);
    // Cut short, with no manifest to tell: refused as unreadable, the target untouched.
    const cut = join(dir, 'cut.dump');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.8)));
    const truncated = spawnSync('bash', [RESTORE, '-f', cut], {
      env: { ...process.env, DATABASE_URL: databaseUrl(scratch) },
      encoding: 'utf8',
    });
    assert.equal(truncated.status, 1, truncated.stderr);
    assert.match(truncated.stderr, /no manifest beside/);
    assert.match(
      truncated.stderr,
      /as a pg_dump archive \(truncated or not a dump\?\); nothing was changed/,
    );
  });

  void it('restore.sh --clean leaves the target as it was when the restore fails', async () => {
    // A failure half-way through the restore (standing in for a lost connection or a full disk):
    // an event trigger of the target refuses one of the tables. The drop used to be committed
    // before the restore began, so the failed restore left no schema at all.
    const target = databaseUrl(scratch);
    const db = new pg.Client({ connectionString: target });
    await db.connect();
    try {
      await db.query(`CREATE FUNCTION fail_restore() RETURNS event_trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity LIKE '%.outbox') THEN
            RAISE EXCEPTION 'simulated failure half-way through the restore';
          END IF;
        END $$`);
      await db.query(
        'CREATE EVENT TRIGGER fail_restore ON ddl_command_end EXECUTE FUNCTION fail_restore()',
      );
      const failed = spawnSync('bash', [RESTORE, '-f', dump, '--clean'], {
        env: { ...process.env, DATABASE_URL: target },
        encoding: 'utf8',
      });
      assert.equal(failed.status, 1, 'the restore fails, with the documented status');
      assert.match(failed.stderr, /simulated failure/);
      assert.match(failed.stderr, /rolled back: the target is as it was/);
      assert.deepEqual(
        await fingerprint(target, source.schema.schema),
        atBackup,
        'the schema restored before is still there, whole',
      );
    } finally {
      await db.query('DROP EVENT TRIGGER IF EXISTS fail_restore');
      await db.query('DROP FUNCTION IF EXISTS fail_restore()');
      await db.end();
    }
  });

  void it('restore.sh --clean refuses to drop what is not the C2s, unless --force', async () => {
    const target = databaseUrl(scratch);
    const schema = source.schema.schema;
    const db = new pg.Client({ connectionString: target });
    await db.connect();
    try {
      await db.query(`CREATE TABLE "${schema}".billing (id int)`);
      await db.query('CREATE SCHEMA IF NOT EXISTS reports');
      await db.query(
        `CREATE VIEW reports.topic_count AS SELECT count(*) AS n FROM "${schema}".topics`,
      );
      const refused = spawnSync('bash', [RESTORE, '-f', dump, '--clean'], {
        env: { ...process.env, DATABASE_URL: target },
        encoding: 'utf8',
      });
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `would also drop what is not the C2's: ${schema}\\.billing, reports\\.topic_count`,
        ),
      );
      assert.deepEqual(await fingerprint(target, schema), {
        ...atBackup,
        billing: '0:-',
      });
      // Nodes of another deployment (on another schema) let be with --ignore-connected: the
      // --clean check, which --force would also skip, still holds.
      const other = new pg.Client({ connectionString: target, application_name: 'e4c2-other' });
      await other.connect();
      try {
        const stillRefused = spawnSync(
          'bash',
          [RESTORE, '-f', dump, '--clean', '--ignore-connected'],
          { env: { ...process.env, DATABASE_URL: target }, encoding: 'utf8' },
        );
        assert.equal(stillRefused.status, 1, stillRefused.stderr);
        assert.match(stillRefused.stderr, /warning: C2 nodes are connected .*going on as asked/);
        assert.match(stillRefused.stderr, /would also drop what is not the C2's/);
      } finally {
        await other.end();
      }
      run(RESTORE, ['-f', dump, '--clean', '--force'], { DATABASE_URL: target });
      assert.deepEqual(await fingerprint(target, schema), atBackup, 'replaced, as asked');
    } finally {
      await db.query('DROP SCHEMA IF EXISTS reports CASCADE');
      await db.end();
    }
  });

  void it('restore.sh restores into an empty schema made beforehand (a role without CREATE)', async () => {
    const empty = `${scratch}_pre`;
    await admin.query(`CREATE DATABASE ${empty}`);
    try {
      const target = databaseUrl(empty);
      const pre = new pg.Client({ connectionString: target });
      await pre.connect();
      await pre.query(`CREATE SCHEMA ${source.schema.schema}`);
      await pre.end();
      const out = run(RESTORE, ['-f', dump], { DATABASE_URL: target });
      assert.match(out, /restored schema/);
      assert.deepEqual(await fingerprint(target, source.schema.schema), atBackup);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${empty} WITH (FORCE)`);
    }
  });

  void it('after the restore, reconciliation re-keys every topic above what was issued and reports the unreachable', async () => {
    const [a] = source.nodes;
    const s = a.service;
    // The disaster strikes after these changes; only the off-site archive keeps them.
    await s.rotateTopicKey(ctx, 't1'); // v3
    await s.rotateTopicKey(ctx, 't1'); // v4
    await s.rotateClientKey(ctx, 'c2'); // the device now has identity v2
    await s.newClient(ctx, 'c4', new Uint8Array(randomBytes(32)));
    await s.newTopic(ctx, 't3');
    await s.removeClient(ctx, 'c3');
    await s.removeTopic(ctx, 't2');
    // Another device under an old name: its key is one the restored database never had.
    await s.removeClient(ctx, 'c1');
    await s.newClient(ctx, 'c1', new Uint8Array(randomBytes(32)));
    // Memberships changed after the backup: one ended, one made (of a client and topic made
    // after the backup too).
    await s.removeTopicClient(ctx, 'c2', 't1');
    await s.newTopicClient(ctx, 'c4', 't3');
    archived = await archive(a);

    restored = await startNode(databaseUrl(scratch), source.schema.schema, kek);
    const r = restored.service;
    // restore.sh's mark holds the restored position; the CLI sends only what the archive has
    // after it.
    const status = await r.restoreStatus();
    assert.equal(status.pending, true);
    const restoredAt = BigInt(status.restoredPosition ?? 'x');
    assert.equal(restoredAt, BigInt(await r.deps.store.read.journal.latestEventSeq()));
    const summary = summarizeEventArchive(archived, restoredAt);
    const archiveLast = BigInt(summary.archive_last_seq);
    assert.equal((await r.getTopic('t1')).keyVersion, 2, 'the restored state is the backup');
    // The restored keys open with the same KEK.
    const protectedMessage = await r.protectMessage('t1', new Uint8Array([1, 2, 3]));
    assert.ok(protectedMessage.length > 3);

    const admin = new GrpcTestClient(restored.grpcTarget, 'e4c2.v1.C2Admin');
    const received: Message[] = [];
    const stream = admin.stream('StreamEvents', { after_seq: archiveLast.toString() });
    stream.on('data', (m: Message) => received.push(m));
    stream.on('error', () => undefined);
    try {
      const result = await admin.call('ReconcileAfterRestore', { ...summary, version_margin: 100 });
      assert.equal(result['topics_rotated'], 2);
      assert.deepEqual((result['unreachable_clients'] as string[]).toSorted(), ['c1', 'c2']);
      assert.deepEqual(result['missing_clients'], ['c4']);
      assert.deepEqual(result['missing_topics'], ['t3']);
      assert.deepEqual(result['resurrected_clients'], ['c3']);
      assert.deepEqual(result['resurrected_topics'], ['t2']);
      assert.equal(result['c2_key_rotated_after_backup'], false);
      assert.equal(result['archive_ends_before_backup'], false);
      const listedPairs = (key: string): string[] =>
        (result[key] as Array<{ client: string; topic: string }>)
          .map((m) => `${m.client} ${m.topic}`)
          .toSorted();
      assert.deepEqual(listedPairs('missing_memberships'), ['c4 t3']);
      // c1's is the earlier device's (the name was created again); c3 is listed as removed.
      assert.deepEqual(listedPairs('resurrected_memberships'), ['c1 t1', 'c2 t1']);
      assert.equal(
        await restoreMarked(databaseUrl(scratch), source.schema.schema),
        false,
        'deliveries may go out again',
      );
      assert.ok(BigInt(result['event_seq_floor'] as string) > archiveLast);

      // Above the restored version by the margin, and above everything the archive saw.
      assert.equal((await r.getTopic('t1')).keyVersion, 102);
      assert.equal((await r.getTopic('t2')).keyVersion, 101);
      const c2 = await r.getClient('c2');
      assert.equal(c2.delivery.state, 'unreachable');
      assert.match(c2.delivery.error ?? '', /identity key v2 was issued after the backup/);
      const c1 = await r.getClient('c1');
      assert.equal(c1.delivery.state, 'unreachable');
      assert.match(c1.delivery.error ?? '', /removed and created again after the backup/);

      // A subscriber that resumes with a position from before the disaster sees all of it.
      await eventually(() => {
        assert.ok(
          received.some((m) => m['type'] === 'c2.restore_reconciled'),
          'c2.restore_reconciled received',
        );
      }, 20_000);
    } finally {
      stream.cancel();
      admin.close();
    }
    assert.deepEqual(
      received.map((m) => m['type']),
      [
        'c2.restored',
        'topic.rotated',
        'topic.rotated',
        'client.unreachable',
        'client.unreachable',
        'c2.restore_reconciled',
      ],
    );
    assert.ok(received.every((m) => BigInt(m['seq'] as string) > archiveLast));
    const unreachable = received.filter((m) => m['type'] === 'client.unreachable');
    assert.deepEqual(unreachable.map((m) => m['client']).toSorted(), ['c1', 'c2']);
  });

  void it('without an archive, every topic key still jumps by the margin', async () => {
    assert.ok(restored !== undefined);
    const before = (await restored.service.getTopic('t1')).keyVersion;
    const result = await restored.service.reconcileAfterRestore(ctx, { versionMargin: 7 });
    assert.equal(result.topicsRotated, 2);
    assert.equal((await restored.service.getTopic('t1')).keyVersion, before + 7);
    assert.deepEqual(result.unreachableClients, []);
    assert.equal(result.archiveEndsBeforeBackup, false, 'no archive, nothing to say of it');
    // An archive that stopped before the backup cannot show what came after it: said so.
    const stale = await restored.service.reconcileAfterRestore(ctx, {
      issued: { topics: new Map(), clients: new Map(), lastEventSeq: 1n },
    });
    assert.equal(stale.archiveEndsBeforeBackup, true);
    // The archive of the first run, again: judged against the restore, not the first run's jump.
    const lastSeq = BigInt(summarizeEventArchive(archived).archive_last_seq);
    const rerun = await restored.service.reconcileAfterRestore(ctx, {
      issued: { topics: new Map(), clients: new Map(), lastEventSeq: lastSeq },
    });
    assert.equal(rerun.archiveEndsBeforeBackup, false, 'a second run is not a stale archive');
    await assert.rejects(
      restored.service.reconcileAfterRestore(ctx, { versionMargin: 0 }),
      /versionMargin must be an integer/,
    );
  });

  void it("a run again, after a failed run or the runbook's step 6, judges against the restore", async () => {
    assert.ok(restored !== undefined);
    const r = restored.service;
    const schema = source.schema.schema;
    // Step 6: the client created after the backup is created again by the operator...
    await r.newClient(ctx, 'c4', new Uint8Array(randomBytes(32)));
    // ... and a run that failed half-way left the pause on (only a completed run lifts it).
    const db = new pg.Client({ connectionString: databaseUrl(scratch) });
    await db.connect();
    try {
      // (restore.sh's mark, as the failed run left it: the restored position.)
      await db.query(
        `INSERT INTO "${schema}".c2_settings (name, value)
         SELECT 'restore_pending', value FROM "${schema}".c2_settings WHERE name = 'restore_position'`,
      );
    } finally {
      await db.end();
    }
    // The archive kept going after the restore (runbook step 8): the restored database's events.
    const archiveLast = BigInt(summarizeEventArchive(archived).archive_last_seq);
    const since = (await r.eventsAfter(archiveLast.toString(), 10_000))
      .map((e) => `${JSON.stringify(eventRecord(e))}\n`)
      .join('');
    const text = archived + since;
    const admin = new GrpcTestClient(restored.grpcTarget, 'e4c2.v1.C2Admin');
    try {
      const status = await admin.call('GetRestoreStatus', {});
      assert.equal(status['pending'], true);
      const restoredAt = BigInt(status['restored_position'] as string);
      // As the CLI sends it (the archive kept going, or the same local copy as the first run),
      // and the whole archive (as an older CLI did): the same judgement.
      for (const summary of [
        summarizeEventArchive(text, restoredAt),
        summarizeEventArchive(archived, restoredAt),
        summarizeEventArchive(text),
      ]) {
        const result = await admin.call('ReconcileAfterRestore', { ...summary, version_margin: 5 });
        assert.deepEqual((result['unreachable_clients'] as string[]).toSorted(), ['c1', 'c2']);
        assert.deepEqual(result['missing_clients'], [], 'c4 is back');
        assert.equal(result['archive_ends_before_backup'], false);
      }
    } finally {
      admin.close();
    }
    assert.equal((await r.getClient('c4')).delivery.state, 'idle', 'the new c4 is not unreachable');
  });

  void it('sends an unreachable device nothing until it is re-provisioned, then everything', async () => {
    assert.ok(restored !== undefined);
    const r = restored.service;
    const store = r.deps.store;
    const sent: string[] = [];
    const deps: BatchSyncDeps = {
      store,
      sealer: r.deps.sealer,
      mode: r.deps.mode,
      publisher: {
        publish: (topic) => {
          sent.push(topic);
          return Promise.resolve();
        },
      },
      clock: Date.now,
      sleep: () => Promise.resolve(),
      policy: { maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 1, deadlineMs: 60_000 },
      delivery: new PgDelivery(restored.pool),
      owner: 'dr-test',
      claimTtlMs: 30_000,
      publishConcurrency: 8,
    };
    const control = async (name: string): Promise<{ id: string; topic: string }> => {
      const row = await store.read.clients.byName(name);
      assert.ok(row);
      return { id: row.id, topic: `e4/${Buffer.from(row.e4Id).toString('hex')}` };
    };
    const c2 = await control('c2');
    const before = await r.getClient('c2');
    assert.equal(before.delivery.state, 'unreachable');
    const t1 = before.topics.find((t) => t.topic === 't1');
    assert.ok(t1 !== undefined && t1.deliveredVersion < t1.desiredVersion, 'work for it');
    // Its commands would be refused by the device and acknowledged by the broker: none goes out,
    // and none is recorded delivered.
    await syncBatch(deps, [c2.id]);
    assert.ok(!sent.includes(c2.topic), 'nothing sent to the unreachable device');
    assert.ok(!(await store.read.journal.pendingClients('0', 10_000)).includes(c2.id));
    const held = await r.getClient('c2');
    assert.equal(held.delivery.state, 'unreachable');
    assert.equal(held.topics.find((t) => t.topic === 't1')?.state, 'failed');
    assert.ok((await r.rotationStatus('t1')).failed >= 1, 'the rollout counts it failed');

    // Step 6: re-provisioned with the key the device holds now; it is sent everything again.
    await r.newClient(ctx, 'c2', new Uint8Array(randomBytes(32)));
    assert.equal((await r.getClient('c2')).delivery.state, 'idle');
    assert.ok((await store.read.journal.pendingClients('0', 10_000)).includes(c2.id));
    await syncBatch(deps, [c2.id]);
    assert.ok(sent.includes(c2.topic), 'its topic keys went out under the new key');
    const after = await r.getClient('c2');
    assert.ok(after.topics.every((t) => t.deliveredVersion === t.desiredVersion));
    assert.equal(after.delivery.state, 'idle');
  });
});
