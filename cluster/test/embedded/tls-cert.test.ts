// The self-signed certificate of a single-node C2: generated once with the subjectAltNames TLS
// clients check (localhost, 127.0.0.1, ::1), key 0600, reused afterwards, renewed when expiring.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmod, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkServerIdentity, connect, createServer, type PeerCertificate } from 'node:tls';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { C2Error } from '../../errors.ts';
import { ensureSelfSignedCert } from '../../embedded/index.ts';
import { makeTempDir, removeTempDir } from './support.ts';

const DAY_MS = 86_400_000;
const execFileAsync = promisify(execFile);

/** Connects to a TLS server and reports whether the client accepted it, and why not. */
async function handshake(
  port: number,
  ca: string,
  servername: string | undefined,
): Promise<{ authorized: boolean; error?: string; peer?: PeerCertificate }> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    ca,
    ...(servername === undefined ? {} : { servername }),
  });
  try {
    await once(socket, 'secureConnect');
    return { authorized: socket.authorized, peer: socket.getPeerCertificate() };
  } catch (err) {
    return { authorized: false, error: (err as NodeJS.ErrnoException).code ?? String(err) };
  } finally {
    socket.destroy();
  }
}

void describe('ensureSelfSignedCert', () => {
  let root: string | undefined;
  before(async () => {
    root = await makeTempDir('tls');
  });
  after(async () => {
    await removeTempDir(root);
  });

  void it('generates a pair for localhost, 127.0.0.1 and ::1 once, then reuses it', async () => {
    const dir = join(root ?? '', 'tls-a');
    const first = await ensureSelfSignedCert(dir);
    assert.equal(first.created, true);
    assert.equal(first.certPath, join(dir, 'cert.pem'));
    assert.equal(first.keyPath, join(dir, 'key.pem'));
    assert.equal((await stat(first.keyPath)).mode & 0o777, 0o600);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);

    const cert = new X509Certificate(await readFile(first.certPath));
    assert.equal(first.fingerprintSha256, cert.fingerprint256);
    assert.match(first.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkIP('::1'), '::1');
    assert.equal(cert.checkHost('example.com'), undefined);
    assert.equal(cert.ca, false);
    const days = (Date.parse(cert.validTo) - Date.now()) / DAY_MS;
    assert.ok(days > 824 && days <= 825, `valid for ${days} days`);
    assert.ok(Date.parse(cert.validFrom) < Date.now() - 30 * 60_000, 'valid from an hour ago');
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');

    const second = await ensureSelfSignedCert(dir);
    assert.deepEqual(second, { ...first, created: false });
  });

  void it('signs with SHA-256 (Go rejects SHA-1, the default of the selfsigned package)', async (t) => {
    const pair = await ensureSelfSignedCert(join(root ?? '', 'tls-sig'));
    let text: string;
    try {
      text = (await execFileAsync('openssl', ['x509', '-in', pair.certPath, '-noout', '-text']))
        .stdout;
    } catch {
      t.skip('openssl is not installed');
      return;
    }
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/);
    assert.match(text, /TLS Web Server Authentication/);
  });

  void it('is accepted by TLS clients that trust it, by name and by IP, and by nobody else', async () => {
    const pair = await ensureSelfSignedCert(join(root ?? '', 'tls-b'));
    const cert = await readFile(pair.certPath, 'utf8');
    const server = createServer({ cert, key: await readFile(pair.keyPath) }, (socket) => {
      socket.end();
    });
    server.listen({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    try {
      const address = server.address();
      assert.ok(address !== null && typeof address === 'object');
      const byName = await handshake(address.port, cert, 'localhost');
      assert.deepEqual([byName.authorized, byName.error], [true, undefined]);
      // No servername: Node checks the certificate against the IP it connected to.
      const byIp = await handshake(address.port, cert, undefined);
      assert.deepEqual([byIp.authorized, byIp.error], [true, undefined]);
      assert.ok(byIp.peer !== undefined);
      // What a client connecting to [::1] would check, without needing IPv6 on the machine.
      assert.equal(checkServerIdentity('::1', byIp.peer), undefined);
      assert.ok(checkServerIdentity('example.com', byIp.peer) instanceof Error);

      const other = await ensureSelfSignedCert(join(root ?? '', 'tls-other'));
      const stranger = await handshake(
        address.port,
        await readFile(other.certPath, 'utf8'),
        'localhost',
      );
      assert.equal(stranger.authorized, false);
      assert.ok(stranger.error !== undefined);
    } finally {
      server.close();
    }
  });

  void it('renews a certificate close to expiry and tightens a key readable by others', async () => {
    const dir = join(root ?? '', 'tls-c');
    const first = await ensureSelfSignedCert(dir);
    await chmod(first.keyPath, 0o644);
    const reused = await ensureSelfSignedCert(dir);
    assert.equal(reused.created, false);
    assert.equal((await stat(first.keyPath)).mode & 0o777, 0o600);

    const later = new Date(Date.now() + 800 * DAY_MS); // within 30 days of the end
    const renewed = await ensureSelfSignedCert(dir, { now: () => later });
    assert.equal(renewed.created, true);
    assert.notEqual(renewed.fingerprintSha256, first.fingerprintSha256);
    assert.ok(renewed.validTo.getTime() > later.getTime() + 800 * DAY_MS);
  });

  void it('replaces an incomplete pair and refuses files that are not a matching pair', async () => {
    const dir = join(root ?? '', 'tls-d');
    const first = await ensureSelfSignedCert(dir);
    await unlink(first.certPath); // as if a crash had come between writing the key and the cert
    const replaced = await ensureSelfSignedCert(dir);
    assert.equal(replaced.created, true);
    assert.notEqual(replaced.fingerprintSha256, first.fingerprintSha256);

    await writeFile(first.certPath, 'not PEM');
    await assert.rejects(ensureSelfSignedCert(dir), (err: unknown) => C2Error.is(err, 'C2_CONFIG'));

    const dir2 = join(root ?? '', 'tls-e');
    const pair = await ensureSelfSignedCert(dir2);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(pair.keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await assert.rejects(ensureSelfSignedCert(dir2), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_CONFIG'));
      assert.match(err.message, /are not a matching PEM certificate and key; delete both/);
      return true;
    });
  });
});
