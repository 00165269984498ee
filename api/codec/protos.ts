/**
 * Loads the API's .proto files once with @grpc/proto-loader and compiles, from the same
 * descriptors, the field schemas the HTTP JSON codec uses. Both surfaces therefore read and write
 * exactly the messages the .proto files declare.
 */
import { fileURLToPath } from 'node:url';
import {
  loadSync,
  type EnumTypeDefinition,
  type MessageTypeDefinition,
  type PackageDefinition,
  type ServiceDefinition,
} from '@grpc/proto-loader';

/** Directory of the .proto files. */
export const PROTO_DIR = fileURLToPath(new URL('../proto/', import.meta.url));

/** The files every node serves. */
export const PROTO_FILES = [
  'c2.proto',
  'e4c2_v1.proto',
  'health.proto',
  'automation_v1.proto',
  'c2ae.proto',
] as const;

/**
 * Loader options: field names as written in the .proto (`binaryData`, `Code`, `key_version`),
 * 64-bit integers as decimal strings, enums by name, every field present with its default.
 */
export const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

/** A request or response as proto-loader represents it. */
export type ProtoMessage = Record<string, unknown>;

/** The JSON-relevant kind of a field. */
export type FieldKind =
  | 'string'
  | 'bool'
  | 'bytes'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'double'
  | 'enum'
  | 'message'
  | 'map';

/** One field of a message. */
export interface FieldSchema {
  /** Name in the .proto (and in the proto-loader object). */
  readonly name: string;
  /** proto3 JSON name (lowerCamelCase). */
  readonly jsonName: string;
  readonly kind: FieldKind;
  readonly repeated: boolean;
  /** Fully qualified message or enum type, for `message` and `enum` fields. */
  readonly typeName?: string;
  /** Key and value of a `map` field. */
  readonly map?: { readonly key: FieldSchema; readonly value: FieldSchema };
}

/** A message's fields, in declaration order. */
export interface MessageSchema {
  readonly fullName: string;
  readonly fields: readonly FieldSchema[];
}

const SCALARS: Readonly<Record<string, FieldKind>> = {
  TYPE_STRING: 'string',
  TYPE_BOOL: 'bool',
  TYPE_BYTES: 'bytes',
  TYPE_INT32: 'int32',
  TYPE_SINT32: 'int32',
  TYPE_SFIXED32: 'int32',
  TYPE_UINT32: 'uint32',
  TYPE_FIXED32: 'uint32',
  TYPE_INT64: 'int64',
  TYPE_SINT64: 'int64',
  TYPE_SFIXED64: 'int64',
  TYPE_UINT64: 'uint64',
  TYPE_FIXED64: 'uint64',
  TYPE_DOUBLE: 'double',
  TYPE_FLOAT: 'double',
  TYPE_ENUM: 'enum',
  TYPE_MESSAGE: 'message',
};

/** The subset of google.protobuf.DescriptorProto that proto-loader hands out. */
interface RawField {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly typeName: string;
}
interface RawMessage {
  readonly name: string;
  readonly field: readonly RawField[];
  readonly nestedType: readonly RawMessage[];
  readonly options: { readonly mapEntry?: boolean } | null;
}
interface RawEnum {
  readonly value: ReadonlyArray<{ readonly name: string; readonly number: number }>;
}

