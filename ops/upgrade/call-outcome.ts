/**
 * How a call the fleet makes itself (outside the chaos driver: NewClient, a device's own key
 * rotation) failed, as the driver records its own: a 5xx or no answer may have taken effect
 * (`unknown`), a 4xx did not (`fail`).
 */
import type { JsonAnswer } from '../../bin/test/support/http-json.ts';

/** The outcome and error of a call that did not succeed (`res`: the answer, or why none came). */
export function failedCall(res: JsonAnswer | string): {
  readonly outcome: 'unknown' | 'fail';
  readonly error: string;
} {
  if (typeof res === 'string') return { outcome: 'unknown', error: res };
  const code = typeof res.json['code'] === 'string' ? ` ${res.json['code']}` : '';
  return { outcome: res.status >= 500 ? 'unknown' : 'fail', error: `HTTP ${res.status}${code}` };
}
