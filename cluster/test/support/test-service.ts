/**
 * The C2 domain as the integration tests build it on a pool: key vault under a given KEK,
 * in-process locks, the configuration's limits, symmetric-key mode unless told otherwise.
 */
import type pg from 'pg';
import { InProcessLockService } from '../../coordination/index.ts';
import { type AutomationCapabilities, C2Service, type DomainDeps } from '../../domain/index.ts';
import { KeyVault, LocalKekProvider } from '../../keyvault/index.ts';
import { PgC2Store, PgDataKeyStore } from '../../storage/index.ts';

/** What automation rules may do with {@link testService}'s defaults (symmetric-key mode). */
export const TEST_AUTOMATION_CAPABILITIES: AutomationCapabilities = {
  mode: 'symkey',
  pkServerKeygen: false,
};

/** A test's C2 domain and what it was built from. */
export interface TestService {
  readonly store: PgC2Store;
  readonly vault: KeyVault;
  readonly service: C2Service;
}

/**
 * Builds (does not `init()`) a C2Service on `pool` with a vault under `kek`.
 * @param overrides - any domain dependency to replace (delivery kick, mode, locks...)
 */
export async function testService(
  pool: pg.Pool,
  kek: Uint8Array,
  overrides: Partial<Omit<DomainDeps, 'store' | 'sealer'>> = {},
): Promise<TestService> {
  const store = new PgC2Store(pool);
  const vault = await KeyVault.create({
    provider: LocalKekProvider.fromKey(kek),
    store: new PgDataKeyStore(pool),
  });
  const service = new C2Service({
    store,
    sealer: vault,
    mode: 'symkey',
    kick: { kick: () => undefined },
    pkServerKeygen: false,
    maxPageSize: 1000,
    maxMessageBytes: 1 << 20,
    now: Date.now,
    locks: new InProcessLockService(),
    ...overrides,
  });
  return { store, vault, service };
}
