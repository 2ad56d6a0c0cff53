//! The chaos test's parts that do no I/O: the seeded PRNG and the client's feed (the history
//! protocol, as `resumable.js`'s `RoomFeed` applies it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::MESSAGES;
// ---------------------------------------------------------------------------------------------
// The seeded chaos.

/// SplitMix64: a seeded, reproducible sequence (no `rand` dependency for a test).
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// `CHAOS_SEED` (decimal or 0x-hex) when set, else a new seed; printed either way.
pub(super) fn seed(test: &str) -> u64 {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        })
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            // Truncation intended: any 64 bits of the clock make a seed.
            #[allow(clippy::cast_possible_truncation)]
            let seed = nanos as u64 ^ u64::from(std::process::id());
            seed
        });
    say(format_args!(
        "{test}: chaos seed {seed} (replay the cuts with CHAOS_SEED={seed})"
    ));
    seed
}

/// Straight to stderr: libtest does not capture direct writes to the handle, so the figures show
/// in a plain `cargo test`.
pub(super) fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

// ---------------------------------------------------------------------------------------------
// The client: the protocol of `stateless_ws::history`, as `resumable.js`'s RoomFeed does it.

/// A resume to send: (epoch, offset).
pub(super) type Ask = (Option<String>, u64);

/// What a client received, to compare with what it showed.
#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    /// Connections opened.
    pub(super) connections: u64,
    /// Cuts with a close frame, and by dropping the TCP connection.
    pub(super) polite: u64,
    pub(super) abrupt: u64,
    /// `room.message` frames received (live).
    pub(super) live: u64,
    /// Distinct offsets received live, over all the client's connections.
    pub(super) live_offsets: BTreeSet<u64>,
    /// Offsets received live twice on one connection: one fan-out posted twice (a redelivered
    /// job). The in-line path never does that.
    pub(super) live_repeats: u64,
    /// Envelopes received in `room.history` pages.
    pub(super) from_history: u64,
    /// Envelopes dropped as duplicates (offset ≤ last, or an id shown), live or from history.
    pub(super) dropped: u64,
    /// Resumes sent.
    pub(super) resumes: u64,
    /// Pages that said the history was lost (`recovered: false` to a client that had some).
    pub(super) reloads: u64,
}

#[derive(Debug, Default)]
pub(super) struct Feed {
    pub(super) epoch: Option<String>,
    pub(super) last: u64,
    pub(super) seen_ids: HashSet<String>,
    pub(super) held: BTreeMap<u64, Value>,
    /// The position last asked for and not answered yet: one resume per gap.
    pub(super) asked: Option<Ask>,
    pub(super) fruitless: u32,
    /// What the client showed, in order.
    pub(super) shown: Vec<Value>,
    pub(super) online: bool,
    /// Offsets received live on the current connection.
    pub(super) this_connection: HashSet<u64>,
    pub(super) stats: Stats,
}

impl Feed {
    pub(super) fn position(&self) -> Ask {
        (self.epoch.clone(), self.last)
    }

    pub(super) fn resume_request(&mut self) -> Ask {
        self.asked = Some(self.position());
        self.stats.resumes += 1;
        self.position()
    }

    pub(super) fn ask(&mut self) -> Option<Ask> {
        let here = self.position();
        if self.asked.as_ref() == Some(&here) {
            return None;
        }
        Some(self.resume_request())
    }

    /// A live `room.message`.
    pub(super) fn receive(&mut self, envelope: Value) -> Option<Ask> {
        let offset = envelope["offset"].as_u64().filter(|o| *o > 0)?;
        self.stats.live += 1;
        self.stats.live_offsets.insert(offset);
        if !self.this_connection.insert(offset) {
            self.stats.live_repeats += 1;
        }
        let epoch = envelope["epoch"].as_str().map(str::to_owned);
        match &self.epoch {
            None => self.epoch = epoch,
            // The room changed epoch: the resume's answer says from where.
            Some(known) if Some(known) != epoch.as_ref() => return self.ask(),
            Some(_) => {}
        }
        if offset <= self.last {
            self.stats.dropped += 1;
            return None;
        }
        if offset == self.last + 1 {
            self.accept(envelope);
            self.drain();
            return None;
        }
        self.held.insert(offset, envelope);
        self.ask()
    }

    /// A `room.history` page: the answer to a resume.
    pub(super) fn history(&mut self, page: &Value) -> Option<Ask> {
        let messages: Vec<Value> = page["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter(|e| e["offset"].as_u64().is_some_and(|o| o > 0))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let epoch = page["epoch"].as_str().map(str::to_owned);
        let head = page["head"].as_u64().unwrap_or(0);
        self.asked = None;
        let start = messages
            .first()
            .and_then(|m| m["offset"].as_u64())
            .map_or(head, |o| o - 1);
        let continues = epoch.is_some() && epoch == self.epoch && start <= self.last;
        let lost = page["recovered"] == json!(false);
        if lost && epoch.is_none() && messages.is_empty() && self.epoch.is_some() {
            return None;
        }
        if lost && !continues {
            if self.epoch.is_some() || self.last > 0 {
                self.stats.reloads += 1;
            }
            self.epoch.clone_from(&epoch);
            self.last = start;
            self.seen_ids.clear();
            self.held.retain(|offset, held| {
                held["epoch"].as_str() == epoch.as_deref() && *offset > start
            });
        } else if self.epoch.is_none() {
            self.epoch = epoch;
        } else if epoch != self.epoch {
            return None;
        }
        let before = self.last;
        for envelope in messages {
            self.stats.from_history += 1;
            if envelope["epoch"].as_str() != self.epoch.as_deref() {
                continue;
            }
            let offset = envelope["offset"].as_u64().unwrap_or(0);
            if offset <= self.last {
                self.stats.dropped += 1;
            } else if offset == self.last + 1 {
                self.accept(envelope);
                self.drain();
            } else {
                self.held.insert(offset, envelope);
            }
        }
        if self.last > before {
            self.fruitless = 0;
        }
        if page["more"] == json!(true) {
            return Some(self.resume_request());
        }
        let first_held = *self.held.keys().next()?;
        if self.last > before || (head < first_held && self.fruitless < 3) {
            if self.last == before {
                self.fruitless += 1;
            }
            return Some(self.resume_request());
        }
        None
    }

    pub(super) fn accept(&mut self, envelope: Value) {
        self.last = envelope["offset"].as_u64().unwrap_or(self.last);
        if let Some(id) = envelope["id"].as_str()
            && !self.seen_ids.insert(id.to_owned())
        {
            self.stats.dropped += 1;
            return;
        }
        self.shown.push(envelope);
    }

    pub(super) fn drain(&mut self) {
        while let Some(next) = self.held.remove(&(self.last + 1)) {
            self.accept(next);
        }
        let last = self.last;
        let before = self.held.len();
        self.held.retain(|offset, _| *offset > last);
        self.stats.dropped += (before - self.held.len()) as u64;
    }

    pub(super) fn caught_up(&self) -> bool {
        self.online && self.last == MESSAGES && self.held.is_empty()
    }
}

pub(super) fn lock(feed: &Mutex<Feed>) -> MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(PoisonError::into_inner)
}
