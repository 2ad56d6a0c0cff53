// Live presence in the chat page, two users in one Chromium: each sees the other appear and
// disappear within a second — on connect, on a normal disconnect, and when a browser dies
// without a close frame (the local gateway's 1006 $disconnect path) — and a user with two tabs
// is one member with `connections: 2`. Run by examples/chat/tests/browser-test.sh (CHAT_URL).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { CHAT_URL, CHROMIUM, CHROMIUM_ARGS, launch } from './helpers.mjs';

const ROOM = 'presence';
const WITHIN_MS = 1_000;

/** A page of `browser` connected as `name` to ROOM; resolves when the socket is open, with
 * `clickedAt`, when Connect was clicked. */
async function connect(browser, name, errors) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  await page.goto(CHAT_URL);
  await page.fill('#name', name);
  await page.fill('#room', ROOM);
  const clickedAt = Date.now();
  await page.click('#connect');
  await page.locator('#status[data-state="connected"]').waitFor();
  return { context, page, clickedAt };
}

const member = (page, user) => page.locator(`#users li[data-user="${user}"]`);

/** Milliseconds until `locator` reaches `state`, failing past WITHIN_MS. */
async function within(what, locator, state, since) {
  await locator.waitFor({ state, timeout: WITHIN_MS + 4_000 });
  const ms = Date.now() - since;
  console.log(`  ${what}: ${ms} ms`);
  assert.ok(ms <= WITHIN_MS, `${what} took ${ms} ms (limit ${WITHIN_MS} ms)`);
  return ms;
}

test('presence: appear and disappear within a second; two tabs are one member', { timeout: 60_000 }, async (t) => {
  assert.ok(CHAT_URL, 'set CHAT_URL (examples/chat/tests/browser-test.sh does)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found`);
  const browser = await launch();
  t.after(() => browser.close());
  const errors = [];

  const alice = await connect(browser, 'alice', errors);
  // each sees the other on connect: bob from the snapshot, alice from the "joined" event
  const bob = await connect(browser, 'bob', errors);
  let since = bob.clickedAt;
  await within('alice sees bob connect', member(alice.page, 'bob'), 'attached', since);
  await within('bob sees alice (snapshot)', member(bob.page, 'alice'), 'attached', since);
  await member(bob.page, 'bob').getByText('(you)').waitFor();

  // (a) a normal disconnect (close frame, $disconnect 1000)
  since = Date.now();
  await bob.page.click('#disconnect');
  await within('alice sees bob disconnect', member(alice.page, 'bob'), 'detached', since);

  // (b) bob reconnects in his own browser, which then dies: SIGKILL, so no close frame is
  // sent and the gateway sees the TCP connection drop ($disconnect 1006)
  await bob.context.close();
  const server = await chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  t.after(() => server.kill().catch(() => {}));
  const bobBrowser = await chromium.connect(server.wsEndpoint());
  const bob2 = await connect(bobBrowser, 'bob', errors);
  await within('alice sees bob again', member(alice.page, 'bob'), 'attached', bob2.clickedAt);
  since = Date.now();
  server.process().kill('SIGKILL');
  await within('alice sees bob vanish (browser killed)', member(alice.page, 'bob'), 'detached', since);

  // two tabs of alice: one member with two connections; closing one announces nothing
  const tab2 = await alice.context.newPage();
  await tab2.goto(CHAT_URL);
  await tab2.fill('#name', 'alice');
  await tab2.fill('#room', ROOM);
  await tab2.click('#connect');
  await tab2.locator('#status[data-state="connected"]').waitFor();
  await tab2.locator('#users li[data-user="alice"][data-connections="2"]').waitFor();
  const bob3 = await connect(browser, 'bob', errors);
  await bob3.page.locator('#users li[data-user="alice"][data-connections="2"]').waitFor();
  assert.equal(await member(bob3.page, 'alice').count(), 1, 'one member for two tabs');
  await member(alice.page, 'bob').waitFor();
  await tab2.close();
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(await member(bob3.page, 'alice').count(), 1, 'alice is still there');
  assert.equal(await bob3.page.locator('#log li[data-kind="presence"]', { hasText: 'alice left' }).count(), 0,
    'closing one of two tabs announces no "left"');

  assert.deepEqual(errors, [], 'uncaught errors in the pages');
});
