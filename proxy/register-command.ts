/**
 * `npm run proxy -- register`: registers the configured identities with the C2.
 *
 * An identity the C2 already knows keeps the key the C2 holds: posting the proxy's stored key
 * again would undo any rotation the C2 made since (its SetIdKey may still wait in the proxy's
 * control session at the broker), and once the proxy applied that command the two sides would
 * hold different keys and every later command would be rejected as not authentic. Only
 * `--replace` posts the stored key of a known identity, deliberately.
 */
import type { ProxyConfig } from './config.ts';
import { hasControlSession, pendingRotations, setPendingRotations } from './deferred-rotations.ts';
import { ProxyError, ProxyErrorCode } from './errors.ts';
import { KeyRing } from './key-ring.ts';
import { loadOrCreateLocalKey } from './local-key.ts';
import { refuseLostStores } from './lost-stores.ts';
import { C2Registrar, newIdentityKeys } from './registration.ts';

/** The flags of `register`. */
export interface RegisterOptions {
  /** Ask the C2 to rotate each identity key afterwards (`--rotate`). */
  readonly rotate: boolean;
  /** Post the stored key even for identities the C2 already knows (`--replace`). */
  readonly replace: boolean;
  /** `--new-local-key`: start over after a lost local key (see local-key.ts). */
  readonly newLocalKey?: boolean;
}

/**
 * Registers every identity of `config` with the C2 and reports each one with `print` (a line).
 * @throws ProxyError `PROXY_CONFIG` (no `c2.url`, `--rotate` in public-key mode),
 *   `PROXY_KEY_STORE`, `PROXY_REGISTRATION`
 */
export async function registerIdentities(
  config: ProxyConfig,
  options: RegisterOptions,
  print: (line: string) => void,
): Promise<void> {
  if (config.c2.url === undefined)
    throw new ProxyError(ProxyErrorCode.Config, 'c2.url is required');
  if (options.rotate && config.c2.mode === 'public-key') {
    throw new ProxyError(
      ProxyErrorCode.Config,
      '--rotate: a public-key identity keeps its own key pair (the C2 never holds the private key)',
    );
  }
  // First: starting over after a lost local key moves the stores aside, which makes their
  // identities lost stores.
  const localKey = await loadOrCreateLocalKey(config.localKeyFile, {
    stateDir: config.stateDir,
    startOver: options.newLocalKey === true,
  });
  // --replace posts the new key of such an identity, as the recovery needs.
  if (!options.replace) await refuseLostStores(config.stateDir, config.identities);
  const ring = await KeyRing.open(
    config.stateDir,
    localKey,
    config.identities,
    newIdentityKeys(config),
  );
  const registrar = C2Registrar.of({ ...config.c2, url: config.c2.url });
  // Before the first start the broker would drop the new identity key: the proxy asks for the
  // rotation itself once its control topics are subscribed (see deferred-rotations.ts).
  const defer = options.rotate && !(await hasControlSession(config.stateDir));
  const deferred = defer ? await pendingRotations(config.stateDir) : [];
  for (const identity of ring.all()) {
    const topics = identity.topics.join(', ') || 'none';
    let line: string;
    if (!options.replace && (await registrar.isRegistered(identity.name))) {
      // Attaching twice is a no-op at the C2: topics added to the configuration get attached.
      for (const topic of identity.topics) await registrar.attachTopic(identity.name, topic);
      line = `${identity.name}: already registered with the C2, its key left as is (topics: ${topics})`;
    } else {
      await registrar.register(identity);
      line = `registered ${identity.name} (topics: ${topics})`;
    }
    if (defer) {
      deferred.push(identity.name);
      await setPendingRotations(config.stateDir, deferred);
      line += ", rotation deferred to the proxy's first start (no control session yet)";
    } else if (options.rotate) {
      await registrar.rotateClient(identity.name);
      line += ', rotation requested';
    }
    print(line);
  }
}
