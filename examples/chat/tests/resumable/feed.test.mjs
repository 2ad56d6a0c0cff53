// RoomFeed, the per-room state machine of examples/chat/static/resumable.js: the protocol's
// rules 1–5 (src/history/mod.rs) one by one.
//
//   node --test examples/chat/tests/resumable/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomFeed } from '../../static/resumable.js';
import { ROOM, env, page, offsets } from './helpers.mjs';

const feed = (options = {}) => new RoomFeed({ room: ROOM, ...options });

test('in order: each next offset is shown at once, and the position follows', () => {
  const f = feed();
  assert.deepEqual(f.position(), { epoch: null, offset: 0 });
  for (let n = 1; n <= 5; n++) {
    const out = f.receive(env(n));
    assert.deepEqual(offsets(out.show), [n]);
    assert.equal(out.resume, null);
    assert.equal(out.reload, null);
  }
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 5 });
});

test('an initial position is continued from', () => {
  const f = feed({ epoch: 'e1', offset: 41 });
  assert.deepEqual(offsets(f.receive(env(42)).show), [42]);
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 42 });
});

test('duplicates by offset are dropped', () => {
  const f = feed();
  f.receive(env(1));
  f.receive(env(2));
  for (const n of [1, 2, 2, 1]) assert.deepEqual(f.receive(env(n)), { show: [], resume: null, reload: null });
  assert.deepEqual(offsets(f.receive(env(3)).show), [3]);
});

test('duplicates by id (one message appended twice, two offsets) are dropped, and the offset still moves', () => {
  const f = feed();
  f.receive(env(1, { id: 'x' }));
  const out = f.receive(env(2, { id: 'x' }));
  assert.deepEqual(out.show, []);
  assert.equal(out.resume, null);
  assert.equal(f.position().offset, 2);
  assert.deepEqual(offsets(f.receive(env(3)).show), [3]);
});

test('another room\'s frames and malformed envelopes are ignored', () => {
  const f = feed();
  assert.deepEqual(f.receive(env(1, { room: 'other' })).show, []);
  assert.deepEqual(f.receive({ type: 'room.message', room: ROOM, offset: 'x' }).show, []);
  assert.deepEqual(f.receive(null).show, []);
  assert.deepEqual(f.history(page([env(1)], { room: 'other' })).show, []);
  assert.deepEqual(f.position(), { epoch: null, offset: 0 });
});

test('a jump: held, one resume from last, the gap filled from history, the held ones shown once', () => {
  const f = feed();
  f.receive(env(1));
  f.receive(env(2));
  const jump = f.receive(env(5));
  assert.deepEqual(jump.show, []);
  assert.deepEqual(jump.resume, { epoch: 'e1', offset: 2 });
  // Another envelope after the gap: held, not asked again (the resume is on its way).
  const more = f.receive(env(6));
  assert.deepEqual(more, { show: [], resume: null, reload: null });
  const filled = f.history(page([env(3), env(4), env(5)], { head: 6 }));
  assert.deepEqual(offsets(filled.show), [3, 4, 5, 6]);
  assert.equal(filled.resume, null);
  assert.equal(filled.reload, null);
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 6 });
  // The live copies that were held, again: dropped.
  assert.deepEqual(f.receive(env(5)).show, []);
  assert.deepEqual(f.receive(env(6)).show, []);
  assert.deepEqual(offsets(f.receive(env(7)).show), [7]);
});

test('out-of-order live delivery fills itself in without waiting for the history', () => {
  const f = feed();
  f.receive(env(1));
  assert.deepEqual(f.receive(env(3)).resume, { epoch: 'e1', offset: 1 });
  assert.deepEqual(f.receive(env(4)).show, []);
  assert.deepEqual(offsets(f.receive(env(2)).show), [2, 3, 4]);
  // The history page answering the resume arrives late: everything in it is known.
  const late = f.history(page([env(2), env(3), env(4)]));
  assert.deepEqual(late, { show: [], resume: null, reload: null });
  assert.equal(f.position().offset, 4);
});

test('after an answer, a new gap is asked for again', () => {
  const f = feed();
  f.receive(env(1));
  assert.ok(f.receive(env(3)).resume);
  f.history(page([env(2), env(3)]));
  assert.deepEqual(f.receive(env(5)).resume, { epoch: 'e1', offset: 3 });
});

test('recovered: false → reload at the page\'s epoch; its messages are the new start', () => {
  const f = feed({ epoch: 'old', offset: 10 });
  const out = f.history(page([env(3, { epoch: 'e2' }), env(4, { epoch: 'e2' })], { epoch: 'e2', recovered: false, head: 4 }));
  assert.deepEqual(out.reload, { epoch: 'e2', head: 4 });
  assert.deepEqual(offsets(out.show), [3, 4]);
  assert.equal(out.resume, null);
  assert.deepEqual(f.position(), { epoch: 'e2', offset: 4 });
  assert.deepEqual(offsets(f.receive(env(5, { epoch: 'e2' })).show), [5]);
});

