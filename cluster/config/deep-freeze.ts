/** Recursive `Object.freeze`. */

/**
 * Freezes `value` and every plain object and array reachable from it, then returns it. Class
 * instances (such as `Secret`) are frozen too but not walked: their state is private.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  const proto = Object.getPrototypeOf(value) as unknown;
  if (Array.isArray(value) || proto === Object.prototype || proto === null) {
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
