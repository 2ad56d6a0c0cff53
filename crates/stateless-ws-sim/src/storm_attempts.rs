//! The reconnect storm's handshake attempts ([`crate::storm`]), scheduled by one task instead of
//! one task per client.
//!
//! A storm of a million clients against 500 new connections per second makes over a hundred
//! million refused handshakes; as a task per client each was a wake-up and a timer. Here every
//! pending attempt is an entry `(when, client)` in one binary heap, ordered by time and then by
//! a fixed scramble of the client number ([`tag`]: deterministic, and not in room order), and
//! each client's reconnect state — its `fastrand::Rng`, its attempt count, its first attempt —
//! lives in a vector indexed by client number. One task, [`Attempts::run`], waits for the
//! earliest entry, then takes every entry due in order: a handshake the new-connection quota
//! refuses is counted and the client put back at its retry time, with no task of its own; an
//! admitted one is handed to the storm, which spawns the client's `$connect` task. A
//! `$connect` that fails or is throttled puts the client back through [`Attempts::retry`],
//! which wakes the scheduler to look at the heap again (the new entry may be earlier than the
//! one it waits for).
//!
//! The draws are the ones a client's own loop made: the same seed per client, `delay(0)` after
//! the cut, then `handshake_rtt + delay(attempt)` after each failure, in the same sequence.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use stateless_ws::Result;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::bucket::TokenBucket;
use crate::storm::{Backoff, StormScenario};

/// The order of attempts due at the same instant: a bijection of the client number (an odd
/// multiplier), deterministic but not in client order. Client numbers make the rooms (10
/// consecutive clients share one), and in client order the members of a room admitted in the
/// same tick came in together and met each other in `$connect` (three times the 410s of the
/// per-client tasks at 100,000 clients).
fn tag(i: u32) -> u32 {
    i.wrapping_mul(0x9e37_79b1)
}

/// Each client's cut, from the start, in client order: a uniform draw within the window from
/// the scenario's cut seed (the same sequence every time it is called).
pub(crate) fn cut_times(s: &StormScenario) -> impl Iterator<Item = Duration> + '_ {
    let mut cuts = fastrand::Rng::with_seed(s.seed ^ 0xc075);
    (0..s.clients).map(move |_| s.window.mul_f64(cuts.f64()))
}

/// One client's reconnect state.
#[derive(Debug)]
struct Client {
    /// Its backoff draws.
    rng: fastrand::Rng,
    /// Attempts made so far, the one under way included (1 from the first attempt on).
    attempt: u32,
    /// When its first attempt was made (set when it is made).
    first: Instant,
}

#[derive(Debug)]
struct State {
    /// Pending attempts `(when, tag(client), client)`: earliest first, then by [`tag`].
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    clients: Vec<Client>,
}

/// Every client's pending handshake attempt and reconnect state.
#[derive(Debug)]
pub(crate) struct Attempts {
    state: Mutex<State>,
    /// Fired when an entry is pushed from outside the scheduler. It stores a permit, so a push
    /// between the scheduler's look at the heap and its wait is not lost.
    pushed: Notify,
    backoff: Backoff,
    handshake_rtt: Duration,
}