test('recovered: false in the same epoch (the messages after last are no longer kept) → reload', () => {
  const f = feed({ epoch: 'e1', offset: 10 });
  const out = f.history(page([env(50), env(51)], { recovered: false }));
  assert.deepEqual(out.reload, { epoch: 'e1', head: 51 });
  assert.deepEqual(offsets(out.show), [50, 51]);
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 51 });
});

test('recovered: false of an empty room is ignored; the next message, in a new epoch, reloads', () => {
  const f = feed({ epoch: 'e1', offset: 10 });
  assert.deepEqual(f.history(page([], { epoch: null, recovered: false, head: 0 })), { show: [], resume: null, reload: null });
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 10 });
  const live = f.receive(env(1, { epoch: 'e9' }));
  assert.deepEqual(live.resume, { epoch: 'e1', offset: 10 });
  const out = f.history(page([env(1, { epoch: 'e9' })], { epoch: 'e9', recovered: false }));
  assert.deepEqual(out.reload, { epoch: 'e9', head: 1 });
  assert.deepEqual(offsets(out.show), [1]);
});

test('a fresh feed adopts the first page without a reload, whatever recovered says', () => {
  const f = feed();
  const out = f.history(page([env(7), env(8)], { recovered: false }));
  assert.equal(out.reload, null);
  assert.deepEqual(offsets(out.show), [7, 8]);
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 8 });
  // A second answer to a second resume (the settle resume), also recovered: false: nothing new.
  const again = f.history(page([env(7), env(8)], { recovered: false }));
  assert.deepEqual(again, { show: [], resume: null, reload: null });
});

test('an epoch change seen live → a resume from the old position, then the reload from its answer', () => {
  const f = feed();
  f.receive(env(1));
  f.receive(env(2));
  const out = f.receive(env(1, { epoch: 'e2' }));
  assert.deepEqual(out.show, []);
  assert.deepEqual(out.resume, { epoch: 'e1', offset: 2 });
  // Not asked twice while the answer is on its way.
  assert.equal(f.receive(env(2, { epoch: 'e2' })).resume, null);
  const answer = f.history(page([env(1, { epoch: 'e2' }), env(2, { epoch: 'e2' })], { epoch: 'e2', recovered: false }));
  assert.deepEqual(answer.reload, { epoch: 'e2', head: 2 });
  assert.deepEqual(offsets(answer.show), [1, 2]);
  assert.deepEqual(f.position(), { epoch: 'e2', offset: 2 });
});

test('the held ones of the new epoch survive a reload; those of the old one do not', () => {
  const f = feed({ epoch: 'e1', offset: 5 });
  f.receive(env(8)); // e1, held
  const out = f.history(page([env(1, { epoch: 'e2' })], { epoch: 'e2', recovered: false, head: 1 }));
  assert.deepEqual(offsets(out.show), [1]);
  assert.equal(f.held.size, 0);
});

test('a late recovered page of an older epoch is ignored', () => {
  const f = feed({ epoch: 'e2', offset: 3 });
  assert.deepEqual(f.history(page([env(4)], { epoch: 'e1' })), { show: [], resume: null, reload: null });
  assert.deepEqual(f.position(), { epoch: 'e2', offset: 3 });
});

test('paging: more: true asks for the next page from the last offset shown', () => {
  const f = feed({ epoch: 'e1', offset: 0 });
  const p1 = f.history(page([env(1), env(2)], { more: true, head: 5 }));
  assert.deepEqual(offsets(p1.show), [1, 2]);
  assert.deepEqual(p1.resume, { epoch: 'e1', offset: 2 });
  const p2 = f.history(page([env(3), env(4)], { more: true, head: 5 }));
  assert.deepEqual(offsets(p2.show), [3, 4]);
  assert.deepEqual(p2.resume, { epoch: 'e1', offset: 4 });
  const p3 = f.history(page([env(5)], { head: 5 }));
  assert.deepEqual(offsets(p3.show), [5]);
  assert.equal(p3.resume, null);
});

test('paging with a reload: the first page reloads, the next ones continue', () => {
  const f = feed({ epoch: 'e1', offset: 3 });
  const p1 = f.history(page([env(20), env(21)], { recovered: false, more: true, head: 22 }));
  assert.deepEqual(p1.reload, { epoch: 'e1', head: 22 });
  assert.deepEqual(p1.resume, { epoch: 'e1', offset: 21 });
  const p2 = f.history(page([env(22)], { head: 22 }));
  assert.equal(p2.reload, null);
  assert.deepEqual(offsets(p2.show), [22]);
});

test('the id set is bounded: the oldest id is forgotten first', () => {
  const f = feed({ maxSeenIds: 3 });
  for (let n = 1; n <= 4; n++) f.receive(env(n, { id: `id${n}` }));
  assert.deepEqual([...f.seenIds], ['id2', 'id3', 'id4']);
  // id1 was evicted: a message with it is shown again; id4 still known: dropped.
  assert.deepEqual(offsets(f.receive(env(5, { id: 'id1' })).show), [5]);
  assert.deepEqual(f.receive(env(6, { id: 'id4' })).show, []);
  assert.equal(f.seenIds.size, 3);
});

