/**
 * The check of `OTEL_RESOURCE_ATTRIBUTES` at start-up. The variable is read by the OpenTelemetry
 * SDK's resource detector, not by `loadConfig`, and the detector drops the whole value when one
 * entry is malformed, saying so at debug level only: a deployment then runs without its
 * `e4c2.site` (or its `service.name`), and its traces are not where the dashboards look. The
 * node refuses to start instead, like for the other `OTEL_*` settings.
 *
 * The rules are the detector's (`@opentelemetry/resources` EnvDetector): entries separated by
 * `,` (empty ones ignored), each `key=value` with exactly one `=`, a key not blank once trimmed,
 * both percent-decodable, and at most 255 characters each once decoded. `,` and `=` inside a key
 * or value must be percent-encoded (`%2C`, `%3D`), as the specification says.
 */

/** The variable's name. */
export const RESOURCE_ATTRIBUTES_ENV = 'OTEL_RESOURCE_ATTRIBUTES';

/** Longest key or value (decoded) the detector keeps. */
const MAX_LENGTH = 255;

/** Longest part of an entry quoted in a problem. */
const MAX_QUOTED = 80;

const quoted = (text: string): string =>
  JSON.stringify(text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text);

function decodes(text: string): boolean {
  try {
    decodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why the OpenTelemetry SDK would drop this value of `OTEL_RESOURCE_ATTRIBUTES`, or undefined
 * when it takes it.
 */
export function resourceAttributesProblem(raw: string): string | undefined {
  const entries = raw.split(',').filter((entry) => entry.trim() !== '');
  for (const [i, entry] of entries.entries()) {
    const which = `entry ${i + 1} (${quoted(entry.trim())})`;
    const parts = entry.split('=');
    if (parts.length !== 2) {
      return `${which} is not key=value: each entry has exactly one "=", and a "," or "=" inside a key or value is percent-encoded (%2C, %3D)`;
    }
    const key = (parts[0] ?? '').trim();
    const value = (parts[1] ?? '').trim();
    if (key === '') return `${which} has no key`;
    if (!decodes(key) || !decodes(value)) {
      return `${which} has a "%" that does not start a valid percent-encoded UTF-8 sequence (a literal "%" is %25)`;
    }
    if (decodeURIComponent(key).length > MAX_LENGTH)
      return `${which}: the key is longer than ${MAX_LENGTH} characters`;
    if (decodeURIComponent(value).length > MAX_LENGTH)
      return `${which}: the value is longer than ${MAX_LENGTH} characters`;
  }
  return undefined;
}
