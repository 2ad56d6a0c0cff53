// ResumableSocket of examples/chat/static/resumable.js against a fake WebSocket class, on
// node:test's fake timers: reconnects with backoff, resumes on every open, settles, routes.
//
//   node --test examples/chat/tests/resumable/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResumableSocket } from '../../static/resumable.js';
import { ROOM, env, page, offsets } from './helpers.mjs';

/** A fake WebSocket class; `sockets` lists every instance, newest last. */
function fakeWebSocket() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closedByClient = null;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open');
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedByClient = { code, reason };
      this.readyState = 3;
    }
    // The server's side.
    open() { this.readyState = 1; this.onopen?.({}); }
    deliver(frame) { this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
    resumes() { return this.sent.filter((m) => m.action === 'resume'); }
  }
  return { FakeWebSocket, sockets };
}

function setup(t, options = {}) {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { FakeWebSocket, sockets } = fakeWebSocket();
  const log = { messages: [], reloads: [], status: [], other: [] };
  const socket = new ResumableSocket('ws://test/chat', {
    WebSocket: FakeWebSocket,
    rooms: [ROOM],
    random: () => 0.5,
    onMessage: (e) => log.messages.push(e),
    onReload: (room, at) => log.reloads.push({ room, ...at }),
    onStatus: (s) => log.status.push(s),
    onOther: (f) => log.other.push(f),
    ...options,
  });
  t.after(() => socket.close());
  return { socket, sockets, log, current: () => sockets[sockets.length - 1] };
}

test('on open: a resume per room from its initial position, with the configured action', (t) => {
  const { sockets, log } = setup(t, {
    rooms: ['a', { room: 'b', epoch: 'e7', offset: 12 }],
    resumeAction: 'history',
  });
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].url, 'ws://test/chat');
  assert.deepEqual(log.status, ['connecting']);
  sockets[0].open();
  assert.deepEqual(log.status, ['connecting', 'open']);
  assert.deepEqual(sockets[0].sent, [
    { action: 'history', room: 'a', epoch: null, offset: 0 },
    { action: 'history', room: 'b', epoch: 'e7', offset: 12 },
  ]);
});

test('messages go through the feed: in order, once; the resume it asks for is sent', (t) => {
  const { socket, current, log } = setup(t);
  current().open();
  current().deliver(env(1));
  current().deliver(env(1));
  current().deliver(env(3));
  assert.deepEqual(offsets(log.messages), [1]);
  assert.deepEqual(current().resumes().at(-1), { action: 'resume', room: ROOM, epoch: 'e1', offset: 1 });
  current().deliver(page([env(2), env(3)]));
  assert.deepEqual(offsets(log.messages), [1, 2, 3]);
  assert.deepEqual(socket.positions(), { [ROOM]: { epoch: 'e1', offset: 3 } });
});

test('a lost history: onReload before the new start is shown', (t) => {
  const order = [];
  const { current } = setup(t, {
    rooms: [{ room: ROOM, epoch: 'e1', offset: 9 }],
    onReload: (room, at) => order.push(['reload', room, at]),
    onMessage: (e) => order.push(['message', e.offset]),
  });
  current().open();
  current().deliver(page([env(1, { epoch: 'e2' }), env(2, { epoch: 'e2' })], { epoch: 'e2', recovered: false }));
  assert.deepEqual(order, [['reload', ROOM, { epoch: 'e2', head: 2 }], ['message', 1], ['message', 2]]);
});

test('other frames, unknown rooms and non-JSON go to onOther', (t) => {
  const { current, log } = setup(t);
  current().open();
  current().deliver({ type: 'presence', users: [] });
  current().deliver(env(1, { room: 'elsewhere' }));
  current().deliver('not json');
  assert.deepEqual(log.other, [{ type: 'presence', users: [] }, env(1, { room: 'elsewhere' }), 'not json']);
  assert.deepEqual(log.messages, []);
});

test('a second resume settleMs after open when nothing arrived for the room', (t) => {
  // (No answers come in this test: answerTimeoutMs is out of the way.)
  const { current } = setup(t, { rooms: ['quiet', 'busy'], settleMs: 1500, answerTimeoutMs: 60_000 });
  current().open();
  assert.equal(current().resumes().length, 2);
  current().deliver(env(1, { room: 'busy' }));
  t.mock.timers.tick(1499);
  assert.equal(current().resumes().length, 2);
  t.mock.timers.tick(1);
  assert.deepEqual(current().resumes().slice(2), [{ action: 'resume', room: 'quiet', epoch: null, offset: 0 }]);
  t.mock.timers.tick(10_000);
  assert.equal(current().resumes().length, 3); // once
});

test('the answer to the first resume does not count as a message that followed: the settle resume is sent', (t) => {
  const { current } = setup(t);
  current().open();
  current().deliver(page([env(1), env(2)]));
  t.mock.timers.tick(1500);
  assert.deepEqual(current().resumes(), [
    { action: 'resume', room: ROOM, epoch: null, offset: 0 },
    { action: 'resume', room: ROOM, epoch: 'e1', offset: 2 },
  ]);
});

