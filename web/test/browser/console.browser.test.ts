/**
 * The web console in a real browser (headless Chromium) against a real C2 node (`bin/start.ts`
 * on its embedded defaults, over HTTPS with its self-signed certificate, authentication on):
 * what jsdom cannot show. The node's files, headers (CSP) and API, the browser's fetch, streams,
 * URL encoding and layout, end to end.
 *
 * - Signing in: without a token, or with a wrong one, the console says `C2_UNAUTHENTICATED`;
 *   with a read-only token it shows everything, but Rotate is refused (`C2_PERMISSION_DENIED` in
 *   the banner, which Dismiss clears).
 * - As an operator: the clients list in pages (the node's maximum page size is 5, which the
 *   console learns), a topic and a client created meanwhile arriving through the event stream,
 *   Rotate and Resync with the rollout and the events that follow, a client's topics.
 * - Layout: no sideways scrolling on a phone; clients under topics on a laptop, beside them on a
 *   wide screen.
 * - No console error (a CSP violation is one), no uncaught exception, no failed request and no
 *   refused call other than the ones the test provokes.
 *
 * Skipped, saying why, without Chromium (apt-get install chromium); CI installs it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  chromium,
  request,
  type APIRequestContext,
  type Browser,
  type Page,
} from 'playwright-core';
import { chromiumMissing, chromiumPath, PageWatch } from './support/browser.ts';
import { startConsoleNode, type ConsoleNode } from './support/console-node.ts';

/** The node's largest page: the seven clients take two pages. */
const MAX_PAGE = 5;
const CLIENTS = Array.from({ length: 7 }, (_, i) => `browser-c-${String(i + 1).padStart(2, '0')}`);
const TOKEN_KEY = 'e4c2-token';
/** Console tabs open at once in one browser: more than HTTP/1.1's six connections per origin. */
const TABS = 8;
/**
 * What a page provokes by design on a node whose maximum page is below 50: the console asks for
 * 50 rows, is refused (`limit must be at most 5`) and asks again with 5 (docs/console.md). The
 * browser logs the refusal as a console error. Once per list and page: the two lists load
 * independently, so both first requests are refused.
 */
const PAGE_SIZE_LEARNT = [
  /^response: GET \/v1\/(topics|clients)\?limit=50&cursor=: 400$/,
  /^console: Failed to load resource: the server responded with a status of 400 /,
];

/** What went wrong in the page beyond `expected`, after checking the page size was learnt once. */
function unexpectedProblems(watch: PageWatch, expected: readonly RegExp[] = []): string[] {
  const learnt = watch.problems.filter(
    (p) => p.kind === 'response' && PAGE_SIZE_LEARNT[0]?.test(`response: ${p.text}`) === true,
  );
  assert.deepEqual(
    learnt.map((p) => p.text.replace(/\?.*/, '')).sort(),
    ['GET /v1/clients', 'GET /v1/topics'],
    'the console learns the maximum page size once per list',
  );
  return watch.unexpected([...PAGE_SIZE_LEARNT, ...expected]);
}

/** Re-runs `check` until it stops throwing; rethrows its last error after `ms`. */
async function eventually(check: () => Promise<void>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The text of each cell of each row of `#tbody`. */
function cells(page: Page, tbody: string): Promise<string[][]> {
  return page.$$eval(`#${tbody} > tr`, (rows) =>
    rows.map((tr) => [...tr.children].map((td) => td.textContent)),
  );
}

/** The rows of `#tbody` that are rows of their own (a client's open topics row is not). */
async function rowNames(page: Page, tbody: string): Promise<string[]> {
  return (await cells(page, tbody)).filter((r) => r.length > 1).map((r) => r[0] ?? '');
}

/** The row of `name` in `#tbody`, its cells. */
async function rowOf(page: Page, tbody: string, name: string): Promise<string[] | undefined> {
  return (await cells(page, tbody)).find((r) => r[0] === name);
}

/** The event lines, newest first. */
function events(page: Page): Promise<string[]> {
  return page.$$eval('#events li', (lines) => lines.map((li) => li.textContent));
}

/** Fails unless an event line matches `pattern`, naming the lines shown. */
async function assertEvent(page: Page, pattern: RegExp): Promise<void> {
  const lines = await events(page);
  assert.ok(
    lines.some((l) => pattern.test(l)),
    `no event ${String(pattern)} in ${JSON.stringify(lines)}`,
  );
}

/** Clicks `label` in the row of `name` in `#tbody`, accepting the dialog it opens; its text. */
async function clickConfirmed(
  page: Page,
  tbody: string,
  name: string,
  label: string,
): Promise<string> {
  // Accepted from the handler: the click does not return while the dialog is open.
  let question: string | undefined;
  page.once('dialog', (dialog) => {
    question = dialog.message();
    void dialog.accept();
  });
  await page
    .locator(`#${tbody} > tr`, { hasText: name })
    .getByRole('button', { name: label })
    .click();
  assert.ok(question !== undefined, `${label} asked nothing`);
  return question;
}

/** The text of the element `selector` finds ('' when it has none). */
async function textOf(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector)) ?? '';
}

