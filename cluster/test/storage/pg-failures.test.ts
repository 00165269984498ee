/**
 * Which PostgreSQL failures become `C2_UNAVAILABLE` (retry) and which stay as they are.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../errors.ts';
import { databaseUnavailable, isQueryReadTimeout } from '../../storage/index.ts';

/** An error as node-postgres or the socket layer makes it. */
function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

void describe('database availability failures', () => {
  void it('a lost, refused or silent connection is C2_UNAVAILABLE, its driver text kept out', () => {
    const failures = [
      pgError('Query read timeout'),
      pgError('Connection terminated unexpectedly'),
      pgError('Connection terminated due to connection timeout'),
      pgError('timeout exceeded when trying to connect'),
      pgError('connect ECONNREFUSED 10.0.0.7:5432', 'ECONNREFUSED'),
      pgError('read ECONNRESET', 'ECONNRESET'),
      pgError('getaddrinfo ENOTFOUND db.internal', 'ENOTFOUND'),
      pgError('terminating connection due to administrator command', '57P01'),
      pgError('the database system is starting up', '57P03'),
      pgError('sorry, too many clients already', '53300'),
      pgError('connection failure', '08006'),
      pgError('database "e4c2" is not currently accepting connections', '55000'),
    ];
    for (const failure of failures) {
      const translated = databaseUnavailable(failure);
      assert.ok(C2Error.is(translated, 'C2_UNAVAILABLE'), failure.message);
      assert.equal(translated.cause, failure, 'the original stays as the cause, for the logs');
      assert.doesNotMatch(translated.message, /10\.0\.0\.7|db\.internal|administrator/);
    }
  });

  void it('a statement cancelled by the bound names the setting', () => {
    const translated = databaseUnavailable(
      pgError('canceling statement due to statement timeout', '57014'),
    );
    assert.ok(C2Error.is(translated, 'C2_UNAVAILABLE'));
    assert.match(translated.message, /E4C2_DB_QUERY_TIMEOUT_MS/);
  });

  void it('anything else is left alone', () => {
    const others: unknown[] = [
      pgError('duplicate key value violates unique constraint "clients_name_key"', '23505'),
      pgError('could not serialize access due to concurrent update', '40001'),
      pgError('relation "x" does not exist', '42P01'),
      pgError('cannot drop the currently open database', '55000'),
      new Error('a bug'),
      new C2Error('C2_NOT_FOUND', 'no such client'),
      'a string',
      undefined,
    ];
    for (const other of others) assert.equal(databaseUnavailable(other), undefined, String(other));
  });

  void it("recognises node-postgres' client-side read timeout only", () => {
    assert.equal(isQueryReadTimeout(pgError('Query read timeout')), true);
    assert.equal(isQueryReadTimeout(pgError('Connection terminated unexpectedly')), false);
    assert.equal(isQueryReadTimeout(null), false);
  });
});
