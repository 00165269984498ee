/**
 * A small, explicit path router with grpc-gateway's template syntax: literal segments,
 * `{field.path}` (one segment) and one `{field.path=**}` (one or more segments, may contain `/`),
 * optionally followed by literal segments.
 *
 * Literals are compared with the raw (still percent-encoded) segments and parameters are decoded
 * afterwards, so an encoded `%2F` never acts as a separator and an encoded literal never acts as
 * a route keyword.
 */
import { C2Error } from '../../cluster/errors.ts';

type Segment = { readonly literal: string } | { readonly param: string };

/** A compiled path template. */
export interface PathPattern {
  readonly template: string;
  readonly prefix: readonly Segment[];
  /** The `{name=**}` parameter, if any. */
  readonly rest?: string;
  /** Literal segments after the `**` parameter. */
  readonly suffix: readonly string[];
}

/**
 * Compiles a template such as `/e4/topic/{topic=**}/clients/count`.
 * @throws Error for a malformed template (a programming error)
 */
export function compilePath(template: string): PathPattern {
  if (!template.startsWith('/')) throw new Error(`route ${template} must start with /`);
  const prefix: Segment[] = [];
  const suffix: string[] = [];
  let rest: string | undefined;
  for (const part of template.slice(1).split('/')) {
    const deep = /^\{([\w.]+)=\*\*\}$/.exec(part);
    const single = /^\{([\w.]+)\}$/.exec(part);
    if (deep?.[1] !== undefined) {
      if (rest !== undefined) throw new Error(`route ${template} has two ** parameters`);
      rest = deep[1];
    } else if (single?.[1] !== undefined) {
      if (rest !== undefined) throw new Error(`route ${template}: a parameter after **`);
      prefix.push({ param: single[1] });
    } else if (part.includes('{')) {
      throw new Error(`route ${template}: bad segment ${part}`);
    } else if (rest === undefined) prefix.push({ literal: part });
    else suffix.push(part);
  }
  return { template, prefix, ...(rest === undefined ? {} : { rest }), suffix };
}

/**
 * Decodes one path segment.
 * @throws C2Error `C2_VALIDATION` for malformed percent-encoding
 */
function decodeSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new C2Error('C2_VALIDATION', 'the path has malformed percent-encoding', {
      details: { field: 'path' },
    });
  }
}

/**
 * Matches raw path segments (the path without its leading `/`, split on `/`) against a pattern.
 * A `**` parameter takes at least one segment when literals follow it, so the suffix routes
 * never see an empty topic; at the end of a template it may take none (an empty value).
 * @returns decoded parameters, or `undefined` when the path does not match
 * @throws C2Error `C2_VALIDATION` for malformed percent-encoding in a parameter
 */
export function matchPath(
  pattern: PathPattern,
  segments: readonly string[],
): Record<string, string> | undefined {
  const { prefix, suffix, rest } = pattern;
  if (rest === undefined && segments.length !== prefix.length) return undefined;
  const minRest = suffix.length > 0 ? 1 : 0;
  if (rest !== undefined && segments.length < prefix.length + suffix.length + minRest)
    return undefined;
  for (let i = 0; i < prefix.length; i++) {
    const seg = prefix[i];
    if (seg !== undefined && 'literal' in seg && seg.literal !== segments[i]) return undefined;
  }
  for (let i = 0; i < suffix.length; i++) {
    if (suffix[suffix.length - 1 - i] !== segments[segments.length - 1 - i]) return undefined;
  }
  const params: Record<string, string> = {};
  prefix.forEach((seg, i) => {
    if ('param' in seg) params[seg.param] = decodeSegment(segments[i] ?? '');
  });
  if (rest !== undefined) {
    params[rest] = segments
      .slice(prefix.length, segments.length - suffix.length)
      .map(decodeSegment)
      .join('/');
  }
  return params;
}
