// Nothing lost across a dropped connection: the chat page (static/index.html, through
// static/resumable.js) against the real local gateway with its message log. Like the other
// files here it starts no server: examples/chat/tests/browser-test.sh does, and sets CHAT_URL.
//
//   CHAT_URL=http://127.0.0.1:PORT/ node --test examples/chat/tests/browser/
//
// The page is loaded through a TCP proxy in this process, so that the test can cut its
// WebSocket the way a network does: the proxy resets the browser's TCP connection and drops the
// one to the gateway — no close frame either way (the page sees 1006, the gateway runs
// $disconnect for a lost connection) — and refuses new WebSocket connections for a while.
// A second client, a plain WebSocket in another page, sends numbered messages all along.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { CHAT_URL, CHROMIUM, WAIT_MS, launch, screenshot, startWriter } from './helpers.mjs';

const TOTAL = 60;
const label = (n) => `#${String(n).padStart(2, '0')} of ${TOTAL}`;

/**
 * A TCP proxy on a free loopback port to `target` (host:port). WebSocket upgrades (the first
 * bytes of a connection) are tracked: `cut()` resets them, and while `refuse` is true new ones
 * are reset at once. Plain HTTP (the page, the module, the management API's posts) always passes.
 */
async function startProxy(target) {
  const [host, port] = [target.hostname, Number(target.port)];
  const sockets = new Set();   // every socket of the proxy, both sides
  const upgrades = new Set();  // {client, upstream} of WebSocket connections
  const proxy = { refuse: false, refused: 0 };
  const refusalWaiters = [];
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.once('data', (first) => {
      const head = first.toString('latin1');
      const upgrade = /^GET [^\r\n]*\r\n/.test(head) && /\r\nupgrade:\s*websocket/i.test(head);
      if (upgrade && proxy.refuse) {
        client.resetAndDestroy();
        proxy.refused += 1;
        for (const resolve of refusalWaiters.splice(0)) resolve();
        return;
      }
      const upstream = net.connect(port, host);
      sockets.add(upstream);
      upstream.on('close', () => { sockets.delete(upstream); client.destroy(); });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
      if (upgrade) {
        const pair = { client, upstream };
        upgrades.add(pair);
        client.on('close', () => upgrades.delete(pair));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${server.address().port}/`;
  /** Resolves at the next refused WebSocket connection. */
  proxy.nextRefusal = () => new Promise((resolve) => refusalWaiters.push(resolve));
  /** Resets every open WebSocket connection: how many there were. */
  proxy.cut = () => {
    const pairs = [...upgrades];
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    upgrades.clear();
    return pairs.length;
  };
  proxy.close = () => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(resolve);
  });
  return proxy;
}

/** Sends messages `from`..`to` to each of `rooms` from the writer; the server's answers, in order. */
async function sendRange(writer, rooms, from, to) {
  const answers = [];
  for (let n = from; n <= to; n += 1) {
    for (const room of rooms) {
      const answer = await writer.evaluate((body) => window.request(body), { action: 'send', room, message: label(n) });
      assert.equal(answer.type, 'sent', `message ${n} to ${room}: ${JSON.stringify(answer)}`);
      answers.push(answer);
    }
  }
  return answers;
}

/** The writer's messages the page shows, in the order shown. */
const shownMessages = (page, writerName) => page.$$eval(
  '#log li[data-kind="message"]',
  (items, prefix) => items.map((li) => li.textContent).filter((t) => t.includes(prefix))
    .map((t) => t.slice(t.indexOf(prefix) + prefix.length)),
  `${writerName}: `,
);

test('a dropped connection loses no message: the page resumes its rooms and shows each message once, in order', { timeout: 60_000 }, async (t) => {
  assert.ok(CHAT_URL, 'set CHAT_URL to the local chat page (examples/chat/tests/browser-test.sh starts the server and sets it)');
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);

  const proxy = await startProxy(new URL(CHAT_URL));
  t.after(() => proxy.close());
  const browser = await launch();
  t.after(() => browser.close());

  // Names and rooms of this file only: the server (and its log) is shared with the other files.
  // The page is in two rooms: the one it connects to (the server puts a new connection there)
  // and one it joins (joined again after the reconnect, and resumed after that).
  const first = `resume-${Date.now().toString(36)}`;
  const second = `${first}-b`;
  const rooms = [first, second];
  const [readerName, writerName] = ['carol', 'dave'];
  const errors = [];
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const reader = await context.newPage();
  reader.setDefaultTimeout(WAIT_MS);
  reader.on('pageerror', (e) => errors.push(e.message));
  reader.on('console', (m) => { if (m.type() === 'error') console.log(`  [${readerName} console] ${m.text()}`); });
  const writer = await (await browser.newContext()).newPage();
  writer.setDefaultTimeout(WAIT_MS);
  writer.on('pageerror', (e) => errors.push(`writer: ${e.message}`));
  const lastShown = (n) => reader.locator('#log li[data-kind="message"]', { hasText: label(n) });

  try {
    await reader.goto(proxy.url);
    await reader.fill('#name', readerName);
    await reader.fill('#room', first);
    await reader.click('#connect');
    await reader.locator('#status[data-state="connected"]').waitFor();
    await reader.locator('#log li', { hasText: `Connected as ${readerName}` }).waitFor();
    await reader.fill('#join-room', second);
    await reader.click('#join');
    await reader.locator(`#rooms li[data-room="${second}"].selected`).waitFor();
    await writer.goto(CHAT_URL);   // the page, not used: an origin for the writer's socket
    await startWriter(writer, CHAT_URL, writerName, first);
    const joined = await writer.evaluate((room) => window.request({ action: 'join', room }), second);
    assert.equal(joined.type, 'joined', JSON.stringify(joined));

    // 1. Live: the page gets 1..20 in both rooms as they come (it shows the second).
    const live = await sendRange(writer, rooms, 1, 20);
    assert.ok(live.every((a) => a.delivered === 1), `each reached the page: ${JSON.stringify(live)}`);
    await lastShown(20).waitFor();

    // 2. The connection drops (a reset, no close frame), and the page cannot come back yet.
    proxy.refuse = true;
    const refused = proxy.nextRefusal();
    const cutAt = Date.now();
    assert.equal(proxy.cut(), 1, 'the page had one WebSocket through the proxy');
    await reader.locator('#log li[data-kind="error"]', { hasText: 'Connection lost (code 1006' }).waitFor();
    await reader.locator('#status[data-state="reconnecting"]').waitFor();
    // Once the gateway has run $disconnect (the rooms say the reader left), nothing more can
    // reach the page live: 21..40 are only in the rooms' logs.
    await writer.waitForFunction((name) => window.departures.includes(name), readerName);
    const away = await sendRange(writer, rooms, 21, 40);
    assert.ok(away.every((a) => a.delivered === 0), `none reached the page: ${JSON.stringify(away)}`);
    await refused;   // and a reconnect attempt failed: the page keeps trying

    // 3. The page comes back by itself (nobody clicks); 41..50 go out meanwhile.
    proxy.refuse = false;
    await sendRange(writer, rooms, 41, 50);
    await reader.locator('#log li[data-kind="system"]', { hasText: `Rejoined ${second}` }).waitFor();
    await reader.locator('#status[data-state="connected"]').waitFor();
    const backAfter = Date.now() - cutAt;

    // 4. Live again.
    await sendRange(writer, rooms, 51, TOTAL);

    const expected = Array.from({ length: TOTAL }, (_, i) => label(i + 1));
    for (const room of [second, first]) {
      await reader.locator(`#rooms li[data-room="${room}"] button.select`).click();
      await reader.locator('#current-room', { hasText: room }).waitFor();
      await lastShown(TOTAL).waitFor();
      assert.deepEqual(await shownMessages(reader, writerName), expected, `every message of ${room} once, in order`);
    }
    assert.equal(await reader.locator('#log li[data-kind="system"]', { hasText: 'Reconnected.' }).count(), 1);
    assert.deepEqual(errors, [], 'uncaught errors in the pages');
    console.log(`  reconnect attempts refused while away: ${proxy.refused}; back ${backAfter} ms after the cut`);
  } finally {
    await screenshot(reader, 'resume');
  }
});

test('without a message log (local_chat --no-history) the page asks once, then shows plain messages', { timeout: 40_000 }, async (t) => {
  const url = process.env.CHAT_URL_NO_HISTORY;
  if (!url) {
    // browser-test.sh always starts that server: this skips only a hand-run without it.
    t.skip('CHAT_URL_NO_HISTORY is not set (examples/chat/tests/browser-test.sh starts `local_chat --no-history` and sets it)');
    return;
  }
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM)`);
  const browser = await launch();
  t.after(() => browser.close());

  const room = `plain-${Date.now().toString(36)}`;
  const [readerName, writerName] = ['erin', 'frank'];
  const errors = [];
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 720 } })).newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => errors.push(e.message));
  // Every frame the page sends, over all its sockets; and a way to drop the current one.
  const sent = [];
  const sockets = [];
  await page.routeWebSocket(/\/local\b/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => { sent.push(String(m)); server.send(m); });
    sockets.push({ page: ws, server });
  });
  const writer = await (await browser.newContext()).newPage();
  writer.setDefaultTimeout(WAIT_MS);
  writer.on('pageerror', (e) => errors.push(`writer: ${e.message}`));
  const shown = (text) => page.locator('#log li[data-kind="message"]', { hasText: `${writerName}: ${text}` });

  try {
    await page.goto(url);
    await page.fill('#name', readerName);
    await page.fill('#room', room);
    await page.click('#connect');
    await page.locator('#status[data-state="connected"]').waitFor();
    await page.locator('#log li[data-kind="system"]', { hasText: 'keeps no message history' }).waitFor();
    await writer.goto(url);
    await startWriter(writer, url, writerName, room);
    const before = await writer.evaluate((body) => window.request(body), { action: 'send', room, message: 'plain before' });
    assert.equal(before.type, 'sent', JSON.stringify(before));
    assert.equal(before.offset, undefined, 'no log: no offset');
    await shown('plain before').waitFor();

    // A drop (as the gateway's idle timeout does it), and the page comes back by itself.
    await sockets[0].server.close({ code: 1000, reason: 'test: dropped' });
    await sockets[0].page.close({ code: 1001, reason: 'Going away' });
    await page.locator('#log li[data-kind="system"]', { hasText: 'Reconnected.' }).waitFor();
    await page.locator('#status[data-state="connected"]').waitFor();
    // Open after its $connect: the new connection is in the room.
    const after = await writer.evaluate((body) => window.request(body), { action: 'send', room, message: 'plain after' });
    assert.equal(after.type, 'sent', JSON.stringify(after));
    await shown('plain after').waitFor();

    const resumes = sent.filter((f) => f.includes('"action":"resume"'));
    assert.equal(resumes.length, 1, `one resume, refused, and none after it: ${JSON.stringify(resumes)}`);
    assert.equal(await page.locator('#log li[data-kind="notification"]').count(), 0, 'no reply shown as a notification');
    assert.equal(await page.locator('#log li[data-kind="error"]').count(), 1, 'one error entry...');
    await page.locator('#log li[data-kind="error"]', { hasText: 'Connection lost' }).waitFor();   // ...the drop
    assert.deepEqual(errors, [], 'uncaught errors in the pages');
  } finally {
    await screenshot(page, 'no-history');
  }
});