/** protoc's JSON name: underscores dropped, the next letter upper-cased. */
export function jsonNameOf(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function isMessageType(
  def: PackageDefinition[string],
): def is MessageTypeDefinition<object, object> {
  return 'format' in def && def.format === 'Protocol Buffer 3 DescriptorProto';
}
function isEnumType(def: PackageDefinition[string]): def is EnumTypeDefinition {
  return 'format' in def && def.format === 'Protocol Buffer 3 EnumDescriptorProto';
}

/** Message and enum schemas of a package definition, by fully qualified name. */
export class ProtoSchema {
  readonly #raw = new Map<string, RawMessage>();
  readonly #messages = new Map<string, MessageSchema>();
  readonly #enums = new Map<string, readonly string[]>();

  constructor(definition: PackageDefinition) {
    for (const [name, def] of Object.entries(definition)) {
      if (isMessageType(def)) this.#register(name, def.type as RawMessage);
      else if (isEnumType(def)) {
        const values = (def.type as RawEnum).value;
        const names: string[] = [];
        for (const v of values) names[v.number] = v.name;
        this.#enums.set(name, names);
      }
    }
  }

  #register(fullName: string, raw: RawMessage): void {
    this.#raw.set(fullName, raw);
    for (const nested of raw.nestedType) this.#register(`${fullName}.${nested.name}`, nested);
  }

  /** Resolves a type name as written in a field, from the scope of message `scope`. */
  #resolve(scope: string, typeName: string): string {
    const wanted = typeName.startsWith('.') ? typeName.slice(1) : typeName;
    const parts = scope.split('.');
    for (let i = parts.length; i >= 0; i--) {
      const candidate = [...parts.slice(0, i), wanted].join('.');
      if (this.#raw.has(candidate) || this.#enums.has(candidate)) return candidate;
    }
    throw new Error(`proto type ${typeName} (used in ${scope}) is not loaded`);
  }

  #field(scope: string, raw: RawField): FieldSchema {
    const kind = SCALARS[raw.type];
    if (kind === undefined) throw new Error(`unsupported proto field type ${raw.type}`);
    const base = {
      name: raw.name,
      jsonName: jsonNameOf(raw.name),
      repeated: raw.label === 'LABEL_REPEATED',
    };
    if (kind !== 'message' && kind !== 'enum') return { ...base, kind };
    const typeName = this.#resolve(scope, raw.typeName);
    const entry = this.#raw.get(typeName);
    if (kind === 'message' && entry?.options?.mapEntry === true) {
      const [key, value] = entry.field;
      if (key === undefined || value === undefined) throw new Error(`bad map entry ${typeName}`);
      return {
        ...base,
        kind: 'map',
        repeated: false,
        map: { key: this.#field(typeName, key), value: this.#field(typeName, value) },
      };
    }
    return { ...base, kind, typeName };
  }

  /** The schema of a message. @throws Error for an unknown message (a programming error) */
  message(fullName: string): MessageSchema {
    const cached = this.#messages.get(fullName);
    if (cached !== undefined) return cached;
    const raw = this.#raw.get(fullName);
    if (raw === undefined) throw new Error(`proto message ${fullName} is not loaded`);
    const schema = { fullName, fields: raw.field.map((f) => this.#field(fullName, f)) };
    this.#messages.set(fullName, schema);
    return schema;
  }

  /** Enum value names by number. @throws Error for an unknown enum */
  enumValues(fullName: string): readonly string[] {
    const values = this.#enums.get(fullName);
    if (values === undefined) throw new Error(`proto enum ${fullName} is not loaded`);
    return values;
  }
}

/** The loaded API protos. */
export interface LoadedProtos {
  readonly definition: PackageDefinition;
  readonly schema: ProtoSchema;
  /** A service definition (`pb.C2`, `e4c2.v1.C2Admin`, `grpc.health.v1.Health`). */
  service(fullName: string): ServiceDefinition;
}

let loaded: LoadedProtos | undefined;

/** Loads (once per process) and returns the API protos. */
export function loadProtos(): LoadedProtos {
  if (loaded !== undefined) return loaded;
  const definition = loadSync([...PROTO_FILES], LOADER_OPTIONS);
  const schema = new ProtoSchema(definition);
  loaded = {
    definition,
    schema,
    service(fullName) {
      const def = definition[fullName];
      if (def === undefined || 'format' in def)
        throw new Error(`proto service ${fullName} is not loaded`);
      return def;
    },
  };
  return loaded;
}
