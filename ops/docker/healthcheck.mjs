#!/usr/bin/env node
// Container health probe of one C2 process (Dockerfile HEALTHCHECK, docker-compose.ha.yml):
// GET <path> (default /healthz) on this process's own listener and exit 0 on a 2xx answer.
//
//   node ops/docker/healthcheck.mjs [/healthz|/readyz]
//
// Which listener: E4C2_ROLE=api or all (the default) probe the HTTP API listener (E4C2_HTTP_ADDR,
// default port 8888); E4C2_ROLE=worker has no API listener and probes the metrics listener
// (E4C2_METRICS_ADDR, default port 9464), which serves the same probes. A wildcard bind address
// is probed on loopback. TLS is tried as well as plain HTTP (the embedded default serves HTTPS with
// a self-signed certificate, a cluster node when E4C2_TLS_CERT is set): the probe checks that this
// process answers, not who it is, so the certificate is not verified.
import http from 'node:http';
import https from 'node:https';

const TIMEOUT_MS = 4000;
const path = process.argv[2] ?? '/healthz';
const role = process.env.E4C2_ROLE || 'all';
const worker = role === 'worker';
const address = worker
  ? process.env.E4C2_METRICS_ADDR || '127.0.0.1:9464'
  : process.env.E4C2_HTTP_ADDR || '127.0.0.1:8888';

/** `host:port` or `[v6]:port`; wildcard hosts become loopback. */
function target(text) {
  const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(text);
  if (match === null) throw new Error(`cannot read the listen address ${text}`);
  const host = match[1] ?? match[2] ?? '';
  const loopback = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return { host: loopback, port: Number(match[3]) };
}

/** Resolves with the status code, or rejects. */
function probe(secure, { host, port }) {
  return new Promise((resolve, reject) => {
    const client = secure ? https : http;
    const request = client.get(
      { host, port, path, timeout: TIMEOUT_MS, rejectUnauthorized: false },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    request.on('error', reject);
  });
}

const where = target(address);
const tlsFirst = !worker && Boolean(process.env.E4C2_TLS_CERT);
let status;
let failure;
for (const secure of tlsFirst ? [true, false] : [false, true]) {
  try {
    status = await probe(secure, where);
    break;
  } catch (err) {
    failure = err;
  }
}
if (status === undefined) {
  process.stderr.write(`unhealthy: ${address}${path}: ${failure?.message ?? 'no answer'}\n`);
  process.exit(1);
}
if (status < 200 || status > 299) {
  process.stderr.write(`unhealthy: ${address}${path} answered ${status}\n`);
  process.exit(1);
}
process.stdout.write(`healthy: ${address}${path} answered ${status}\n`);
