/**
 * The delivery statements' array parameters, read back by the real PostgreSQL: each encoder must
 * give exactly the array pg's own encoding gives, nulls and empty arrays included, and refuse
 * values that would change the array's meaning.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { bigintArrayParam, byteaArrayParam, intArrayParam } from '../../storage/pg-arrays.ts';
import { createTestSchema, type TestSchema } from '../support/postgres.ts';

void describe('array parameters of the delivery statements', () => {
  let db: TestSchema;
  before(async () => {
    db = await createTestSchema();
  });
  after(async () => {
    await db.drop();
  });

  /** What PostgreSQL makes of a parameter cast to `type`, as text (one form for both encodings). */
  async function asText(param: unknown, type: string): Promise<string> {
    const result = await db.pool.query(`SELECT ($1::${type})::text AS v`, [param]);
    return (result.rows[0] as { v: string }).v;
  }

  void it('bytea[]: the same array as pg encodes, with nulls, one element and none', async () => {
    const cases: Array<Array<Uint8Array | null>> = [
      [randomBytes(16), randomBytes(16), randomBytes(16)],
      [randomBytes(32), null, randomBytes(32), null],
      [new Uint8Array(0), randomBytes(1)],
      [null],
      [randomBytes(16)],
      [],
    ];
    for (const values of cases) {
      const pgOwn = values.map((v) => (v === null ? null : Buffer.from(v)));
      assert.equal(
        await asText(byteaArrayParam(values), 'bytea[]'),
        await asText(pgOwn, 'bytea[]'),
      );
    }
  });

  void it('bytea[]: elements are read back byte for byte, in order', async () => {
    const values = Array.from({ length: 500 }, (_, i) => (i % 7 === 3 ? null : randomBytes(32)));
    const result = await db.pool.query(
      'SELECT e FROM unnest($1::bytea[]) WITH ORDINALITY AS u(e, i) ORDER BY i',
      [byteaArrayParam(values)],
    );
    assert.deepEqual(
      result.rows.map((r: { e: Buffer | null }) => r.e),
      values,
    );
  });

  void it('bigint[] and int[]: the same arrays as pg encodes', async () => {
    const ids = ['1', '42', '9007199254740993', '0'];
    assert.equal(await asText(bigintArrayParam(ids), 'bigint[]'), await asText(ids, 'bigint[]'));
    assert.equal(await asText(bigintArrayParam([]), 'bigint[]'), '{}');
    const ints = [0, 7, -3, 2_147_483_647];
    assert.equal(await asText(intArrayParam(ints), 'int[]'), await asText(ints, 'int[]'));
    assert.equal(await asText(intArrayParam([]), 'int[]'), '{}');
  });

  void it('refuses ids and numbers that would change the array', () => {
    for (const bad of [['1,2'], ['1}'], ['-1'], [' 1'], [''], ['1', ''], ['0x10'], ['NULL']]) {
      assert.throws(() => bigintArrayParam(bad), TypeError, JSON.stringify(bad));
    }
    for (const bad of [[1.5], [Number.NaN], [Number.POSITIVE_INFINITY], [2 ** 53]]) {
      assert.throws(() => intArrayParam(bad), TypeError, String(bad[0]));
    }
  });
});
