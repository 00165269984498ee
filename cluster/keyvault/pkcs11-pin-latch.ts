/**
 * Remembers, for this process, the PINs a PKCS#11 token refused. An HSM counts wrong-PIN logins
 * and, past its limit (often 3 to 10), locks the user PIN (`CKR_PIN_LOCKED`): the KEK is then
 * offline for every node until a security officer unlocks the token. A provider that re-logs in
 * after a lost session must therefore never try a refused PIN again; one attempt per node (and per
 * restart) is all the token sees.
 */
import { C2Error } from '../errors.ts';

/**
 * Login return values that are about the PIN itself: trying the same PIN again cannot succeed,
 * and each try may count towards the lock-out.
 */
export const PIN_REFUSED = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
  'CKR_PIN_LOCKED',
  'CKR_PIN_EXPIRED',
]);

/**
 * The token's answer to each refused PIN, by module, token and PIN. Never emptied: a PIN refused
 * once is refused for the life of the process, even after another PIN logged in (an HSM counts
 * the failures of the user, whichever session makes them).
 */
const refused = new Map<string, string>();

const entry = (modulePath: string, tokenLabel: string, pin: string): string =>
  `${modulePath}\0${tokenLabel}\0${pin}`;

/** What the operator must do: the setting named, since only a restart re-reads it. */
const REMEDY =
  'no login is tried again with this PIN, since repeated wrong PINs lock the token (CKR_PIN_LOCKED); set E4C2_KEK_PKCS11_PIN to the token user PIN and restart the node';

/**
 * The error of a PIN the token refused with `reason`, without the PIN.
 * @param earlier - the refusal was recorded by an earlier login, not this one
 */
export function pinRefusedError(
  tokenLabel: string,
  reason: string,
  earlier: boolean,
  cause?: unknown,
): C2Error {
  const what = earlier ? `refused this PIN earlier (${reason})` : `failed: ${reason}`;
  return new C2Error('C2_KEY_VAULT', `PKCS#11 login to token "${tokenLabel}" ${what}; ${REMEDY}`, {
    ...(cause === undefined ? {} : { cause }),
    details: { option: 'pin', reason },
  });
}

/** Whether `err` is a {@link pinRefusedError}: final until a restart, never retried. */
export function isPinRefusal(err: unknown): boolean {
  if (!C2Error.is(err) || err.code !== 'C2_KEY_VAULT') return false;
  const reason = err.details?.['reason'];
  return err.details?.['option'] === 'pin' && typeof reason === 'string' && PIN_REFUSED.has(reason);
}

/** The refusal recorded for exactly this PIN on this token, if any. */
export function refusalOf(modulePath: string, tokenLabel: string, pin: string): string | undefined {
  return refused.get(entry(modulePath, tokenLabel, pin));
}

/**
 * Records that the token refused `pin` with `reason`.
 * @returns true the first time (then the caller logs it), false when it was known already
 */
export function recordRefusal(
  modulePath: string,
  tokenLabel: string,
  pin: string,
  reason: string,
): boolean {
  const key = entry(modulePath, tokenLabel, pin);
  if (refused.has(key)) return false;
  refused.set(key, reason);
  return true;
}
