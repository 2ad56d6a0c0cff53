// Private rooms (issue 20): the page joins a `private-…` room with a grant it gets from the demo
// backend (local_chat's POST /grant), and a second user does the same and chats there; a third
// client, a plain WebSocket, is refused the room without a grant, with another user's grant and
// with a forged one, may not list its members, and hears nothing of it. Run by
// examples/chat/tests/browser-test.sh (CHAT_URL).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { CHAT_URL, CHROMIUM, WAIT_MS, join, launch, logEntry, openChat, screenshot, send, startWriter } from './helpers.mjs';

/** A grant for (`userId`, `room`) from the demo backend, asked from `page`'s origin. */
const grantFor = (page, room, userId) => page.evaluate(async ({ room, userId }) => {
  const res = await fetch(`/grant?${new URLSearchParams({ room, userId })}`, { method: 'POST' });
  if (!res.ok) throw new Error(`POST /grant: ${res.status} ${await res.text()}`);
  return res.json();
}, { room, userId });

test('a private room: joined with a grant; refused without one, with another user\'s, with a forged one', { timeout: 60_000 }, async (t) => {
  assert.ok(CHAT_URL, 'set CHAT_URL (examples/chat/tests/browser-test.sh does)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);
  const browser = await launch();
  t.after(() => browser.close());

  // Names and rooms of this file only: the server is shared with the other files.
  const tag = Date.now().toString(36);
  const lobby = `lobby-${tag}`;
  const room = `private-${tag}`;
  const [aliceName, bobName, malloryName] = [`alice-${tag}`, `bob-${tag}`, `mallory-${tag}`];
  const errors = [];
  const pages = {};
  try {
    const { page: alice } = await openChat(browser, aliceName, lobby, errors);
    pages['private-alice'] = alice;
    // The page asks the backend for a grant, then joins with it.
    await join(alice, room);
    await logEntry(alice, 'system', `You joined ${room}`).waitFor();

    // Mallory: a plain WebSocket in another page (an origin for it), in the lobby.
    const mallory = await (await browser.newContext()).newPage();
    mallory.setDefaultTimeout(WAIT_MS);
    mallory.on('pageerror', (e) => errors.push(`mallory: ${e.message}`));
    await mallory.goto(CHAT_URL);
    await startWriter(mallory, CHAT_URL, malloryName, lobby);
    const ask = (body) => mallory.evaluate((b) => window.request(b), body);

    const aliceGrant = await grantFor(mallory, room, aliceName);
    assert.equal(aliceGrant.room, room);
    assert.ok(aliceGrant.expiresAt > Date.now() / 1000, JSON.stringify(aliceGrant));
    const [payload, signature] = aliceGrant.grant.split('.');
    const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
    for (const [why, grant] of [
      ['no grant', undefined],
      ["alice's grant", aliceGrant.grant],
      ['a forged signature', `${payload}.${flipped}`],
      ['garbage', 'not-a-grant'],
    ]) {
      const body = { action: 'join', room, ...(grant === undefined ? {} : { grant }) };
      const answer = await ask(body);
      assert.equal(answer.type, 'error', `${why}: ${JSON.stringify(answer)}`);
    }
    const members = await ask({ action: 'members', room });
    assert.equal(members.type, 'error', `members of a room not joined: ${JSON.stringify(members)}`);

    // Bob gets his own grant through his page, joins, and the two talk.
    const { page: bob } = await openChat(browser, bobName, lobby, errors);
    pages['private-bob'] = bob;
    await join(bob, room);
    await alice.click(`#rooms li[data-room="${room}"]`);
    await alice.locator(`#users li[data-user="${bobName}"]`).waitFor();
    await send(bob, `the plan ${tag}`);
    await logEntry(alice, 'message', `the plan ${tag}`).waitFor();
    assert.equal(await alice.locator(`#users li[data-user="${malloryName}"]`).count(), 0);

    // Mallory heard nothing of the room: no message, no presence, no member list.
    const heard = await mallory.evaluate((r) => window.frames_.filter((f) => f.room === r && f.type !== 'error'), room);
    assert.deepEqual(heard, [], 'frames of the private room reached a client refused from it');
    const leaked = await mallory.evaluate((text) => window.frames_.some((f) => JSON.stringify(f).includes(text)), `the plan ${tag}`);
    assert.equal(leaked, false);
    assert.deepEqual(errors, [], 'uncaught errors in the pages');
  } finally {
    for (const [name, page] of Object.entries(pages)) await screenshot(page, name);
  }
});

test('the page refuses a private room as the room to connect to, before asking anything', { timeout: 30_000 }, async (t) => {
  assert.ok(CHAT_URL, 'set CHAT_URL (examples/chat/tests/browser-test.sh does)');
  const browser = await launch();
  t.after(() => browser.close());
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.goto(CHAT_URL);
  await page.fill('#name', 'carol');
  await page.fill('#room', 'private-first');
  await page.click('#connect');
  await page.locator('#connect-error', { hasText: 'Connect to a public room first' }).waitFor();
  assert.notEqual(await page.locator('#status').getAttribute('data-state'), 'connected');
});
