/**
 * Whether a rule's action can ever succeed in this deployment. A rule that cannot (a client key
 * rotation in public-key mode when the C2 may not generate device keys, a C2 key rotation in
 * symmetric-key mode) would fail at every firing; it is refused when it is written enabled. The
 * automation leader checks again before each firing, with its own settings: it may not be the
 * node that accepted the rule.
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
   * setting, so it can change at a restart after a rule was written, or differ between the API
   * node that accepted a rule and the leader that fires it: the firing then ends `failed` with
   * `C2_FAILED_PRECONDITION` and a reason naming the node (`rules firings`, `rules get`).
   */
  readonly pkServerKeygen: boolean;
}

/**
 * Why `action` can never succeed where `capabilities` hold, or undefined when it can.
 * @param where - where it cannot run, for the message: `here` (the API node that was asked to
 *   store the rule), or `on node worker-2` (the automation leader that fired it)
 * @returns `C2_FAILED_PRECONDITION` (rotate-client-key, public-key mode without server key
 *   generation) or `C2_CRYPTO_MODE` (rotate-c2-key in symmetric-key mode), with `details.mode`
 */
export function actionRefusal(
  action: RuleDraft['action'],
  capabilities: AutomationCapabilities,
  where = 'here',
): C2Error | undefined {
  const details = { mode: capabilities.mode };
  if (
    action === 'rotate-client-key' &&
    capabilities.mode === 'pubkey' &&
    !capabilities.pkServerKeygen
  )
    return new C2Error(
      'C2_FAILED_PRECONDITION',
      `rotate-client-key cannot run ${where}: in public-key mode the C2 does not generate device ` +
        'private keys (E4C2_PK_SERVER_KEYGEN is off), so every rotation would be refused; ' +
        'rotate with the key the device generated (e4c2 client rotate --public-key)',
      { details },
    );
  if (action === 'rotate-c2-key' && capabilities.mode === 'symkey')
    return new C2Error(
      'C2_CRYPTO_MODE',
      `rotate-c2-key cannot run ${where}: the C2 key exists only in public-key mode`,
      { details },
    );
  return undefined;
}

/**
 * Refuses an enabled rule whose action can never succeed here. A disabled rule is kept as is, so
 * that a rule can be prepared (or disabled) before the setting it needs is turned on.
 * @param field - the rule's name in error details, as the API's request names it
 * @throws C2Error as {@link actionRefusal} says, with `details.field` `<field>.action`
 */
export function checkRunnable(
  draft: RuleDraft,
  capabilities: AutomationCapabilities,
  field = 'rule',
): RuleDraft {
  if (!draft.enabled) return draft;
  const refusal = actionRefusal(draft.action, capabilities);
  if (refusal !== undefined)
    throw new C2Error(refusal.code, refusal.message, {
      details: { field: `${field}.action`, ...refusal.details },
    });
  return draft;
}
