/**
 * One running proxy per state directory. A second start with the same configuration (a mistaken
 * second `npm run proxy`, a supervisor that starts one too many) would otherwise connect with the
 * same control client id and take the running proxy's control session over: the C2's commands
 * would be applied and saved by the second process only, and the running one would never hold
 * them in memory. So the start takes `<stateDir>/proxy.lock` before it touches the broker or the
 * stores, and a second start is refused naming the process that holds it. The lock itself (its
 * file, stale locks, pid reuse) is the one the C2's data directory uses: runtime/dir-lock.ts.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DirLock, DirLockError } from '../runtime/dir-lock.ts';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';
import type { ProxyLogger } from './logger.ts';

/** The lock file's name in the state directory. */
export const LOCK_FILE = 'proxy.lock';

/** A state directory held by this process until {@link StateDirLock.release}. */
export class StateDirLock {
  private constructor(private readonly lock: DirLock) {}

  /** The lock file. */
  get path(): string {
    return this.lock.path;
  }

  /**
   * Takes the lock of `stateDir` (made, mode 0700, when missing), taking over a stale one.
   * @throws ProxyError `PROXY_STATE_IN_USE` naming the directory and the pid of the running
   *   proxy that holds it; `PROXY_KEY_STORE` when the directory or the file cannot be made or read
   */
  static async acquire(stateDir: string, logger: ProxyLogger): Promise<StateDirLock> {
    const dir = resolve(stateDir);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `stateDir ${dir}: cannot create the directory: ${fsFailure(err)}`,
        { cause: err },
      );
    }
    const path = join(dir, LOCK_FILE);
    try {
      return new StateDirLock(
        await DirLock.acquire(dir, LOCK_FILE, {
          onStaleTakenOver: (stale) => {
            logger.warn(
              { stateDir: dir, stalePid: stale?.pid },
              `stateDir lock ${path} left by a proxy that is no longer running (pid ${stale?.pid ?? 'unknown'}): taken over`,
            );
          },
        }),
      );
    } catch (err) {
      if (DirLockError.is(err, 'DIR_LOCK_IN_USE')) {
        const holder = err.holder ?? { pid: process.pid };
        const since = holder.since === undefined ? '' : ` since ${holder.since}`;
        throw new ProxyError(
          ProxyErrorCode.StateInUse,
          `stateDir ${dir} is in use by another proxy (pid ${holder.pid}${since}; lock ${err.path}): stop it first, or give this proxy a state directory of its own`,
          { cause: err },
        );
      }
      if (DirLockError.is(err)) {
        throw new ProxyError(
          ProxyErrorCode.StateInUse,
          `stateDir ${dir}: the lock ${err.path} keeps changing (several proxies starting at once?); start one proxy per state directory`,
          { cause: err },
        );
      }
      throw new ProxyError(
        ProxyErrorCode.KeyStore,
        `stateDir ${dir}: cannot take the lock ${path}: ${fsFailure(err, path)}`,
        { cause: err },
      );
    }
  }

  /** Releases the lock (removes the file if it is still ours); idempotent. */
  release(): Promise<void> {
    return this.lock.release();
  }
}
