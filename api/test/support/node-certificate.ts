/** A node's self-signed TLS certificate for tests that serve HTTPS (HTTP/2 and HTTP/1.1). */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSelfSignedCert } from '../../../cluster/embedded/index.ts';

/** A certificate for `localhost`/`127.0.0.1` and its key (PEM), and the directory holding them. */
export interface NodeCertificate {
  /** Remove it when done. */
  readonly dir: string;
  readonly cert: string;
  readonly key: string;
}

/** Makes the node's certificate and key in a new temporary directory. */
export async function nodeCertificate(): Promise<NodeCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'e4c2-h2-'));
  const pair = await ensureSelfSignedCert(dir);
  return {
    dir,
    cert: await readFile(pair.certPath, 'utf8'),
    key: await readFile(pair.keyPath, 'utf8'),
  };
}