/**
 * Why the tests cannot run here (no Chromium). Each test is skipped, not the suite: a skipped test
 * counts in the run's summary (`… skipped`), which CI expects to be 0.
 */
const missing = chromiumMissing();

void describe('the web console in Chromium', () => {
  let node: ConsoleNode | undefined;
  let browser: Browser | undefined;
  let admin: APIRequestContext | undefined;

  const running = (): { node: ConsoleNode; browser: Browser; admin: APIRequestContext } => {
    assert.ok(node !== undefined && browser !== undefined && admin !== undefined, 'set up');
    return { node, browser, admin };
  };

  /** An admin's API call (what `e4c2` would do beside the console); fails unless it succeeds. */
  const call = async (method: string, path: string, data?: unknown): Promise<unknown> => {
    const res = await running().admin.fetch(path, {
      method,
      ...(data === undefined ? {} : { data }),
    });
    assert.ok(res.ok(), `${method} ${path}: ${res.status()} ${await res.text()}`);
    return res.json();
  };
  const newClient = (name: string) =>
    call('POST', `/e4/client/${name}`, { key: randomBytes(32).toString('base64') });

  /** A new tab on the console with `token` stored (as the form stores it), and its watch. */
  const openConsole = async (token?: string): Promise<{ page: Page; watch: PageWatch }> => {
    const { node, browser } = running();
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 900 },
    });
    context.setDefaultTimeout(15_000);
    if (token !== undefined)
      await context.addInitScript(
        ([key, value]) => {
          sessionStorage.setItem(key, value);
        },
        [TOKEN_KEY, token] as const,
      );
    const page = await context.newPage();
    const watch = new PageWatch(page);
    await page.goto(`${node.origin}/console/`);
    return { page, watch };
  };

  before(async () => {
    if (missing !== undefined) return;
    node = await startConsoleNode({ E4C2_MAX_PAGE_SIZE: String(MAX_PAGE) });
    browser = await chromium.launch({ executablePath: chromiumPath() ?? '' });
    admin = await request.newContext({
      baseURL: node.origin,
      ignoreHTTPSErrors: true,
      extraHTTPHeaders: { authorization: `Bearer ${node.tokens.admin}` },
    });
    await call('POST', '/e4/topic/fleet/alpha');
    await call('POST', '/e4/topic/fleet/beta');
    for (const client of CLIENTS) await newClient(client);
    for (const client of CLIENTS.slice(0, 2))
      await call('PUT', `/e4/client/${client}/topic/fleet/alpha`);
  });

  after(async () => {
    await admin?.dispose();
    await browser?.close();
    await node?.stop();
  });

  void it(
    'signs in: no token and a wrong one are refused, a read-only token may not rotate',
    {
      skip: missing,
    },
    async () => {
      const { node } = running();
      const { page, watch } = await openConsole();
      await eventually(async () => {
        assert.equal(await textOf(page, '#health'), 'ready', 'the probes need no token');
        assert.equal(await textOf(page, '#stream'), 'refused');
        assert.match(await textOf(page, '#error'), /C2_UNAUTHENTICATED/);
        assert.deepEqual(await cells(page, 'topics'), []);
      });

      const refused = page.waitForResponse(
        (r) => r.url().endsWith('/v1/events/stream') && r.status() === 401,
      );
      await page.fill('#token', 'not-a-token');
      await page.click('#auth button[type=submit]');
      await refused;
      await eventually(async () => {
        assert.match(
          await textOf(page, '#error'),
          /C2_UNAUTHENTICATED/,
          'the wrong token is refused',
        );
      });
      assert.equal(await page.inputValue('#token'), '', 'the field is emptied');
      assert.equal(
        await page.getAttribute('#token', 'placeholder'),
        'token stored (submit empty to clear)',
      );

      const reader = node.tokens['read-only'];
      await page.fill('#token', reader);
      await page.click('#auth button[type=submit]');
      await eventually(async () => {
        assert.equal(await textOf(page, '#stream'), 'live');
        assert.deepEqual(await rowNames(page, 'topics'), ['fleet/alpha', 'fleet/beta']);
        assert.equal((await rowNames(page, 'clients')).length, MAX_PAGE);
        assert.equal(await page.isHidden('#error-box'), true, 'the refusal is gone');
      });
      assert.equal((await page.content()).includes(reader), false, 'the token is not in the page');

      const question = await clickConfirmed(page, 'topics', 'fleet/alpha', 'Rotate');
      assert.equal(
        question,
        'Rotate the key of topic "fleet/alpha"? Every member receives a new key.',
      );
      await eventually(async () => {
        assert.match(
          await textOf(page, '#error'),
          /^C2_PERMISSION_DENIED: .*operator/,
          'the refusal names the role needed',
        );
      });
      assert.equal((await rowOf(page, 'topics', 'fleet/alpha'))?.[1], '1', 'not rotated');
      await page.click('#error-close');
      assert.equal(await page.isHidden('#error-box'), true, 'Dismiss clears the banner');

      // Only the refusals provoked (the browser logs each refused call as a console error).
      assert.deepEqual(
        unexpectedProblems(watch, [
          /^response: GET \/v1\/[^ ]*: 401$/,
          /^response: POST \/v1\/topics\/fleet%2Falpha\/rotate: 403$/,
          /^console: Failed to load resource: the server responded with a status of 40[13] /,
        ]),
        [],
      );
      await page.context().close();
    },
  );

  void it(
    'as an operator: pages, created rows, rotate, resync and a client topics',
    {
      skip: missing,
    },
    async () => {
      const { node } = running();
      const { page, watch } = await openConsole(node.tokens.operator);
      await eventually(async () => {
        assert.equal(await textOf(page, '#stream'), 'live');
        assert.deepEqual(await rowNames(page, 'clients'), CLIENTS.slice(0, MAX_PAGE));
        assert.equal(await page.isVisible('#more-clients'), true, 'a page follows');
      });
      await page.click('#more-clients');
      await eventually(async () => {
        assert.deepEqual(await rowNames(page, 'clients'), CLIENTS);
        assert.equal(await page.isHidden('#more-clients'), true, 'the last page');
      });
      await eventually(async () => {
        // name, version, members, delivered (by the broker), confirmed, pending, failed
        assert.deepEqual(await cells(page, 'topics'), [
          ['fleet/alpha', '1', '2', '2', '0', '0', '0', 'Rotate'],
          ['fleet/beta', '1', '0', '0', '0', '0', '0', 'Rotate'],
        ]);
        assert.deepEqual((await rowOf(page, 'clients', CLIENTS[0] ?? ''))?.slice(1), [
          '1',
          'idle',
          'TopicsResync',
        ]);
      });
      assert.equal(await textOf(page, '#health'), 'ready');

      // Created by an admin meanwhile: the rows come with the event stream, in name order.
      await call('POST', '/e4/topic/fleet/gamma');
      await newClient('browser-c-00');
      await call('PUT', '/e4/client/browser-c-00/topic/fleet/gamma');
      await eventually(async () => {
        assert.deepEqual(await rowNames(page, 'topics'), [
          'fleet/alpha',
          'fleet/beta',
          'fleet/gamma',
        ]);
        assert.deepEqual(await rowNames(page, 'clients'), ['browser-c-00', ...CLIENTS]);
        assert.deepEqual((await rowOf(page, 'topics', 'fleet/gamma'))?.slice(1, 4), [
          '1',
          '1',
          '1',
        ]);
        await assertEvent(page, / topic\.created fleet\/gamma v1$/);
        await assertEvent(page, / client\.created browser-c-00 v1$/);
        await assertEvent(page, / client\.subscribed fleet\/gamma browser-c-00 v1$/);
      });

      const question = await clickConfirmed(page, 'topics', 'fleet/gamma', 'Rotate');
      assert.match(question, /^Rotate the key of topic "fleet\/gamma"\?/);
      await eventually(async () => {
        assert.deepEqual(await rowOf(page, 'topics', 'fleet/gamma'), [
          'fleet/gamma',
          '2',
          '1',
          '1',
          '0',
          '0',
          '0',
          'Rotate',
        ]);
        assert.match(
          (await events(page))[0] ?? '',
          /^#\d+ \S+ topic\.rotated fleet\/gamma v2 \(members=1\)$/,
        );
      });
      const rollout = (await call('GET', '/v1/topics/fleet%2Fgamma/rollout')) as {
        keyVersion: number;
      };
      assert.equal(rollout.keyVersion, 2, 'the node rotated it');

      await page
        .locator('#clients > tr', { hasText: 'browser-c-00' })
        .getByRole('button', { name: 'Resync' })
        .click();
      await eventually(async () => {
        assert.equal(
          await textOf(page, '#client-notice'),
          'resync of "browser-c-00" queued; nothing re-sent',
        );
        await assertEvent(page, / client\.resync browser-c-00$/);
      });

      await page
        .locator('#clients > tr', { hasText: 'browser-c-00' })
        .getByRole('button', { name: 'Topics' })
        .click();
      await eventually(async () => {
        const shown = await page.$$eval('#clients table.client-topics tr', (rows) =>
          rows.map((tr) => [...tr.children].map((c) => c.textContent)),
        );
        assert.deepEqual(shown.slice(1), [['fleet/gamma', '2', '2', '-', 'delivered', '-']]);
      });

      assert.deepEqual(unexpectedProblems(watch), [], 'nothing went wrong in the page');
      await page.context().close();
    },
  );

  void it(
    'runs in eight tabs of one browser at once, each live, over HTTP/2',
    { skip: missing },
    async () => {
      const { node, browser } = running();
      // One context is one browser profile: its tabs share the connections to an origin, of which
      // HTTP/1.1 allows six, each tab's event stream holding one (docs/console.md).
      const context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1280, height: 900 },
      });
      context.setDefaultTimeout(15_000);
      await context.addInitScript(
        ([key, value]) => {
          sessionStorage.setItem(key, value);
        },
        [TOKEN_KEY, node.tokens['read-only']] as const,
      );
      const tabs = await Promise.all(
        Array.from({ length: TABS }, async () => {
          const page = await context.newPage();
          const watch = new PageWatch(page);
          await page.goto(`${node.origin}/console/`);
          return { page, watch };
        }),
      );
      for (const [i, { page, watch }] of tabs.entries()) {
        await eventually(async () => {
          assert.equal(await textOf(page, '#stream'), 'live', `tab ${i + 1}`);
          assert.deepEqual((await rowNames(page, 'topics')).slice(0, 2), [
            'fleet/alpha',
            'fleet/beta',
          ]);
        });
        const protocol = await page.evaluate(
          () =>
            (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming)
              .nextHopProtocol,
        );
        assert.equal(protocol, 'h2', `tab ${i + 1} negotiated HTTP/2`);
        assert.deepEqual(unexpectedProblems(watch), [], `tab ${i + 1}`);
      }
      await context.close();
    },
  );

  void it('lays out for a phone, a laptop and a wide screen', { skip: missing }, async () => {
    const { node } = running();
    const { page, watch } = await openConsole(node.tokens['read-only']);
    await eventually(async () => {
      assert.deepEqual((await rowNames(page, 'topics')).slice(0, 2), ['fleet/alpha', 'fleet/beta']);
      assert.equal((await rowNames(page, 'clients')).length, MAX_PAGE);
    });
    /** The top and bottom of the topics, clients and events sections at `width`. */
    const sectionsAt = async (width: number) => {
      await page.setViewportSize({ width, height: 900 });
      return page.$$eval('main > section', (sections) =>
        sections.map((s) => {
          const box = s.getBoundingClientRect();
          return { top: Math.round(box.top), bottom: Math.round(box.bottom) };
        }),
      );
    };
    await page.setViewportSize({ width: 390, height: 800 });
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      screen: window.innerWidth,
    }));
    assert.ok(widths.page <= widths.screen, `the page scrolls sideways: ${JSON.stringify(widths)}`);
    const laptop = await sectionsAt(1280);
    assert.ok(
      (laptop[1]?.top ?? 0) >= (laptop[0]?.bottom ?? Infinity),
      `1280 px: clients under topics: ${JSON.stringify(laptop)}`,
    );
    const wide = await sectionsAt(1920);
    assert.equal(wide[0]?.top, wide[1]?.top, `1920 px: side by side: ${JSON.stringify(wide)}`);
    assert.ok((wide[2]?.top ?? 0) >= (wide[0]?.bottom ?? Infinity), '1920 px: events below');
    assert.deepEqual(unexpectedProblems(watch), []);
    await page.context().close();
  });
});
