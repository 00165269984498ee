/** Topics and their key versions, in PostgreSQL. */
import type { Queryable } from './pool.ts';
import { buf, bytes, date, firstRow, int, rows, str, touched, type Row } from './pg-rows.ts';
import type { PageQuery, TopicKeyRow, TopicRow } from './store-types.ts';

function toTopic(row: Row): TopicRow {
  return {
    id: str(row, 'id'),
    name: str(row, 'name'),
    topicHash: bytes(row, 'topic_hash'),
    keyVersion: int(row, 'key_version'),
    createdAt: date(row, 'created_at'),
    updatedAt: date(row, 'updated_at'),
  };
}

function toTopicKey(row: Row): TopicKeyRow {
  return {
    topicId: str(row, 'topic_id'),
    version: int(row, 'version'),
    sealed: bytes(row, 'sealed'),
    fingerprint: str(row, 'fingerprint'),
    createdAt: date(row, 'created_at'),
  };
}

/** New topic key version values. */
export interface NewTopicKey {
  readonly topicId: string;
  readonly version: number;
  readonly sealed: Uint8Array;
  readonly fingerprint: string;
}

/** Topic repository (storage port); see {@link PgTopics}. */
export interface TopicRepository {
  byName(name: string, lock?: boolean): Promise<TopicRow | undefined>;
  byId(id: string): Promise<TopicRow | undefined>;
  /** Inserts a topic at key version 1, or returns undefined when the name exists already. */
  insert(name: string, topicHash: Uint8Array): Promise<TopicRow | undefined>;
  insertKey(key: NewTopicKey): Promise<void>;
  key(topicId: string, version: number): Promise<TopicKeyRow | undefined>;
  keys(topicId: string, limit: number): Promise<TopicKeyRow[]>;
  /** Compare-and-set of the key version (R1); false when another writer won. */
  casKeyVersion(topicId: string, expected: number, next: number): Promise<boolean>;
  delete(topicId: string): Promise<void>;
  count(): Promise<number>;
  names(page: PageQuery): Promise<string[]>;
  after(cursor: string | undefined, limit: number): Promise<TopicRow[]>;
}

/** PostgreSQL {@link TopicRepository}. */
export class PgTopics implements TopicRepository {
  /** @param db - a transaction client or the pool */
  constructor(private readonly db: Queryable) {}

  async byName(name: string, lock = false): Promise<TopicRow | undefined> {
    const row = await firstRow(
      this.db,
      `SELECT * FROM topics WHERE name = $1${lock ? ' FOR UPDATE' : ''}`,
      [name],
    );
    return row && toTopic(row);
  }

  async byId(id: string): Promise<TopicRow | undefined> {
    const row = await firstRow(this.db, 'SELECT * FROM topics WHERE id = $1', [id]);
    return row && toTopic(row);
  }

  async insert(name: string, topicHash: Uint8Array): Promise<TopicRow | undefined> {
    // Every unique index arbitrates (topic_hash derives from the name), as for clients.
    const row = await firstRow(
      this.db,
      `INSERT INTO topics (name, topic_hash, key_version) VALUES ($1, $2, 1)
       ON CONFLICT DO NOTHING RETURNING *`,
      [name, buf(topicHash)],
    );
    return row && toTopic(row);
  }

  async insertKey(key: NewTopicKey): Promise<void> {
    await this.db.query(
      'INSERT INTO topic_keys (topic_id, version, sealed, fingerprint) VALUES ($1, $2, $3, $4)',
      [key.topicId, key.version, buf(key.sealed), key.fingerprint],
    );
  }

  async key(topicId: string, version: number): Promise<TopicKeyRow | undefined> {
    const row = await firstRow(
      this.db,
      'SELECT * FROM topic_keys WHERE topic_id = $1 AND version = $2',
      [topicId, version],
    );
    return row && toTopicKey(row);
  }

  async keys(topicId: string, limit: number): Promise<TopicKeyRow[]> {
    return (
      await rows(
        this.db,
        'SELECT * FROM topic_keys WHERE topic_id = $1 ORDER BY version DESC LIMIT $2',
        [topicId, limit],
      )
    ).map(toTopicKey);
  }

  async casKeyVersion(topicId: string, expected: number, next: number): Promise<boolean> {
    return (
      (await touched(
        this.db,
        'UPDATE topics SET key_version = $3, updated_at = now() WHERE id = $1 AND key_version = $2',
        [topicId, expected, next],
      )) === 1
    );
  }

  async delete(topicId: string): Promise<void> {
    await this.db.query('DELETE FROM topics WHERE id = $1', [topicId]);
  }

  async count(): Promise<number> {
    const row = await firstRow(this.db, 'SELECT count(*) AS n FROM topics');
    return row === undefined ? 0 : int(row, 'n');
  }

  async names(page: PageQuery): Promise<string[]> {
    return (
      await rows(this.db, 'SELECT name FROM topics ORDER BY name OFFSET $1 LIMIT $2', [
        page.offset,
        page.limit,
      ])
    ).map((r) => str(r, 'name'));
  }

  async after(cursor: string | undefined, limit: number): Promise<TopicRow[]> {
    return (
      await rows(
        this.db,
        'SELECT * FROM topics WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2',
        [cursor ?? null, limit],
      )
    ).map(toTopic);
  }
}
