/**
 * Chromium for the browser test: where it is (Debian's `chromium` package, driven by
 * `playwright-core`, which downloads no browser of its own), and a watch on a page that collects
 * everything that went wrong in it: console errors and warnings (a CSP violation is one), uncaught
 * exceptions, requests that failed and answers of 400 and above.
 */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';

/** Where Debian, Ubuntu and Fedora put Chromium; `TEST_CHROMIUM` names another. */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** The Chromium executable to drive, or `undefined` when there is none. */
export function chromiumPath(): string | undefined {
  const chosen = process.env['TEST_CHROMIUM'];
  if (chosen !== undefined && chosen !== '') return existsSync(chosen) ? chosen : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** Why the browser test cannot run here, or `undefined` when it can. */
export function chromiumMissing(): string | undefined {
  const chosen = process.env['TEST_CHROMIUM'];
  if (chosen !== undefined && chosen !== '' && !existsSync(chosen))
    return `TEST_CHROMIUM names ${chosen}, which does not exist`;
  return chromiumPath() === undefined
    ? 'Chromium is not installed (apt-get install chromium, or set TEST_CHROMIUM to its path)'
    : undefined;
}

/** One thing that went wrong in a page. */
export interface PageProblem {
  readonly kind: 'console' | 'pageerror' | 'requestfailed' | 'response';
  /** The console message, the exception, `METHOD url: error` or `METHOD url: status`. */
  readonly text: string;
}

/** Collects a page's problems from the moment it is made. */
export class PageWatch {
  readonly problems: PageProblem[] = [];

  constructor(page: Page) {
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning')
        this.problems.push({ kind: 'console', text: message.text() });
    });
    page.on('pageerror', (err) => this.problems.push({ kind: 'pageerror', text: String(err) }));
    page.on('requestfailed', (request) =>
      this.problems.push({
        kind: 'requestfailed',
        text: `${request.method()} ${pathOf(request.url())}: ${request.failure()?.errorText ?? '?'}`,
      }),
    );
    page.on('response', (response) => {
      if (response.status() >= 400)
        this.problems.push({
          kind: 'response',
          text: `${response.request().method()} ${pathOf(response.url())}: ${response.status()}`,
        });
    });
  }

  /** The problems not matched by any of `expected` (each a pattern for `kind: text`). */
  unexpected(expected: readonly RegExp[] = []): string[] {
    return this.problems
      .map((p) => `${p.kind}: ${p.text}`)
      .filter((line) => !expected.some((pattern) => pattern.test(line)));
  }
}

/** A URL's path and query: the origin (a random port) is the same for every request. */
function pathOf(url: string): string {
  const { pathname, search } = new URL(url);
  return pathname + search;
}
