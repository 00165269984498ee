/**
 * The shape every mutating use-case shares (DESIGN R1, R3): one transaction that changes state,
 * writes outbox rows, the audit record and the idempotency record together; delivery is kicked
 * only after the commit.
 */
import { createHash } from 'node:crypto';
import { C2Error } from '../errors.ts';
import type { AuditEntry, C2Repositories } from '../storage/index.ts';
import { MAX_RESOURCE_LENGTH, type Lease } from '../coordination/index.ts';
import type { DomainDeps, RequestContext } from './ports.ts';

/**
 * Lease of the per-topic / per-client lock around one mutation (R2); extended automatically when
 * a transaction runs long.
 */
// Shorter than the 5 s lock wait of other nodes, so a node that dies mid-rotation blocks the topic
// for less than one wait; a live holder's lease is extended automatically.
const LOCK_TTL_MS = 4_000;

/** Marks a concurrent duplicate of an idempotent request: the transaction rolls back. */
class DuplicateRequest extends Error {}

function requestHash(operation: string, input: unknown): string {
  return createHash('sha256')
    .update(operation)
    .update('\0')
    .update(JSON.stringify(input))
    .digest('hex');
}

function replay(
  stored: { operation: string; requestHash: string; response: unknown },
  operation: string,
  hash: string,
): unknown {
  if (stored.operation !== operation || stored.requestHash !== hash) {
    throw new C2Error('C2_CONFLICT', 'this request id was already used for a different request', {
      details: { operation: stored.operation },
    });
  }
  return stored.response;
}

/**
 * The lock resource of a topic or a client (R2): `topic:<name>`, `client:<name>`. A name too
 * long for a lock resource with its prefix (topic names may have 512 bytes, the lock service
 * takes 512 characters) is locked by its SHA-256 instead: the same name always gives the same
 * resource, and names that fit keep the resource earlier releases used, so nodes of two releases
 * side by side still exclude each other.
 */
export function lockResourceOf(kind: 'topic' | 'client', name: string): string {
  const plain = `${kind}:${name}`;
  if (plain.length <= MAX_RESOURCE_LENGTH) return plain;
  return `${kind}:sha256:${createHash('sha256').update(name, 'utf8').digest('hex')}`;
}

/** A request id: 1 to 128 printable ASCII characters, as the Idempotency-Key header. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Runs `work` in a transaction with idempotency: with a request id, the first successful call's
 * response is stored in the same transaction, and every retry returns it without running again
 * (DESIGN I4). `input` is what identifies the request (never key material: it is hashed, but only
 * names and flags belong in it).
 */
export async function mutate<T>(
  deps: DomainDeps,
  ctx: RequestContext,
  operation: string,
  input: unknown,
  work: (tx: C2Repositories) => Promise<T>,
  lockResource?: string,
): Promise<T> {
  const hash = requestHash(operation, input);
  // Whatever carried it (a header, gRPC metadata, a body field): one rule for every request id.
  if (ctx.requestId !== undefined && !REQUEST_ID.test(ctx.requestId)) {
    throw new C2Error(
      'C2_VALIDATION',
      'request id must be 1 to 128 printable ASCII characters without spaces',
      { details: { field: 'requestId' } },
    );
  }
  // The unit separator cannot occur in a request id (checked above), so scopes never collide.
  const requestId =
    ctx.requestId === undefined || ctx.idempotencyScope === undefined
      ? ctx.requestId
      : `${ctx.idempotencyScope}\u001f${ctx.requestId}`;
  // TEST ONLY (docs/chaos.md): the broken variant that forgets request ids, breaking I4.
  const idempotent = deps.testFaults?.has('no-idempotency') !== true;
  if (requestId !== undefined && idempotent) {
    const stored = await deps.store.read.journal.findRequest(requestId);
    if (stored !== undefined) return replay(stored, operation, hash) as T;
  }
  try {
    const transaction = (lease?: Lease): Promise<T> =>
      deps.store.transaction(async (tx) => {
        const response = await work(tx);
        // A holder whose lease lapsed (a pause, a partition) must not commit a side effect it
        // thinks is serialised; the version compare-and-set would fence it anyway (R2).
        lease?.assertHeld();
        if (
          requestId !== undefined &&
          idempotent &&
          !(await tx.journal.saveRequest(requestId, operation, hash, response))
        ) {
          throw new DuplicateRequest();
        }
        return response;
      });
    const result =
      lockResource === undefined || deps.locks === undefined
        ? await transaction()
        : await deps.locks.withLock(lockResource, LOCK_TTL_MS, (lease) => transaction(lease));
    deps.kick.kick();
    return result;
  } catch (err) {
    if (!(err instanceof DuplicateRequest) || requestId === undefined) throw err;
    // A concurrent call with the same id committed first: answer what it answered.
    const stored = await deps.store.read.journal.findRequest(requestId);
    if (stored === undefined)
      throw new C2Error('C2_CONFLICT', 'concurrent request with the same id');
    return replay(stored, operation, hash) as T;
  }
}

/**
 * Writes the audit record of a key operation in the caller's transaction, with the actor and the
 * request id of the call.
 */
export async function audit(
  tx: C2Repositories,
  ctx: RequestContext,
  entry: Omit<AuditEntry, 'actor' | 'requestId'>,
): Promise<void> {
  await tx.journal.audit({
    ...entry,
    actor: ctx.actor,
    ...(ctx.requestId === undefined ? {} : { requestId: ctx.requestId }),
  });
}

/** @throws C2Error `C2_NOT_FOUND` naming what is missing */
export function notFound(kind: 'client' | 'topic', name: string): C2Error {
  return new C2Error('C2_NOT_FOUND', `${kind} not found`, { details: { [kind]: name } });
}

/** @throws C2Error `C2_CRYPTO_MODE` when the operation needs the other crypto mode */
export function requireMode(deps: DomainDeps, mode: DomainDeps['mode'], operation: string): void {
  if (deps.mode !== mode) {
    throw new C2Error(
      'C2_CRYPTO_MODE',
      `${operation} is only available in ${mode === 'pubkey' ? 'public-key' : 'symmetric-key'} mode`,
      { details: { mode: deps.mode } },
    );
  }
}
