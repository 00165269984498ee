/**
 * The web console's files (`web/`), served by the HTTP listener under `/console/`. They are read
 * once at start-up (a handful of small files), so a request never touches the disk and no path
 * from a request ever reaches the file system.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';

/** Where the console is served. */
export const CONSOLE_PREFIX = '/console/';

/** The files of the console and their types; nothing else in the directory is served. */
const CONSOLE_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'main.js': 'text/javascript; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
  'sse.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

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
   * served, anything else under the prefix is 404. Returns false for paths it does not own.
   */
  serve(method: string, path: string, res: ServerResponse): boolean {
    if (path === '/' || path === '/console') {
      res.writeHead(302, { location: CONSOLE_PREFIX, 'content-length': 0 }).end();
      return true;
    }
    if (!path.startsWith(CONSOLE_PREFIX)) return false;
    const name = path.slice(CONSOLE_PREFIX.length) || 'index.html';
    const file = this.files.get(name);
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
    } else if (file === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    } else {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': file.type,
        'content-length': file.body.length,
      });
      res.end(method === 'HEAD' ? undefined : file.body);
    }
    return true;
  }
}
