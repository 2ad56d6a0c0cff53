// ResumableSocket with a fake server that keeps a room's log and answers resumes from it: live
// delivery drops, duplicates and reorders, and the connection is cut now and then (everything
// sent while it is down is lost). After the last reconnect settles, the app has been given
// every message once, in order. Seeded; replay one with RESUMABLE_SEED=<seed>.
//
//   node --test examples/chat/tests/resumable/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResumableSocket } from '../../static/resumable.js';
import { ROOM, env, prng } from './helpers.mjs';

const RUNS = 100;

function run(t, seed) {
  const random = prng(seed);
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
  const n = int(1, 80);
  const log = Array.from({ length: n }, (_, i) => env(i + 1));
  let appended = 0;
  let current = null;

  class ServerSocket {
    constructor() { this.up = false; current = this; }
    send(text) {
      const frame = JSON.parse(text);
      if (frame.action !== 'resume') return;
      const after = frame.epoch === 'e1' ? frame.offset : 0;
      const rest = log.slice(after, appended);
      const size = int(1, 7);
      this.deliver({
        type: 'room.history', room: ROOM, epoch: appended ? 'e1' : null, head: appended,
        recovered: frame.epoch === 'e1', more: rest.length > size, messages: rest.slice(0, size),
      });
    }
    close() { this.up = false; }
    deliver(frame) { if (this.up) this.onmessage({ data: JSON.stringify(frame) }); }
    open() { this.up = true; this.onopen({}); }
    cut() { this.up = false; this.onclose({ code: 1006 }); }
  }

  const shown = [];
  const socket = new ResumableSocket('ws://fake', {
    WebSocket: ServerSocket,
    rooms: [ROOM],
    random,
    backoff: { initialMs: 10, maxMs: 100 },
    settleMs: 1500,
    onMessage: (e) => shown.push(e.offset),
  });
  const settle = () => {
    // Whatever socket is current opens after its backoff; give it time and its settle resume.
    for (let i = 0; i < 20 && !current.up; i++) { t.mock.timers.tick(100); if (!current.up) current.open(); }
    t.mock.timers.tick(2000);
  };
  settle();
  const late = [];
  for (const e of log) {
    appended = e.offset;
    const copies = random() < 0.1 ? 0 : random() < 0.85 ? 1 : 2;
    for (let c = 0; c < copies; c++) {
      if (random() < 0.2) late.push(e); // delivered later, out of order
      else current.deliver(e);
    }
    if (late.length && random() < 0.3) current.deliver(late.splice(int(0, late.length - 1), 1)[0]);
    if (random() < 0.05) { current.cut(); settle(); }
  }
  for (const e of late) current.deliver(e);
  current.cut();
  settle();
  socket.close();
  return { shown, expected: log.map((e) => e.offset) };
}

test(`${RUNS} runs through cut connections: every message once, in order`, (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const seeds = process.env.RESUMABLE_SEED ? [Number(process.env.RESUMABLE_SEED)] : Array.from({ length: RUNS }, (_, i) => i + 1);
  for (const seed of seeds) {
    const { shown, expected } = run(t, seed);
    assert.deepEqual(shown, expected, `seed ${seed}`);
  }
});