impl Attempts {
    /// The first attempt of each of `s.clients` clients, cut at `start` plus a uniform draw
    /// within `s.window` (drawn in client order from the scenario's cut seed), after `delay(0)`.
    ///
    /// # Errors
    ///
    /// When there are more clients than a `u32` numbers.
    pub(crate) fn new(s: &StormScenario, start: Instant) -> Result<Self> {
        let n = u32::try_from(s.clients).map_err(|_| stateless_ws::Error::Config {
            message: format!("{} clients: at most {} are simulated", s.clients, u32::MAX),
        })?;
        let mut heap = BinaryHeap::with_capacity(s.clients);
        let mut clients = Vec::with_capacity(s.clients);
        for (i, cut) in (0..n).zip(cut_times(s)) {
            let mut rng =
                fastrand::Rng::with_seed(s.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(i));
            heap.push(Reverse((
                start + cut + s.backoff.delay(0, &mut rng),
                tag(i),
                i,
            )));
            clients.push(Client {
                rng,
                attempt: 1,
                first: start,
            });
        }
        Ok(Self {
            state: Mutex::new(State { heap, clients }),
            pushed: Notify::new(),
            backoff: s.backoff,
            handshake_rtt: s.handshake_rtt,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When client `i`, whose attempt began at `at` failed, tries again: `handshake_rtt +
    /// delay(attempt)` later, as `resumable.js` does after a refused handshake.
    fn retry_at(&self, clients: &mut [Client], i: u32, at: Instant) -> Instant {
        let Some(client) = clients.get_mut(i as usize) else {
            return at + self.handshake_rtt;
        };
        let wait = self.handshake_rtt + self.backoff.delay(client.attempt, &mut client.rng);
        client.attempt = client.attempt.saturating_add(1);
        at + wait
    }

    /// Client `i`'s `$connect` failed or was throttled now: it backs off as for a refusal, and
    /// the scheduler is woken to see the new entry.
    pub(crate) fn retry(&self, i: u32) {
        let mut guard = self.state();
        let state = &mut *guard;
        let at = self.retry_at(&mut state.clients, i, Instant::now());
        state.heap.push(Reverse((at, tag(i), i)));
        drop(guard);
        self.pushed.notify_one();
    }

    /// Client `i`'s first attempt and the attempts it made (for a connected client: the
    /// handshakes it tried, the successful one included).
    pub(crate) fn made(&self, i: u32) -> (Instant, u32) {
        self.state()
            .clients
            .get(i as usize)
            .map_or((Instant::now(), 0), |c| (c.first, c.attempt))
    }

    /// Tries every attempt due by `now` against `quota`, in order: admitted clients are pushed
    /// to `admitted` (their entry leaves the heap), refused ones are put back at their retry
    /// time. Returns the refusals.
    fn take_due(&self, now: Instant, quota: &mut TokenBucket, admitted: &mut Vec<u32>) -> u64 {
        let mut refused = 0;
        let mut guard = self.state();
        let state = &mut *guard;
        while let Some(mut top) = state.heap.peek_mut() {
            let Reverse((due, _, i)) = *top;
            if due > now {
                break;
            }
            if let Some(client) = state.clients.get_mut(i as usize)
                && client.attempt == 1
            {
                client.first = now;
            }
            if quota.try_take(1) {
                admitted.push(i);
                PeekMut::pop(top);
            } else {
                refused += 1;
                // From `now`, the tick this pass runs at, not the entry's own time: the
                // client's task slept `wait` from when it woke, which on the paused clock is its
                // deadline rounded up to Tokio's 1 ms timer tick, so its retries fell due on
                // whole ticks. With whole-millisecond waits both choices give the same tick,
                // but not the same order within it: from the entry's time a client kept its
                // first attempt's sub-millisecond offset, a fixed priority over everyone else's
                // retries, and a 100,000-client storm made 1.1 % more refused handshakes than
                // the per-client tasks; from `now` the first attempts (between ticks) go before
                // the retries (on them), and the refusals agree within 0.1 %. `now` is also the
                // task's own arithmetic when `handshake_rtt` is not whole milliseconds.
                // Replacing the top in place (one sift down when `top` drops) instead of a pop
                // and a push: the same heap order, half the work.
                *top = Reverse((self.retry_at(&mut state.clients, i, now), tag(i), i));
            }
        }
        refused
    }

    /// When the earliest pending attempt is due.
    fn next_due(&self) -> Option<Instant> {
        self.state().heap.peek().map(|&Reverse((due, _, _))| due)
    }

    /// The scheduler: forever, waits for the earliest attempt (or for [`Attempts::retry`] to
    /// push an earlier one), tries every attempt then due against `quota`, and reports each
    /// pass's admitted clients and refusal count to `pass`. Aborted by its owner.
    pub(crate) async fn run(
        &self,
        quota: &Mutex<TokenBucket>,
        mut pass: impl FnMut(&[u32], u64) + Send,
    ) {
        let mut admitted = Vec::new();
        loop {
            match self.next_due() {
                None => self.pushed.notified().await,
                Some(due) if due > Instant::now() => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        () = self.pushed.notified() => {}
                    }
                }
                Some(_) => {
                    let refused = {
                        let mut quota = quota.lock().unwrap_or_else(PoisonError::into_inner);
                        self.take_due(Instant::now(), &mut quota, &mut admitted)
                    };
                    pass(&admitted, refused);
                    admitted.clear();
                    // Let the admitted clients' tasks (and every other task at this instant)
                    // run before the next look at the heap.
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn scenario(clients: usize) -> StormScenario {
        StormScenario {
            clients,
            window: Duration::from_secs(1),
            ..StormScenario::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_attempt_comes_back_after_the_rtt_and_its_backoff() {
        // A round trip longer than the cuts and `delay(0)`: no retry falls due in the first pass.
        let s = StormScenario {
            handshake_rtt: Duration::from_secs(2),
            ..scenario(3)
        };
        let start = Instant::now();
        let attempts = Attempts::new(&s, start).unwrap();
        // An empty bucket that never refills: every attempt is refused.
        let mut quota = TokenBucket::new(0, 1);
        assert!(quota.try_take(1));
        let mut admitted = Vec::new();
        let late = start + Duration::from_millis(1_500);
        assert_eq!(attempts.take_due(late, &mut quota, &mut admitted), 3);
        assert!(admitted.is_empty());
        // Each is back at least `handshake_rtt` after its first attempt, attempt 2 under way.
        let next = attempts.next_due().unwrap();
        assert!(next >= start + s.handshake_rtt);
        for i in 0..3 {
            let (first, made) = attempts.made(i);
            assert_eq!((first, made), (late, 2));
        }
        // The same draws as a client's own rng: delay(0) then delay(1).
        let mut rng = fastrand::Rng::with_seed(s.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut cuts = fastrand::Rng::with_seed(s.seed ^ 0xc075);
        let first = start + s.window.mul_f64(cuts.f64()) + s.backoff.delay(0, &mut rng);
        assert!(first <= late);
        let retry = late + s.handshake_rtt + s.backoff.delay(1, &mut rng);
        let state = attempts.state();
        assert!(state.heap.iter().any(|&Reverse(e)| e == (retry, tag(0), 0)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_wakes_the_scheduler_for_an_earlier_entry() {
        let s = scenario(1);
        let attempts = Arc::new(Attempts::new(&s, Instant::now()).unwrap());
        let quota = Arc::new(Mutex::new(TokenBucket::new(1_000, 1_000)));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let scheduler = {
            let (attempts, quota) = (Arc::clone(&attempts), Arc::clone(&quota));
            tokio::spawn(async move {
                attempts
                    .run(&quota, |admitted, _| {
                        for &i in admitted {
                            let _ = tx.send((i, Instant::now()));
                        }
                    })
                    .await;
            })
        };
        let (i, at) = rx.recv().await.unwrap();
        assert_eq!(i, 0);
        // Its $connect failed: back into the heap, and admitted again after the backoff.
        attempts.retry(0);
        let (i, again) = rx.recv().await.unwrap();
        assert_eq!(i, 0);
        assert!(again >= at + s.handshake_rtt, "{again:?} vs {at:?}");
        assert!(again <= at + s.handshake_rtt + s.backoff.initial * 2 + Duration::from_millis(1));
        assert_eq!(attempts.made(0), (at, 2));
        scheduler.abort();
    }
}
