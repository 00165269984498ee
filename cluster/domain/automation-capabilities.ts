/**
 * Whether a rule's action can ever succeed in this deployment. A rule that cannot (a client key
 * rotation in public-key mode when the C2 may not generate device keys, a C2 key rotation in
 * symmetric-key mode) would fail at every firing; it is refused when it is written enabled.
 */
import { C2Error } from '../errors.ts';
import type { RuleDraft } from '../storage/pg-automation.ts';
import type { C2CryptoMode } from './ports.ts';

/** What the deployment can do, as its C2 service is configured (DomainDeps). */
export interface AutomationCapabilities {
  /** The crypto mode, fixed at the deployment's first start. */
  readonly mode: C2CryptoMode;
  /**
   * `E4C2_PK_SERVER_KEYGEN`: may the C2 generate device private keys (public-key mode). A node
   * setting, so it can change at a restart after a rule was written: firings then fail with
   * `C2_FAILED_PRECONDITION` in their errors (`rules firings`), as the API call would.
   */
  readonly pkServerKeygen: boolean;
}

/**
 * Refuses an enabled rule whose action can never succeed here. A disabled rule is kept as is, so
 * that a rule can be prepared (or disabled) before the setting it needs is turned on.
 * @param field - the rule's name in error details, as the API's request names it
 * @throws C2Error `C2_FAILED_PRECONDITION` (rotate-client-key, public-key mode without server
 *   key generation) or `C2_CRYPTO_MODE` (rotate-c2-key in symmetric-key mode)
 */
export function checkRunnable(
  draft: RuleDraft,
  capabilities: AutomationCapabilities,
  field = 'rule',
): RuleDraft {
  if (!draft.enabled) return draft;
  const details = { field: `${field}.action`, mode: capabilities.mode };
  if (
    draft.action === 'rotate-client-key' &&
    capabilities.mode === 'pubkey' &&
    !capabilities.pkServerKeygen
  ) {
    throw new C2Error(
      'C2_FAILED_PRECONDITION',
      'rotate-client-key cannot run here: in public-key mode the C2 does not generate device ' +
        'private keys (E4C2_PK_SERVER_KEYGEN is off), so every rotation would be refused; ' +
        'rotate with the key the device generated (e4c2 client rotate --public-key)',
      { details },
    );
  }
  if (draft.action === 'rotate-c2-key' && capabilities.mode === 'symkey') {
    throw new C2Error(
      'C2_CRYPTO_MODE',
      'rotate-c2-key cannot run here: the C2 key exists only in public-key mode',
      { details },
    );
  }
  return draft;
}
