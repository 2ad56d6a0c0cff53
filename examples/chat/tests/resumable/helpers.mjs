// Shared helpers of the resumable.js tests (not a test file: node --test runs *.test.mjs).

export const ROOM = 'general';

/** A room.message envelope at `offset` (id `m<offset>` unless given). */
export function env(offset, { epoch = 'e1', id = `m${offset}`, room = ROOM, data } = {}) {
  return { type: 'room.message', room, epoch, offset, id, at: 1764240000000 + offset, data: data ?? { n: offset } };
}

/** A room.history page. */
export function page(messages, { epoch = 'e1', head, recovered = true, more = false, room = ROOM } = {}) {
  const last = messages.length ? messages[messages.length - 1].offset : 0;
  return { type: 'room.history', room, epoch, head: head ?? last, recovered, more, messages };
}

export const offsets = (list) => list.map((e) => e.offset);

/** A seeded PRNG (mulberry32), so that a failing property run can be replayed. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
