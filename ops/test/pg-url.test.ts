// ops/backup/pg-url.sh: the password leaves DATABASE_URL for PGPASSWORD, so that no command
// line of the backup scripts (visible to every user in ps) carries it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const HELPER = new URL('../backup/pg-url.sh', import.meta.url).pathname;

function sourced(url: string): { url: string; password: string } {
  const r = spawnSync(
    'bash',
    ['-c', `. "${HELPER}"; printf '%s\\n%s' "$DATABASE_URL" "\${PGPASSWORD-<unset>}"`],
    {
      env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: url },
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const [out = '', password = ''] = r.stdout.split('\n');
  return { url: out, password };
}

void describe('ops/backup/pg-url.sh', () => {
  void it('moves a password, percent-decoded, out of the URL', () => {
    assert.deepEqual(sourced('postgres://e4c2:p%40ss%3Aw0rd@db:5432/e4c2?sslmode=require'), {
      url: 'postgres://e4c2@db:5432/e4c2?sslmode=require',
      password: 'p@ss:w0rd',
    });
    assert.deepEqual(sourced('postgresql://u:hex0123@h/d'), {
      url: 'postgresql://u@h/d',
      password: 'hex0123',
    });
  });

  void it('keeps backslashes and stray percent signs of a password as they are', () => {
    assert.deepEqual(sourced('postgres://u:a\\tb%zz%4@h/d'), {
      url: 'postgres://u@h/d',
      password: 'a\\tb%zz%4',
    });
  });

  void it('moves a password given as a query parameter out of the URL', () => {
    assert.deepEqual(
      sourced('postgres://u@h/d?sslmode=require&password=s%26cret&connect_timeout=5'),
      {
        url: 'postgres://u@h/d?sslmode=require&connect_timeout=5',
        password: 's&cret',
      },
    );
    assert.deepEqual(sourced('postgres://u@h/d?password=only'), {
      url: 'postgres://u@h/d',
      password: 'only',
    });
  });

  void it('leaves a URL without a password as it is', () => {
    assert.deepEqual(sourced('postgres://postgres@127.0.0.1:5432/test'), {
      url: 'postgres://postgres@127.0.0.1:5432/test',
      password: '<unset>',
    });
  });
});