test('a drop before the settle time: no settle resume on the dead socket, a fresh one after the next open', (t) => {
  const { current, sockets } = setup(t, { backoff: { initialMs: 100, jitter: false } });
  current().open();
  current().drop();
  t.mock.timers.tick(100);
  assert.equal(sockets.length, 2);
  assert.equal(sockets[0].resumes().length, 1);
  current().open();
  t.mock.timers.tick(1500);
  assert.equal(sockets[0].resumes().length, 1);
  assert.equal(sockets[1].resumes().length, 2);
});

test('reconnects after a drop with exponential backoff, capped, and resumes from the latest position', (t) => {
  const { current, sockets, log } = setup(t, { backoff: { initialMs: 100, maxMs: 1000, jitter: false } });
  current().open();
  current().deliver(env(1));
  current().deliver(env(2));
  current().drop();
  assert.equal(log.status.at(-1), 'closed');
  // Attempts fail without opening: 100, 200, 400, 800, 1000, 1000 ms.
  for (const ms of [100, 200, 400, 800, 1000, 1000]) {
    const before = sockets.length;
    t.mock.timers.tick(ms - 1);
    assert.equal(sockets.length, before, `no attempt before ${ms} ms`);
    t.mock.timers.tick(1);
    assert.equal(sockets.length, before + 1, `an attempt after ${ms} ms`);
    current().drop();
  }
  t.mock.timers.tick(1000);
  current().open();
  assert.deepEqual(current().resumes(), [{ action: 'resume', room: ROOM, epoch: 'e1', offset: 2 }]);
  // A connection that lasted stableMs (5 s by default) resets the backoff.
  t.mock.timers.tick(5000);
  current().drop();
  const before = sockets.length;
  t.mock.timers.tick(100);
  assert.equal(sockets.length, before + 1);
});

test('a connection dropped before stableMs does not reset the backoff', (t) => {
  const { current, sockets } = setup(t, { backoff: { initialMs: 100, maxMs: 10_000, jitter: false }, stableMs: 2000 });
  current().open();
  // The server accepts, then drops at once, again and again: 100, 200, 400, 800 ms.
  current().drop();
  for (const ms of [100, 200, 400, 800]) {
    const before = sockets.length;
    t.mock.timers.tick(ms - 1);
    assert.equal(sockets.length, before, `no attempt before ${ms} ms`);
    t.mock.timers.tick(1);
    assert.equal(sockets.length, before + 1, `an attempt after ${ms} ms`);
    current().open();
    t.mock.timers.tick(1999);
    current().drop();
  }
});

test('a resume not answered within answerTimeoutMs is sent again from where the feed is; a page stops it', (t) => {
  const { current, log } = setup(t, { settleMs: 60_000, answerTimeoutMs: 3000 });
  current().open();
  assert.equal(current().resumes().length, 1);
  // A jump: the gap is asked once …
  current().deliver(env(1));
  current().deliver(env(3));
  assert.deepEqual(current().resumes().slice(1), [{ action: 'resume', room: ROOM, epoch: 'e1', offset: 1 }]);
  current().deliver(env(4));
  assert.equal(current().resumes().length, 2, 'one resume per gap');
  // … and its answer never comes: asked again after the timeout.
  t.mock.timers.tick(2999);
  assert.equal(current().resumes().length, 2);
  t.mock.timers.tick(1);
  assert.deepEqual(current().resumes().slice(2), [{ action: 'resume', room: ROOM, epoch: 'e1', offset: 1 }]);
  current().deliver(page([env(2), env(3), env(4)]));
  assert.deepEqual(offsets(log.messages), [1, 2, 3, 4]);
  t.mock.timers.tick(60_000 - 3000 - 1);
  assert.equal(current().resumes().length, 3, 'answered: not asked again');
});

test('removeRoom and a drop cancel the answer timers', (t) => {
  const { socket, current } = setup(t, { rooms: ['a', 'b'], settleMs: 60_000, answerTimeoutMs: 1000 });
  current().open();
  socket.removeRoom('a');
  t.mock.timers.tick(1000);
  assert.deepEqual(current().resumes().map((r) => r.room), ['a', 'b', 'b'], 'b asked again, a not');
  const first = current();
  first.drop();
  t.mock.timers.tick(10_000);
  assert.equal(first.resumes().length, 3, 'nothing sent on the dead socket');
});

test('full jitter: the delay is random in [0, cap)', (t) => {
  const draws = [0, 0.999, 0.25];
  const { socket } = setup(t, { random: () => draws.shift(), backoff: { initialMs: 500, maxMs: 15000 } });
  assert.equal(socket.delay(0), 0);
  assert.equal(socket.delay(3), 3996);
  assert.equal(socket.delay(10), 3750);
});

test('no reconnect after close(); status closed; later sends refused', (t) => {
  const { socket, current, sockets, log } = setup(t);
  current().open();
  socket.close();
  assert.deepEqual(sockets[0].closedByClient, { code: 1000, reason: '' });
  assert.equal(log.status.at(-1), 'closed');
  sockets[0].drop(1000); // the close event of the client's own close
  t.mock.timers.tick(60_000);
  assert.equal(sockets.length, 1);
  assert.equal(socket.send({ action: 'send' }), false);
});

