/**
 * Builds a route's request message as grpc-gateway did: the JSON body for `body: "*"` routes,
 * otherwise the query string for unbound top-level fields, then the path parameters on top.
 * Everything is strict: unknown or repeated query parameters, unknown body fields, wrong types,
 * and a body field contradicting the path are `C2_VALIDATION` errors naming the field.
 */
import { C2Error } from '../../cluster/errors.ts';
import { decodeMessage, decodeQueryValue, emptyMessage } from '../codec/proto-json.ts';
import type { ProtoMessage, ProtoSchema } from '../codec/protos.ts';
import { parseJsonBody } from './http-io.ts';
import type { OperationRoute } from './routes.ts';

function invalid(field: string, message: string): C2Error {
  return new C2Error('C2_VALIDATION', message, { details: { field } });
}

/** Sets a (possibly nested, dotted) path parameter into the message. */
function setPathParam(
  schema: ProtoSchema,
  type: string,
  message: ProtoMessage,
  path: string,
  value: string,
): void {
  const [head, ...rest] = path.split('.');
  const field = schema.message(type).fields.find((f) => f.name === head);
  if (field === undefined || head === undefined)
    throw new Error(`route parameter ${path} is not a field of ${type}`);
  if (rest.length === 0) {
    const given = message[field.name];
    if (typeof given === 'string' && given !== '' && given !== value) {
      throw invalid(
        field.name,
        `${field.name} is given by the path; the body must not contradict it`,
      );
    }
    message[field.name] = value;
    return;
  }
  const nestedType = field.typeName ?? '';
  let nested = message[field.name];
  if (typeof nested !== 'object' || nested === null) {
    nested = emptyMessage(schema, nestedType);
    message[field.name] = nested;
  }
  setPathParam(schema, nestedType, nested as ProtoMessage, rest.join('.'), value);
}

/**
 * The request message of `route` for one HTTP request.
 * @param params - decoded path parameters (field paths to values)
 * @param query - the query string
 * @param body - the raw body
 * @param strayBody - what a route without a body does with one: `ignore` it (the reference
 *   routes, as grpc-gateway did) or `refuse` it (`/v1`: a `{"reset":true}` sent in the body of
 *   a DELETE was dropped silently, and the client removed without its reset)
 * @throws C2Error `C2_VALIDATION`
 */
export function buildRequestMessage(
  schema: ProtoSchema,
  route: OperationRoute,
  params: Readonly<Record<string, string>>,
  query: URLSearchParams,
  body: Buffer,
  strayBody: 'ignore' | 'refuse' = 'ignore',
): ProtoMessage {
  const type = route.requestType;
  let message: ProtoMessage;
  if (route.body) {
    message = decodeMessage(schema, type, parseJsonBody(body));
    const [first] = query.keys();
    if (first !== undefined)
      throw invalid(first, `unknown query parameter "${first}" (this route takes a JSON body)`);
  } else {
    if (strayBody === 'refuse' && body.toString('latin1').trim() !== '')
      throw invalid('body', 'this route takes no body: its parameters go in the query string');
    message = emptyMessage(schema, type);
    const fields = schema.message(type).fields;
    const bound = new Set(Object.keys(params).map((p) => p.split('.')[0]));
    const given = new Map<string, string>();
    for (const key of new Set(query.keys())) {
      const name = route.queryAliases[key] ?? key;
      const field = fields.find(
        (f) => (f.name === name || f.jsonName === name) && !bound.has(f.name),
      );
      if (field === undefined) throw invalid(key, `unknown query parameter "${key}"`);
      // One field under two names (`after` and `after_seq`): neither may silently win.
      const earlier = given.get(field.name);
      if (earlier !== undefined) {
        throw invalid(key, `query parameter "${key}" is given twice (also as "${earlier}")`);
      }
      given.set(field.name, key);
      const values = query.getAll(key);
      if (field.repeated) {
        message[field.name] = values.map((v) => decodeQueryValue(schema, field, v, key));
      } else if (values.length > 1) {
        throw invalid(key, `query parameter "${key}" is given more than once`);
      } else {
        message[field.name] = decodeQueryValue(schema, field, values[0] ?? '', key);
      }
    }
  }
  for (const [path, value] of Object.entries(params))
    setPathParam(schema, type, message, path, value);
  return message;
}
