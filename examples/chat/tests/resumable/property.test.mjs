// A property of RoomFeed (examples/chat/static/resumable.js): whatever the live delivery does —
// duplicates, drops, reordering, one message appended twice under two offsets, answers to
// resumes arriving late or lost with a reconnect — once every resume asked for is answered by a
// log that keeps everything, each message has been shown exactly once, in offset order.
//
// Seeded: a failure names its seed; replay it with RESUMABLE_SEED=<seed>.
//
//   node --test examples/chat/tests/resumable/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomFeed } from '../../static/resumable.js';
import { ROOM, env, prng } from './helpers.mjs';

const RUNS = 300;

function run(seed) {
  const random = prng(seed);
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
  const n = int(1, 150);

  // The log: offsets 1..n; now and then a publisher's retry appends an earlier message again.
  const log = [];
  for (let offset = 1; offset <= n; offset++) {
    const retry = offset > 1 && random() < 0.05;
    const id = retry ? log[int(Math.max(0, offset - 6), offset - 2)].id : `m${offset}`;
    log.push(env(offset, { id }));
  }
  const expected = [];
  const ids = new Set();
  for (const e of log) if (!ids.has(e.id)) { ids.add(e.id); expected.push(e.offset); }

  // Live delivery: offset k is appended at time k; each copy arrives some time after (reordering),
  // 0 copies (dropped), 1, or 2–3 (at-least-once).
  const events = [];
  for (const e of log) {
    events.push({ at: e.offset, append: e.offset });
    const copies = random() < 0.15 ? 0 : random() < 0.8 ? 1 : int(2, 3);
    for (let c = 0; c < copies; c++) events.push({ at: e.offset + random() * int(0, 8), live: e });
  }
  events.sort((a, b) => a.at - b.at || (a.append ? -1 : 1));

  const feed = new RoomFeed({ room: ROOM, maxHeld: int(2, 50) });
  const shown = [];
  let appended = 0;
  let pending = []; // answers on their way
  let asked = 0;

  const read = (from) => {
    asked += 1;
    assert.ok(asked < 10_000, 'too many resumes');
    const size = int(1, 10);
    const after = from.epoch === null || from.epoch === 'e1' ? from.offset : 0;
    const rest = log.slice(after, appended);
    const messages = rest.slice(0, size);
    const recovered = from.epoch === 'e1';
    pending.push({ type: 'room.history', room: ROOM, epoch: appended ? 'e1' : null, head: appended, recovered, more: rest.length > size, messages });
  };
  const apply = (out) => {
    shown.push(...out.show.map((e) => e.offset));
    assert.equal(out.reload, null, 'no history is lost here: no reload');
    if (out.resume) read(out.resume);
  };
  const answerOne = () => {
    const i = int(0, pending.length - 1);
    const [answer] = pending.splice(i, 1);
    apply(feed.history(answer));
  };

  // The client resumes on its first open, before anything.
  read(feed.resumeRequest());
  for (const event of events) {
    if (event.append) { appended = event.append; continue; }
    while (pending.length && random() < 0.3) answerOne();
    if (random() < 0.02) {
      // A reconnect: the answers on their way are lost; a resume on the new socket.
      pending = [];
      read(feed.resumeRequest());
    }
    apply(feed.receive(event.live));
  }
  // The settle resume (or the next reconnect's), then every answer, pages included.
  read(feed.resumeRequest());
  while (pending.length) answerOne();

  return { shown, expected };
}

test(`${RUNS} random streams: every message shown exactly once, in order`, () => {
  const seeds = process.env.RESUMABLE_SEED ? [Number(process.env.RESUMABLE_SEED)] : Array.from({ length: RUNS }, (_, i) => i + 1);
  for (const seed of seeds) {
    const { shown, expected } = run(seed);
    assert.deepEqual(shown, expected, `seed ${seed}`);
  }
});
