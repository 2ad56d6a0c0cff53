// resumable.js — a client for stateless-ws's resumable rooms: every message of a room shown
// once, in order, across reconnects. An ES module with no dependencies and no build step, for
// browsers and Node.js ≥ 18 (give it a WebSocket class on Node < 22). Copy it into your app.
//
// SPDX-License-Identifier: MIT — Copyright (c) the stateless-ws authors. Permission is hereby
// granted, free of charge, to any person obtaining a copy of this file, to deal in it without
// restriction, under the terms of the MIT License (see LICENSE in the stateless-ws repository).
// THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
//
// The protocol (src/history/mod.rs, "The protocol, for client authors"), in brief. The server
// sends each room message in an envelope
//   {"type":"room.message","room","epoch","offset","id","at","data"}
// where offsets are 1, 2, 3, … within an epoch, and answers a resume
//   {"action":"resume","room","epoch","offset"}
// with a page
//   {"type":"room.history","room","epoch","head","recovered","more","messages":[envelopes]}.
// Per room, the client keeps the epoch and the highest offset shown (`last`), and
//   1. shows the envelope at offset last + 1;
//   2. drops an offset ≤ last, or an id already shown;
//   3. holds an envelope after a jump (offset > last + 1) and asks for the gap with a resume
//      from last, then shows the held ones once the gap is filled;
//   4. resumes after every (re)connect — and once more a second or two later when no live
//      message followed in the room — and asks for the next page while `more` is true;
//   5. reloads when a page says `recovered: false` (the history it had is gone), starting again
//      from the page's epoch and messages; an epoch change seen live leads there through a resume.
//
// Two classes:
//   RoomFeed        — one room's state machine: pure logic, no I/O, no timers.
//   ResumableSocket — a WebSocket that reconnects (exponential backoff, full jitter, reset only
//                     after a connection lasted `stableMs`), resumes every room on each open,
//                     asks again when a resume is not answered within `answerTimeoutMs` (so a
//                     server that refuses resumes — no history — should see its rooms removed
//                     with removeRoom), and routes frames through the rooms' feeds.
//
// Usage:
//
//   import { ResumableSocket } from './resumable.js';
//
//   const saved = JSON.parse(localStorage.getItem('positions') || '{}');
//   const socket = new ResumableSocket('wss://example.com/prod', {
//     rooms: [{ room: 'general', ...saved.general }],   // or just ['general']
//     onMessage(envelope) {
//       render(envelope.data);
//       localStorage.setItem('positions', JSON.stringify(socket.positions()));
//     },
//     onReload(room, { epoch, head }) { clearRoom(room); note('earlier messages are gone'); },
//     onStatus(status) { showStatus(status); },      // "connecting" | "open" | "closed"
//     onOther(frame) { /* any other frame: presence, errors, … */ },
//   });
//   socket.send({ action: 'send', room: 'general', text: 'hi' });
//   // a "Reconnect now" button: socket.reconnectNow();   later: socket.close();
//
// Nothing is persisted by this module: keep `socket.positions()` (or `feed.position()`) where
// you like and pass them back as the rooms' initial positions.

const ENVELOPE_TYPE = 'room.message';
const HISTORY_TYPE = 'room.history';