test('the held buffer is bounded: the farthest is dropped, and comes back through the history', () => {
  const f = feed({ maxHeld: 3 });
  f.receive(env(1));
  const first = f.receive(env(10));
  assert.deepEqual(first.resume, { epoch: 'e1', offset: 1 });
  for (const n of [11, 12, 13]) f.receive(env(n));
  assert.deepEqual([...f.held.keys()].sort((a, b) => a - b), [10, 11, 12]);
  const out = f.history(page([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((n) => env(n))));
  assert.deepEqual(offsets(out.show), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.equal(f.held.size, 0);
});

test('a page that makes progress but leaves a gap before held envelopes asks again', () => {
  const f = feed({ epoch: 'e1', offset: 1 });
  f.receive(env(6));
  // The answer was read before 4 and 5 were appended (head 3).
  const out = f.history(page([env(2), env(3)], { head: 3 }));
  assert.deepEqual(offsets(out.show), [2, 3]);
  assert.deepEqual(out.resume, { epoch: 'e1', offset: 3 });
});

test('a page without progress asks again only when read before the held ones were appended, a few times at most', () => {
  const f = feed({ epoch: 'e1', offset: 3 });
  assert.ok(f.receive(env(6)).resume);
  // Read before 4..6 were appended (head 3): ask again, up to three times without progress.
  for (let i = 0; i < 3; i++) assert.deepEqual(f.history(page([], { head: 3 })).resume, { epoch: 'e1', offset: 3 });
  assert.equal(f.history(page([], { head: 3 })).resume, null);
  // Progress resets the count.
  const out = f.history(page([env(4)], { head: 4 }));
  assert.deepEqual(offsets(out.show), [4]);
  assert.deepEqual(out.resume, { epoch: 'e1', offset: 4 });
  assert.deepEqual(f.history(page([], { head: 4 })).resume, { epoch: 'e1', offset: 4 });
  // A page whose head is past the held one but does not fill the gap: not asked again.
  assert.equal(f.history(page([], { head: 9 })).resume, null);
  // The next live envelope asks again.
  assert.deepEqual(f.receive(env(7)).resume, { epoch: 'e1', offset: 4 });
});

test('resumeRequest gives the position and lets the next jump be asked again only after it moves', () => {
  const f = feed({ epoch: 'e1', offset: 4 });
  assert.deepEqual(f.resumeRequest(), { epoch: 'e1', offset: 4 });
  assert.equal(f.receive(env(9)).resume, null); // the same position was just asked for
  assert.deepEqual(offsets(f.receive(env(5)).show), [5]);
  assert.deepEqual(f.receive(env(10)).resume, { epoch: 'e1', offset: 5 });
});

test('the constructor checks its room and offset', () => {
  assert.throws(() => new RoomFeed({}), TypeError);
  assert.throws(() => new RoomFeed({ room: 'r', offset: -1 }), TypeError);
});

test('acknowledge: the next offset, shown by the app itself, moves the feed and releases what it held', () => {
  const f = feed();
  f.receive(env(1));
  // The app's own message is offset 2 (from the reply to its send); 3 came live before the reply.
  const held = f.receive(env(3));
  assert.deepEqual(offsets(held.show), []);
  assert.notEqual(held.resume, null, 'a gap, as far as the feed knows');
  const out = f.acknowledge({ epoch: 'e1', offset: 2 });
  assert.equal(out.acknowledged, true);
  assert.deepEqual(offsets(out.show), [3]);
  assert.deepEqual(f.position(), { epoch: 'e1', offset: 3 });
  // The resume's answer brings 2 and 3 again: dropped.
  assert.deepEqual(offsets(f.history(page([env(2), env(3)])).show), []);
  // The next live one is no gap.
  const next = f.receive(env(4));
  assert.deepEqual(offsets(next.show), [4]);
  assert.equal(next.resume, null);
});

test('acknowledge changes nothing unless it is the next offset of the same epoch', () => {
  const f = feed();
  f.receive(env(1));
  for (const position of [
    { epoch: 'e1', offset: 3 },   // a gap before it: a resume fills it and brings it back
    { epoch: 'e1', offset: 1 },   // already shown
    { epoch: 'e2', offset: 2 },   // another epoch
    { epoch: 'e1', offset: -1 },
    { epoch: 'e1', offset: 2.5 },
    {},
  ]) {
    const out = f.acknowledge(position);
    assert.equal(out.acknowledged, false, JSON.stringify(position));
    assert.deepEqual(out.show, []);
    assert.deepEqual(f.position(), { epoch: 'e1', offset: 1 });
  }
  assert.equal(feed().acknowledge({ epoch: 'e1', offset: 1 }).acknowledged, false, 'a feed with no epoch yet');
});
