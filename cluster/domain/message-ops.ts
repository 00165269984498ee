/** ProtectMessage / UnprotectMessage with a topic's key, on the C2 (reference helpers). */
import { E4Error, protectSymKey, unprotectSymKey } from '../../e4/index.ts';
import { C2Error } from '../errors.ts';
import { notFound } from './mutation.ts';
import { bindings, type DomainDeps } from './ports.ts';
import { checkTopicName } from './validation.ts';

/** How long a replaced topic key still opens messages, as on devices (e4go key transition). */
const TRANSITION_MS = 60 * 60 * 1000;

function checkData(deps: DomainDeps, data: unknown, field: string): Uint8Array {
  if (!(data instanceof Uint8Array) || data.length === 0) {
    throw new C2Error('C2_VALIDATION', `${field} is required and must not be empty`, {
      details: { field },
    });
  }
  if (data.length > deps.maxMessageBytes) {
    throw new C2Error('C2_VALIDATION', `${field} is larger than ${deps.maxMessageBytes} bytes`, {
      details: { field, limit: deps.maxMessageBytes },
    });
  }
  return data;
}

async function topicKey(
  deps: DomainDeps,
  topic: string,
  version?: number,
): Promise<{ key: Uint8Array; version: number; createdAt: Date }> {
  const row = await deps.store.read.topics.byName(topic);
  if (row === undefined) throw notFound('topic', topic);
  const wanted = version ?? row.keyVersion;
  const stored = await deps.store.read.topics.key(row.id, wanted);
  if (stored === undefined) throw notFound('topic', topic);
  return {
    key: await deps.sealer.open(stored.sealed, bindings.topicKey(row.id, wanted)),
    version: wanted,
    createdAt: stored.createdAt,
  };
}

/**
 * Protects `data` with the topic's current key in the symmetric format (as the reference does,
 * in both modes).
 * @throws C2Error `C2_NOT_FOUND`, `C2_VALIDATION`
 */
export async function protectMessage(
  deps: DomainDeps,
  topic: unknown,
  data: unknown,
): Promise<Uint8Array> {
  const name = checkTopicName(topic);
  const payload = checkData(deps, data, 'binaryData');
  const { key } = await topicKey(deps, name);
  try {
    return protectSymKey(payload, key, deps.now);
  } finally {
    key.fill(0);
  }
}

/**
 * Unprotects a symmetric-format message with the topic's current key, or the previous key while
 * it is less than 60 minutes old (as devices do).
 * @throws C2Error `C2_NOT_FOUND`, or `C2_VALIDATION` whose details carry the E4 error code
 */
export async function unprotectMessage(
  deps: DomainDeps,
  topic: unknown,
  data: unknown,
): Promise<Uint8Array> {
  const name = checkTopicName(topic);
  const message = checkData(deps, data, 'protectedBinaryData');
  const current = await topicKey(deps, name);
  try {
    return unprotectSymKey(message, current.key, deps.now);
  } catch (err) {
    if (!E4Error.is(err)) throw err;
    if (
      err.code === 'NotAuthentic' &&
      current.version > 1 &&
      deps.now() - current.createdAt.getTime() < TRANSITION_MS
    ) {
      const previous = await topicKey(deps, name, current.version - 1);
      try {
        return unprotectSymKey(message, previous.key, deps.now);
      } catch (second) {
        if (!E4Error.is(second)) throw second;
      } finally {
        previous.key.fill(0);
      }
    }
    throw new C2Error('C2_VALIDATION', `cannot unprotect: ${err.message}`, {
      details: { field: 'protectedBinaryData', e4Code: err.code },
    });
  } finally {
    current.key.fill(0);
  }
}
