/** Row mapping helpers shared by the PostgreSQL repositories. */
import type { Queryable } from './pool.ts';

/** A result row as pg returns it. */
export type Row = Record<string, unknown>;

/** Runs a query and returns its rows. */
export async function rows(
  db: Queryable,
  sql: string,
  params: readonly unknown[] = [],
): Promise<Row[]> {
  const result = await db.query(sql, params as unknown[]);
  return result.rows as Row[];
}

/** Runs a query and returns its first row, if any. */
export async function firstRow(
  db: Queryable,
  sql: string,
  params: readonly unknown[] = [],
): Promise<Row | undefined> {
  return (await rows(db, sql, params))[0];
}

/** Runs a query and returns the number of rows it touched. */
export async function touched(
  db: Queryable,
  sql: string,
  params: readonly unknown[] = [],
): Promise<number> {
  const result = await db.query(sql, params as unknown[]);
  return result.rowCount ?? 0;
}

/** Reads a column as a string (bigint ids come back as strings). */
export function str(row: Row, column: string): string {
  const v = row[column];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  throw new TypeError(`column ${column} is not a string`);
}

/** Reads a nullable string column. */
export function strOrNull(row: Row, column: string): string | null {
  return row[column] === null || row[column] === undefined ? null : str(row, column);
}

/** Reads an integer column. */
export function int(row: Row, column: string): number {
  const v = row[column];
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  throw new TypeError(`column ${column} is not an integer`);
}

/** Reads a nullable integer column. */
export function intOrNull(row: Row, column: string): number | null {
  return row[column] === null || row[column] === undefined ? null : int(row, column);
}

/** Reads a bytea column. */
export function bytes(row: Row, column: string): Uint8Array {
  const v = row[column];
  if (!(v instanceof Uint8Array)) throw new TypeError(`column ${column} is not bytea`);
  return new Uint8Array(v);
}

/** Reads a nullable bytea column. */
export function bytesOrNull(row: Row, column: string): Uint8Array | null {
  return row[column] === null || row[column] === undefined ? null : bytes(row, column);
}

/** Reads a timestamp column. */
export function date(row: Row, column: string): Date {
  const v = row[column];
  if (!(v instanceof Date)) throw new TypeError(`column ${column} is not a timestamp`);
  return v;
}

/** Reads a nullable timestamp column. */
export function dateOrNull(row: Row, column: string): Date | null {
  return row[column] === null || row[column] === undefined ? null : date(row, column);
}

/** A Buffer view for binding bytea parameters. */
export function buf(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * Runs an `UPDATE ... RETURNING <device id> AS client_id` and, in the same statement, writes one
 * outbox row per device it touched (DESIGN R3): a fan-out of any size is one round trip.
 * `reasonParam` is the placeholder number of the outbox reason among `params`.
 * @returns the number of devices queued
 */
export async function updateAndQueue(
  db: Queryable,
  update: string,
  params: readonly unknown[],
  reasonParam: number,
): Promise<number> {
  const row = await firstRow(
    db,
    `WITH changed AS (${update}), queued AS (
       INSERT INTO outbox (client_id, reason) SELECT client_id, $${reasonParam} FROM changed RETURNING 1
     )
     SELECT count(*) AS n FROM queued`,
    params,
  );
  return row === undefined ? 0 : int(row, 'n');
}
