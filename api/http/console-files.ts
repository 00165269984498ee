/**
 * The web console's files (`web/`), served by the HTTP listener under `/console/`. They are read
 * once at start-up (a handful of small files), so a request never touches the disk and no path
 * from a request ever reaches the file system.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { sendJson } from './http-io.ts';

/** Where the console is served. */
export const CONSOLE_PREFIX = '/console/';

/** The files of the console and their types; nothing else in the directory is served. */
const CONSOLE_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'main.js': 'text/javascript; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
  'sse.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/**
 * Where a browser asks for a site's icon when a page names none (an API answer opened in a tab):
 * the console's icon answers it, rather than a 404 in the browser's console.
 */
const ROOT_ICON = '/favicon.ico';

/**
 * The console may load only its own files and call only this origin; no inline script, no
 * framing (clickjacking), no referrer leaking names in URLs.
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** The console's files, in memory. */
export class ConsoleFiles {
  private constructor(
    private readonly files: ReadonlyMap<string, { body: Buffer; type: string }>,
  ) {}

  /**
   * Reads the console from `dir` (the repository's `web/`).
   * @throws Error naming the missing file when the directory is incomplete
   */
  static async load(dir: string): Promise<ConsoleFiles> {
    const files = new Map<string, { body: Buffer; type: string }>();
    for (const [name, type] of Object.entries(CONSOLE_FILES))
      files.set(name, { body: await readFile(join(dir, name)), type });
    return new ConsoleFiles(files);
  }

  /**
   * Answers a console request: `/` and `/console` redirect to `/console/`, known files are
   * served (and `/favicon.ico` is the console's icon), anything else under the prefix is 404.
   * Returns false for paths it does not own.
   * Refusals have the API's JSON error body (what every other path answers) and the files'
   * security headers (an error page is a page too).
   * @param headers - added to every answer (the request id, as the API's answers carry it)
   */
  serve(
    method: string,
    path: string,
    res: ServerResponse,
    headers: Readonly<Record<string, string>> = {},
  ): boolean {
    const redirect = path === '/' || path === '/console';
    const icon = path === ROOT_ICON;
    if (!redirect && !icon && !path.startsWith(CONSOLE_PREFIX)) return false;
    if (method !== 'GET' && method !== 'HEAD') {
      refuse(res, headers, 405, 'C2_VALIDATION', `${method} is not allowed here; use GET, HEAD`);
      return true;
    }
    if (redirect) {
      res.writeHead(302, { ...headers, location: CONSOLE_PREFIX, 'content-length': 0 }).end();
      return true;
    }
    const file = this.files.get(
      icon ? 'favicon.svg' : path.slice(CONSOLE_PREFIX.length) || 'index.html',
    );
    if (file === undefined) {
      refuse(res, headers, 404, 'C2_NOT_FOUND', `no route for ${method} ${path}`);
    } else {
      res.writeHead(200, {
        ...headers,
        ...SECURITY_HEADERS,
        'content-type': file.type,
        'content-length': file.body.length,
      });
      res.end(method === 'HEAD' ? undefined : file.body);
    }
    return true;
  }
}

/**
 * A refusal in the API's `v1` error shape (no-store like the API's answers); a 405 names the
 * allowed methods, as the router's do.
 */
function refuse(
  res: ServerResponse,
  headers: Readonly<Record<string, string>>,
  status: 404 | 405,
  code: string,
  message: string,
): void {
  const allow = status === 405 ? { allow: 'GET, HEAD' } : undefined;
  const body = { error: { code, message, ...(allow === undefined ? {} : { details: allow }) } };
  sendJson(res, status, body, {
    ...headers,
    ...SECURITY_HEADERS,
    'cache-control': 'no-store',
    ...allow,
  });
}
