/**
 * The Lua scripts of the Redlock algorithm, one key each. Every script acts only when the key
 * holds *our* random value, so a holder can never extend or delete a lock that has passed to
 * someone else. Scripts run atomically on the Redis instance.
 */
import { createHash } from 'node:crypto';

/**
 * The slice of an ioredis client the lock service uses. An ioredis `Redis` (or a `Cluster`: every
 * script touches one key, so it routes by that key's slot) satisfies it.
 */
export interface RedlockClient {
  evalsha(sha1: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** A Lua script with its SHA-1, for EVALSHA. @internal */
export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * KEYS[1] lock key, ARGV[1] our value, ARGV[2] TTL ms. Returns 1 when the lock is ours now.
 * Re-setting a key that already holds *our* value counts as granted: a retry of one `withLock`
 * reuses its value, so a late SET from an earlier attempt cannot block that same caller.
 */
export const ACQUIRE = script(`
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`);

/** KEYS[1] lock key, ARGV[1] our value, ARGV[2] TTL ms. Compare-and-pexpire: 1 when extended. */
export const EXTEND = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`);

/** KEYS[1] lock key, ARGV[1] our value. Compare-and-delete: 1 when deleted, 0 when not ours. */
export const RELEASE = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`);

/**
 * Runs `s` on `client` by SHA, loading it with EVAL when the instance does not know it yet (first
 * use, or after a restart or SCRIPT FLUSH).
 * @returns the script's integer reply
 * @throws the client's error, or an Error when the reply is not an integer
 * @internal
 */
export async function runScript(
  client: RedlockClient,
  s: LuaScript,
  key: string,
  args: readonly (string | number)[],
): Promise<number> {
  let reply: unknown;
  try {
    reply = await client.evalsha(s.sha, 1, key, ...args);
  } catch (err) {
    // NOSCRIPT is the error prefix the Redis protocol defines for an unknown SHA.
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    reply = await client.eval(s.lua, 1, key, ...args);
  }
  if (typeof reply !== 'number') throw new Error(`unexpected lock script reply (${typeof reply})`);
  return reply;
}