test('a close() during the backoff wait cancels the attempt', (t) => {
  const { socket, current, sockets } = setup(t);
  current().drop();
  socket.close();
  t.mock.timers.tick(60_000);
  assert.equal(sockets.length, 1);
});

test('send: JSON when open; queued while not (bounded, oldest dropped), flushed after the resumes', (t) => {
  const { socket, current } = setup(t, { maxQueue: 2 });
  assert.equal(socket.send({ n: 1 }), false);
  socket.send({ n: 2 });
  socket.send({ n: 3 });
  current().open();
  assert.deepEqual(current().sent, [{ action: 'resume', room: ROOM, epoch: null, offset: 0 }, { n: 2 }, { n: 3 }]);
  assert.equal(socket.send({ n: 4 }), true);
  assert.deepEqual(current().sent.at(-1), { n: 4 });
});

test('events of a replaced socket are ignored', (t) => {
  const { current, sockets, log } = setup(t, { backoff: { initialMs: 10, maxMs: 10, jitter: false } });
  current().open();
  const old = current();
  old.drop();
  t.mock.timers.tick(10);
  assert.equal(sockets.length, 2);
  old.deliver(env(1));
  old.drop();
  assert.deepEqual(log.messages, []);
  t.mock.timers.tick(1000);
  assert.equal(sockets.length, 2);
});

test('addRoom while open resumes it at once; removeRoom stops routing it', (t) => {
  const { socket, current, log } = setup(t, { rooms: [] });
  current().open();
  socket.addRoom('late', { epoch: 'e3', offset: 4 });
  assert.deepEqual(current().resumes(), [{ action: 'resume', room: 'late', epoch: 'e3', offset: 4 }]);
  socket.removeRoom('late');
  current().deliver(env(5, { room: 'late', epoch: 'e3' }));
  assert.equal(log.other.length, 1);
});

test('a WebSocket constructor that throws is retried with backoff', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let calls = 0;
  const { FakeWebSocket } = fakeWebSocket();
  class Flaky extends FakeWebSocket {
    constructor(url) {
      calls += 1;
      if (calls === 1) throw new Error('bad');
      super(url);
    }
  }
  const socket = new ResumableSocket('ws://x', { WebSocket: Flaky, backoff: { initialMs: 50, jitter: false } });
  t.after(() => socket.close());
  assert.equal(calls, 1);
  t.mock.timers.tick(50);
  assert.equal(calls, 2);
});

test('a callback that throws is reported and does not stop the envelopes after it', (t) => {
  const reported = [];
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'reportError');
  globalThis.reportError = (error) => reported.push(error.message);
  t.after(() => {
    if (saved) Object.defineProperty(globalThis, 'reportError', saved);
    else delete globalThis.reportError;
  });
  const seen = [];
  const { current, socket } = setup(t, {
    onMessage: (e) => {
      seen.push(e.offset);
      if (e.offset === 1) throw new Error('render failed');
    },
  });
  current().open();
  current().deliver(page([env(1), env(2), env(3)]));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(reported, ['render failed']);
  assert.equal(socket.positions()[ROOM].offset, 3);
});

test('reconnectNow: during the backoff wait, an attempt at once; otherwise nothing', (t) => {
  const { socket, current, sockets } = setup(t, { backoff: { initialMs: 1000, maxMs: 8000, jitter: false } });
  assert.equal(socket.reconnectNow(), false, 'connecting: nothing to hurry');
  current().open();
  assert.equal(socket.reconnectNow(), false, 'open: nothing to hurry');
  current().drop();
  assert.equal(sockets.length, 1);
  assert.equal(socket.reconnectNow(), true);
  assert.equal(sockets.length, 2, 'an attempt at once');
  current().drop();
  // The backoff went on: the next wait is the second one (2000 ms), and only one attempt is due.
  t.mock.timers.tick(1999);
  assert.equal(sockets.length, 2);
  t.mock.timers.tick(1);
  assert.equal(sockets.length, 3);
  current().open();
  assert.deepEqual(current().resumes(), [{ action: 'resume', room: ROOM, epoch: null, offset: 0 }]);
  current().drop();
  socket.close();
  assert.equal(socket.reconnectNow(), false, 'closed: no attempt');
  t.mock.timers.tick(60_000);
  assert.equal(sockets.length, 3);
});

test('acknowledge: held envelopes after the acknowledged offset go to onMessage; no resume for the own message', (t) => {
  const { socket, current, log } = setup(t, { settleMs: 60_000 });
  current().open();
  current().deliver(page([env(1)]));
  assert.equal(socket.acknowledge(ROOM, { epoch: 'e1', offset: 2 }), true);
  current().deliver(env(3));
  assert.deepEqual(offsets(log.messages), [1, 3]);
  assert.equal(current().resumes().length, 1, 'only the resume of the open');
  assert.equal(socket.acknowledge('elsewhere', { epoch: 'e1', offset: 1 }), false);
});
