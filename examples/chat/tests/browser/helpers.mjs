// Shared helpers of the browser tests (not a test file: node --test runs *.test.mjs). They start
// no server: examples/chat/tests/browser-test.sh does, and sets CHAT_URL (and
// CHAT_URL_NO_HISTORY).
//
// Chromium is Debian's (/usr/bin/chromium; override with CHROMIUM), driven by playwright-core:
// Playwright's own browser download cannot work on the CI machines.

import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHAT_URL = process.env.CHAT_URL;
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const WAIT_MS = 15_000;
// The repository root: screenshots go to its (ignored) target/ directory.
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
export const SHOTS = path.join(REPO, 'target', 'browser');

// Without the background-networking flags, Chromium keeps trying Google's hosts, which this
// machine's closed network refuses. Playwright gives the browser a fresh, empty user data dir.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Debian's Chromium, headless. */
export const launch = () => chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });

/** Opens the page in its own browser context and connects as `name` to `room`. */
export async function openChat(browser, name, room, errors, { beforeGoto } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`  [${name} console] ${m.text()}`);
  });
  if (beforeGoto) await beforeGoto(page);
  await page.goto(CHAT_URL);
  await page.locator('#demo-banner').getByText('names are not authenticated').waitFor();
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#connect');
  await page.locator('#status[data-state="connected"]').waitFor();
  await page.locator('#log li', { hasText: `Connected as ${name}` }).waitFor();
  return { context, page };
}

/** A screenshot for humans in target/browser/NAME.png (also, especially, when a test failed). */
export async function screenshot(page, name) {
  await mkdir(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true }).then(
    () => console.log(`  screenshot: ${path.relative(REPO, file)}`),
    (e) => console.log(`  screenshot of ${name} failed: ${e.message}`),
  );
}

export const logEntry = (page, kind, hasText) => page.locator(`#log li[data-kind="${kind}"]`, { hasText });

export async function send(page, message) {
  await page.fill('#message', message);
  await page.click('#send');
}

export async function join(page, room) {
  await page.fill('#join-room', room);
  await page.click('#join');
  await page.locator(`#rooms li[data-room="${room}"].selected`).waitFor();
  await page.locator('#current-room', { hasText: room }).waitFor();
}

/**
 * A second client in `page`: a plain WebSocket (no resumable.js) to the server of `base` (a
 * page address), in `room` as `name`.
 * `window.request(obj)` sends and resolves with the server's answer (`sent`, `joined`, `left`,
 * the `members` snapshot or `error`; the writer waits for each, so the log takes the messages
 * in order); `window.frames_` keeps every frame it got;
 * `window.departures` lists the users the presence events said left.
 */
export async function startWriter(page, base, name, room) {
  const url = new URL('/local', base);
  url.protocol = 'ws:';
  url.search = new URLSearchParams({ room, userId: name }).toString();
  await page.evaluate(async ({ url, room }) => {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onclose = (ev) => reject(new Error(`the writer could not connect (code ${ev.code})`));
    });
    ws.onclose = null;
    const answers = [];
    window.departures = [];
    window.frames_ = [];   // every frame the writer got
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      window.frames_.push(msg);
      const answer = ['sent', 'joined', 'left', 'error'].includes(msg.type)
        || (msg.type === 'presence' && msg.event === 'members');
      if (answer) answers.shift()?.(msg);
      if (msg.type === 'presence' && msg.event === 'left') {
        for (const m of msg.members) window.departures.push(m.userId);
      }
    };
    window.request = (body) => new Promise((resolve) => {
      answers.push(resolve);
      ws.send(JSON.stringify(body));
    });
  }, { url: url.toString(), room });
}