function isOffset(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

function isEnvelope(frame) {
  return frame !== null && typeof frame === 'object' && isOffset(frame.offset) && frame.offset > 0;
}

/**
 * One room's feed: decides which envelopes to show, in order and once, and when to resume.
 * It does no I/O: `receive` and `history` return what to show and what to ask for.
 *
 * - `receive(envelope)` → `{show, resume, reload: null}`
 * - `history(page)` → `{show, resume, reload}` where `reload` is `{epoch, head}` when the history
 *   the feed had is lost (`recovered: false`); the app should then clear what it shows of the
 *   room: `show` is the new start.
 * - `resume` is `{epoch, offset}` (send `{"action":"resume", room, epoch, offset}`) or `null`.
 *
 * A fresh feed (no epoch, offset 0) adopts the epoch of the first envelope or page it gets, and a
 * `recovered: false` page reports no `reload` to it: it had nothing to lose. A page whose
 * messages continue the feed within its epoch is applied as recovered, whatever its flag says
 * (an answer to an older resume arriving late must not reset the feed), and a `recovered:
 * false` page of an empty room (no epoch, no messages) is ignored by a feed that has an epoch:
 * it has nothing to show, and the room's next message, in a new epoch, leads to the reload.
 */
export class RoomFeed {
  /**
   * @param {{room: string, epoch?: string|null, offset?: number, maxSeenIds?: number, maxHeld?: number}} options
   */
  constructor({ room, epoch = null, offset = 0, maxSeenIds = 1000, maxHeld = 1000 } = {}) {
    if (typeof room !== 'string' || room === '') throw new TypeError('RoomFeed: room must be a non-empty string');
    if (!isOffset(offset)) throw new TypeError('RoomFeed: offset must be a non-negative integer');
    this.room = room;
    this.epoch = epoch ?? null;
    this.last = offset;
    this.maxSeenIds = Math.max(1, maxSeenIds);
    this.maxHeld = Math.max(1, maxHeld);
    /** ids shown, oldest first (a Set keeps insertion order) */
    this.seenIds = new Set();
    /** envelopes after a gap, by offset */
    this.held = new Map();
    /** the position last asked for and not answered yet (to ask once per gap) */
    this.asked = null;
    /** answers in a row that left a gap without progress and were asked again */
    this.fruitless = 0;
  }

  /** Where the feed is: the epoch and the highest offset shown. */
  position() {
    return { epoch: this.epoch, offset: this.last };
  }

  /** The position to resume from, now (after a reconnect, or to settle); marks it asked. */
  resumeRequest() {
    this.asked = this.position();
    return this.position();
  }

  /** A live `room.message` envelope. */
  receive(envelope) {
    const out = { show: [], resume: null, reload: null };
    if (!isEnvelope(envelope) || envelope.room !== this.room) return out;
    if (this.epoch === null) {
      this.epoch = envelope.epoch ?? null;
    } else if (envelope.epoch !== this.epoch) {
      // The room's history changed epoch: the resume's answer (recovered: false) says from where.
      out.resume = this._ask();
      return out;
    }
    if (envelope.offset <= this.last) return out;
    if (envelope.offset === this.last + 1) {
      this._accept(envelope, out.show);
      this._drain(out.show);
      return out;
    }
    this._hold(envelope);
    out.resume = this._ask();
    return out;
  }

  /**
   * The app has shown the message at `{epoch, offset}` itself — its own message, which the server
   * confirmed with that offset but does not send back to its sender live. When it is the next
   * offset of the feed's epoch, the feed moves past it (and shows what it held after it), so that
   * the next live message is not taken for a gap; otherwise nothing changes (a gap before it is
   * filled by a resume, which brings the message back — the app recognises it by its offset).
   * Returns `{show, resume: null, reload: null, acknowledged}`.
   */
  acknowledge({ epoch, offset } = {}) {
    const out = { show: [], resume: null, reload: null, acknowledged: false };
    if (!isOffset(offset) || offset !== this.last + 1) return out;
    if (this.epoch === null || epoch !== this.epoch) return out;
    this.last = offset;
    out.acknowledged = true;
    this._drain(out.show);
    return out;
  }

  /** A `room.history` page, the answer to a resume. */
  history(page) {
    const out = { show: [], resume: null, reload: null };
    if (page === null || typeof page !== 'object' || page.room !== this.room) return out;
    const messages = Array.isArray(page.messages) ? page.messages.filter(isEnvelope) : [];
    const epoch = page.epoch ?? null;
    const head = isOffset(page.head) ? page.head : 0;
    this.asked = null;
    const start = messages.length > 0 ? messages[0].offset - 1 : head;
    const continues = epoch !== null && epoch === this.epoch && start <= this.last;
    if (page.recovered === false && epoch === null && messages.length === 0 && this.epoch !== null) {
      // An empty room: nothing to show. Either the answer was read before the messages this
      // feed has seen were appended, or they all expired — then the next message comes in a
      // new epoch, and the resume it leads to reloads.
      return out;
    }
    if (page.recovered === false && !continues) {
      const fresh = this.epoch === null && this.last === 0;
      if (!fresh) out.reload = { epoch, head };
      this.epoch = epoch;
      this.last = start;
      this.seenIds.clear();
      for (const [offset, held] of this.held) {
        if (held.epoch !== epoch || offset <= start) this.held.delete(offset);
      }
    } else if (this.epoch === null) {
      this.epoch = epoch;
    } else if (epoch !== this.epoch) {
      return out; // a recovered page of another epoch: the answer to an old resume
    }
    const before = this.last;
    for (const envelope of messages) {
      if (envelope.epoch !== undefined && envelope.epoch !== this.epoch) continue;
      if (envelope.offset <= this.last) continue;
      if (envelope.offset === this.last + 1) {
        this._accept(envelope, out.show);
        this._drain(out.show);
      } else {
        this._hold(envelope); // a hole inside a page (should not happen): ask below
      }
    }
    if (this.last > before) this.fruitless = 0;
    if (page.more === true) {
      out.resume = this.resumeRequest();
    } else if (this.held.size > 0) {
      // A gap before the held ones remains. Every held envelope was appended before it came, so
      // a read now finds the gap — ask again after progress, or when this page was read before
      // the first held one was appended (its head is below it); a few times at most without
      // progress, so that a page that never fills it (an answer to an old resume, a server out
      // of step) cannot start a loop. The next envelope or reconnect asks again anyway.
      const firstHeld = Math.min(...this.held.keys());
      if (this.last > before || (head < firstHeld && this.fruitless < 3)) {
        if (this.last === before) this.fruitless += 1;
        out.resume = this.resumeRequest();
      }
    }
    return out;
  }

  _ask() {
    const here = this.position();
    if (this.asked && this.asked.epoch === here.epoch && this.asked.offset === here.offset) return null;
    this.asked = here;
    return { ...here };
  }

  _accept(envelope, show) {
    this.last = envelope.offset;
    const id = envelope.id;
    if (id !== undefined && id !== null) {
      if (this.seenIds.has(id)) return; // the same message under a second offset
      this.seenIds.add(id);
      if (this.seenIds.size > this.maxSeenIds) this.seenIds.delete(this.seenIds.values().next().value);
    }
    show.push(envelope);
  }

  _drain(show) {
    for (;;) {
      const next = this.held.get(this.last + 1);
      if (next === undefined) break;
      this.held.delete(this.last + 1);
      this._accept(next, show);
    }
    for (const offset of this.held.keys()) if (offset <= this.last) this.held.delete(offset);
  }

  _hold(envelope) {
    this.held.set(envelope.offset, envelope);
    if (this.held.size > this.maxHeld) {
      // Keep the ones nearest the gap: the farthest comes back through the history.
      let farthest = -1;
      for (const offset of this.held.keys()) if (offset > farthest) farthest = offset;
      this.held.delete(farthest);
    }
  }
}

/** Calls an application callback; an exception is reported, not let loose in the feed's loop. */
function callSafely(callback, ...args) {
  try {
    callback(...args);
  } catch (error) {
    if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
    else setTimeout(() => { throw error; }, 0);
  }
}

/**
 * A WebSocket that reconnects and resumes its rooms. See the header of this file.
 *
 * `send(obj)` sends JSON when the socket is open (returns `true`); while it is not, the message
 * waits in a queue of at most `maxQueue` (100) messages — the oldest is dropped when it is full —
 * sent right after the resumes of the next open (returns `false`). `close()` drops the queue.
 * An exception thrown by a callback is reported (`reportError`, else an uncaught error on a
 * timer) and does not stop the envelopes after it from being delivered.
 */
export class ResumableSocket {
  constructor(url, {
    WebSocket = globalThis.WebSocket,
    protocols,
    rooms = [],
    onMessage = () => {},
    onReload = () => {},
    onStatus = () => {},
    onOther = () => {},
    backoff = {},
    settleMs = 1500,
    stableMs = 5000,
    answerTimeoutMs = 10000,
    resumeAction = 'resume',
    maxQueue = 100,
    maxSeenIds,
    maxHeld,
    random = Math.random,
  } = {}) {
    if (typeof WebSocket !== 'function') throw new TypeError('ResumableSocket: no WebSocket class (pass {WebSocket})');
    this.url = url;
    this.WebSocket = WebSocket;
    this.protocols = protocols;
    this.onMessage = onMessage;
    this.onReload = onReload;
    this.onStatus = onStatus;
    this.onOther = onOther;
    this.backoff = { initialMs: 500, maxMs: 15000, jitter: true, ...backoff };
    this.settleMs = settleMs;
    this.stableMs = stableMs;
    this.answerTimeoutMs = answerTimeoutMs;
    this.resumeAction = resumeAction;
    this.maxQueue = maxQueue;
    this.feedOptions = { maxSeenIds, maxHeld };
    this.random = random;
    /** @type {Map<string, RoomFeed>} */
    this.feeds = new Map();
    /** rooms that got a live room.message since the last open */
    this.heard = new Set();
    this.queue = [];
    this.attempt = 0;
    this.ws = null;
    this.isOpen = false;
    this.closed = false;
    this.reconnectTimer = null;
    this.settleTimer = null;
    this.stableTimer = null;
    /** per room: the timer of a resume not answered yet */
    this.answerTimers = new Map();
    for (const entry of rooms) {
      if (typeof entry === 'string') this.addRoom(entry);
      else this.addRoom(entry.room, entry);
    }
    this._connect();
  }

  /**
   * Follows `room` from `position` ({epoch, offset}); resumes now if open. Without a position the
   * first resume (null, 0) is answered with what the log keeps of the room.
   */
  addRoom(room, { epoch = null, offset = 0 } = {}) {
    const options = { room, epoch, offset };
    if (this.feedOptions.maxSeenIds !== undefined) options.maxSeenIds = this.feedOptions.maxSeenIds;
    if (this.feedOptions.maxHeld !== undefined) options.maxHeld = this.feedOptions.maxHeld;
    const feed = new RoomFeed(options);
    this.feeds.set(room, feed);
    if (this.isOpen) this._resume(room, feed.resumeRequest());
    return feed;
  }

  /** Stops following `room` (its frames go to `onOther`). */
  removeRoom(room) {
    this.feeds.delete(room);
    this.heard.delete(room);
    this._answered(room);
  }

  /** The room's feed, or undefined. */
  feed(room) {
    return this.feeds.get(room);
  }

  /**
   * The app showed the message at `position` ({epoch, offset}) of `room` itself (its own, as
   * the server's reply to its send confirmed it): see `RoomFeed.acknowledge`. Envelopes the feed
   * held after it go to `onMessage`. Returns whether the feed moved past it.
   */
  acknowledge(room, position) {
    const feed = this.feeds.get(room);
    if (feed === undefined) return false;
    const out = feed.acknowledge(position);
    for (const envelope of out.show) callSafely(this.onMessage, envelope);
    return out.acknowledged;
  }

  /** `{room: {epoch, offset}}` for every room: what to persist. */
  positions() {
    const out = {};
    for (const [room, feed] of this.feeds) out[room] = feed.position();
    return out;
  }

  /** Sends `obj` as JSON now (true), or queues it until the next open (false). */
  send(obj) {
    if (this.closed) return false;
    if (this.isOpen) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    this.queue.push(obj);
    if (this.queue.length > this.maxQueue) this.queue.shift();
    return false;
  }

  /** Closes the socket for good: no reconnect, the queue dropped. */
  close(code = 1000, reason = '') {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.settleTimer);
    clearTimeout(this.stableTimer);
    this.reconnectTimer = this.settleTimer = this.stableTimer = null;
    this._clearAnswerTimers();
    const ws = this.ws;
    this.ws = null;
    this.isOpen = false;
    if (ws) {
      try { ws.close(code, reason); } catch { /* already closing */ }
    }
    callSafely(this.onStatus, 'closed');
  }

  /**
   * While waiting to reconnect, tries at once (a "Reconnect now" button): true when an attempt
   * started. Does nothing while connecting or open, or after `close()`. The backoff goes on from
   * where it was if this attempt fails too.
   */
  reconnectNow() {
    if (this.closed || this.reconnectTimer === null) return false;
    clearTimeout(this.reconnectTimer);
    this._connect();
    return true;
  }

  /** The delay before reconnect attempt `attempt` (0-based): exponential, capped, full jitter. */
  delay(attempt) {
    const { initialMs, maxMs, jitter } = this.backoff;
    const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
    return jitter ? Math.floor(this.random() * cap) : cap;
  }

  _connect() {
    if (this.closed) return;
    this.reconnectTimer = null;
    callSafely(this.onStatus, 'connecting');
    let ws;
    try {
      ws = this.protocols === undefined ? new this.WebSocket(this.url) : new this.WebSocket(this.url, this.protocols);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => { if (this.ws === ws) this._opened(); };
    ws.onmessage = (event) => { if (this.ws === ws) this._frame(event.data); };
    ws.onclose = () => { if (this.ws === ws) this._closed(); };
    ws.onerror = () => {}; // a close follows
  }

  _opened() {
    this.isOpen = true;
    // The backoff starts again only once a connection has lasted `stableMs`: a server that
    // accepts and drops at once is not hammered at the shortest delay.
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => { this.stableTimer = null; this.attempt = 0; }, this.stableMs);
    this.heard.clear();
    callSafely(this.onStatus, 'open');
    for (const [room, feed] of this.feeds) this._resume(room, feed.resumeRequest());
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this._settle(), this.settleMs);
    const queued = this.queue;
    this.queue = [];
    for (const obj of queued) this.send(obj);
  }

  // The second resume (the protocol's last paragraph): a publisher's fan-out may have missed this
  // connection for a moment after it joined (a lagging secondary index), and nothing reveals the
  // loss until the next message jumps. A room with no live message since the open resumes again.
  _settle() {
    this.settleTimer = null;
    if (!this.isOpen) return;
    for (const [room, feed] of this.feeds) {
      if (!this.heard.has(room)) this._resume(room, feed.resumeRequest());
    }
  }

  _closed() {
    this.ws = null;
    this.isOpen = false;
    clearTimeout(this.settleTimer);
    clearTimeout(this.stableTimer);
    this.settleTimer = this.stableTimer = null;
    this._clearAnswerTimers(); // every room resumes on the next open

    callSafely(this.onStatus, 'closed');
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (this.closed || this.reconnectTimer !== null) return;
    const ms = this.delay(this.attempt);
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this._connect(), ms);
  }

  _resume(room, position) {
    if (!this.isOpen || position === null) return;
    this.ws.send(JSON.stringify({ action: this.resumeAction, room, epoch: position.epoch, offset: position.offset }));
    // A resume whose answer never comes (lost, or refused with an error frame) would leave the
    // feed waiting on it: after `answerTimeoutMs` without a history page for the room, it is
    // asked again from where the feed is.
    clearTimeout(this.answerTimers.get(room));
    this.answerTimers.set(room, setTimeout(() => {
      this.answerTimers.delete(room);
      const feed = this.feeds.get(room);
      if (feed === undefined || !this.isOpen) return;
      feed.asked = null;
      this._resume(room, feed.resumeRequest());
    }, this.answerTimeoutMs));
  }

  _answered(room) {
    clearTimeout(this.answerTimers.get(room));
    this.answerTimers.delete(room);
  }

  _clearAnswerTimers() {
    for (const timer of this.answerTimers.values()) clearTimeout(timer);
    this.answerTimers.clear();
  }

  _frame(data) {
    const text = typeof data === 'string' ? data : String(data);
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      callSafely(this.onOther, text);
      return;
    }
    const kind = frame && typeof frame === 'object' ? frame.type : undefined;
    const feed = (kind === ENVELOPE_TYPE || kind === HISTORY_TYPE) ? this.feeds.get(frame.room) : undefined;
    if (feed === undefined) {
      callSafely(this.onOther, frame);
      return;
    }
    // A live message after the resume: no member-list lag hid this connection from the room.
    if (kind === ENVELOPE_TYPE) this.heard.add(frame.room);
    else this._answered(frame.room);
    const out = kind === ENVELOPE_TYPE ? feed.receive(frame) : feed.history(frame);
    if (out.reload) callSafely(this.onReload, frame.room, out.reload);
    for (const envelope of out.show) callSafely(this.onMessage, envelope);
    if (out.resume) this._resume(frame.room, out.resume);
  }
}
