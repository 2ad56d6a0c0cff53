// Headless Chromium test of the local chat page (examples/chat/static/index.html) against the
// real local gateway. It starts no server: examples/chat/tests/browser-test.sh does, and passes its page
// address in CHAT_URL.
//
//   CHAT_URL=http://127.0.0.1:PORT/ node --test examples/chat/tests/browser/
//
// Chromium is Debian's (/usr/bin/chromium; override with CHROMIUM), driven by playwright-core:
// Playwright's own browser download cannot work on the CI machines.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { CHAT_URL, CHROMIUM, WAIT_MS, join, launch, logEntry, openChat, screenshot, send } from './helpers.mjs';

test('two users chat, change rooms, survive a dropped connection and get a notification', { timeout: 50_000 }, async (t) => {
  assert.ok(CHAT_URL, 'set CHAT_URL to the local chat page (examples/chat/tests/browser-test.sh starts the server and sets it)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);

  const browser = await launch();
  t.after(() => browser.close());
  const errors = [];
  const pages = {};
  try {
    // alice's WebSockets go through a Playwright route, so the test can drop her connection.
    const aliceSockets = [];
    const alice = await openChat(browser, 'alice', 'general', errors, {
      beforeGoto: (page) => page.routeWebSocket(/\/local\b/, (ws) => {
        const server = ws.connectToServer();   // forwards both ways
        aliceSockets.push({ page: ws, server });
      }),
    });
    pages.alice = alice.page;
    const bob = await openChat(browser, 'bob', 'general', errors);
    pages.bob = bob.page;
    const a = alice.page;
    const b = bob.page;

    // The steps build on each other: after a failure the rest are skipped, not timed out.
    let failed = false;
    const step = (name, fn) => t.test(name, { skip: failed && 'an earlier step failed' }, async () => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        throw e;
      }
    });

    await step('a message reaches the other member of the room', async () => {
      await send(a, 'hello from alice');
      const entry = logEntry(b, 'message', 'hello from alice');
      await entry.waitFor();
      assert.equal(await entry.locator('.user').textContent(), 'alice');
      assert.ok((await entry.textContent()).endsWith('alice: hello from alice'), await entry.textContent());
      await logEntry(a, 'mine', 'hello from alice').getByText('delivered to 1').waitFor();
    });

    await step("the room's user list shows both users", async () => {
      await b.locator('#users li[data-user="alice"]').waitFor();
      await b.locator('#users li[data-user="bob"]', { hasText: '(you)' }).waitFor();
    });

    await step('joining a second room and talking there', async () => {
      await join(b, 'games');
      await join(a, 'games');
      await logEntry(b, 'presence', 'alice joined games').waitFor();
      await b.locator('#users li[data-user="alice"]').waitFor();
      await send(b, 'hello from bob in games');
      await logEntry(a, 'message', 'bob: hello from bob in games').waitFor();
      // general is still joined, and its messages do not show in games
      await a.locator('#rooms li[data-room="general"]').waitFor();
      assert.equal(await logEntry(a, 'message', 'hello from alice').count(), 0);
    });

    await step('user text is shown as text, never as HTML', async () => {
      const nasty = '<img src=x onerror="window.__pwned=1"><b>not bold</b>';
      await send(b, nasty);
      await logEntry(a, 'message', nasty).waitFor();
      assert.equal(await a.locator('#log img, #log b').count(), 0);
      assert.equal(await a.evaluate(() => window.__pwned), undefined);
    });

    await step('a dropped connection reconnects and re-joins its rooms', async () => {
      assert.equal(aliceSockets.length, 1);
      // As when the gateway closes an idle connection: the server gets a close (and runs
      // $disconnect), the page gets 1001 Going away.
      await aliceSockets[0].server.close({ code: 1000, reason: 'test: dropped' });
      await aliceSockets[0].page.close({ code: 1001, reason: 'Going away' });
      await a.locator('#status[data-state="reconnecting"]', { hasText: /reconnecting in \d+ s/ }).waitFor();
      await a.locator('#status[data-state="connected"]').waitFor();
      await logEntry(a, 'system', 'Rejoined games').waitFor();
      assert.equal(aliceSockets.length, 2);
      assert.match(aliceSockets[1].page.url(), /[?&]room=general(&|$)/);
      // back in games: bob's messages there reach her again
      await send(b, 'welcome back');
      await logEntry(a, 'message', 'bob: welcome back').waitFor();
    });

    await step('a notification from the billing service reaches the user', async () => {
      const res = await fetch(new URL('/notify?user=alice', CHAT_URL), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'invoice.paid', amount: 42 }),
      });
      const report = await res.json();
      assert.equal(res.status, 200, JSON.stringify(report));
      assert.equal(report.delivered, 1, JSON.stringify(report));
      await logEntry(a, 'notification', 'invoice.paid').getByText('"amount":42').waitFor();
      assert.equal(await logEntry(b, 'notification', 'invoice.paid').count(), 0);
    });

    await step('the notify form on the page posts to /notify', async () => {
      await b.fill('#notify-user', 'bob');
      await b.fill('#notify-body', '{"type":"card.expiring","month":"12/26"}');
      await b.click('#notify');
      await b.locator('#notify-result', { hasText: 'Delivered to 1 connection of bob' }).waitFor();
      await logEntry(b, 'notification', 'card.expiring').waitFor();
    });

    await step('leaving a room tells its members', async () => {
      await b.locator('#rooms li[data-room="games"] button.leave').click();
      await b.locator('#rooms li[data-room="games"]').waitFor({ state: 'detached' });
      await logEntry(a, 'presence', 'bob left games').waitFor();
      await a.locator('#users li[data-user="bob"]').waitFor({ state: 'detached' });
      // the last room cannot be left: the demo server knows the name through memberships
      assert.equal(await b.locator('#rooms li[data-room="general"] button.leave').isDisabled(), true);
    });

    assert.deepEqual(errors, [], 'uncaught errors in the pages');
  } finally {
    for (const [name, page] of Object.entries(pages)) await screenshot(page, name);
  }
});
