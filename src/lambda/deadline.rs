//! The invocation's deadline, for the work that must end before it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Context;

/// The time [`deadline`] keeps free before the invocation's own deadline: 250 ms, for the
/// function's answer. The broadcaster keeps its own
/// [`cleanup_reserve`](crate::broadcast::BroadcastConfig::cleanup_reserve) (500 ms) before that
/// for the Gone cleanup, so posting stops about 750 ms before the invocation's deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// Lambda's longest function timeout, 15 minutes: a real invocation's deadline is never
/// further than this from now, in either direction (a function is stopped at its deadline).
pub const MAX_INVOCATION: Duration = Duration::from_secs(900);

/// The instant by which this invocation's work must be done: [`Context::deadline`] (epoch
/// milliseconds) less [`DEADLINE_MARGIN`], as an [`Instant`]. Give it to
/// [`Broadcaster::with_deadline`](crate::broadcast::Broadcaster::with_deadline) (which
/// presence and the planner inherit) or `FanoutWorker::with_deadline`:
/// `broadcaster.with_deadline(lambda::deadline(&context))`.
///
/// `None` — no deadline, never "no time left" — when the context carries none
/// (`deadline == 0`, as in `Context::default()` in tests and in local runners that leave it
/// out), and when it carries one no invocation can have: more than [`MAX_INVOCATION`] (plus a
/// minute of clock skew) away from now, in the past or the future. `cargo lambda watch` 1.9.2,
/// for one, sends `600000` — a duration, which read as epoch milliseconds is 1970; taken at its
/// word it would stop every fan-out before its first post. Such a value is logged at WARN with
/// the runner's value (once per distinct value). A deadline that passed moments ago gives
/// `Instant::now()`.
///
/// ```
/// use stateless_ws::lambda::{deadline, Context};
/// assert!(deadline(&Context::default()).is_none());
/// let mut context = Context::default();
/// context.deadline = 600_000; // cargo lambda watch 1.9.2: a duration, not a time
/// assert!(deadline(&context).is_none());
/// ```
pub fn deadline(context: &Context) -> Option<Instant> {
    deadline_at(context.deadline, SystemTime::now())
}

/// Clock skew tolerated around [`MAX_INVOCATION`].
const SKEW: Duration = Duration::from_secs(60);

fn deadline_at(deadline_ms: u64, now: SystemTime) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let at = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let (distance, past) = match at.duration_since(now) {
        Ok(ahead) => (ahead, false),
        Err(e) => (e.duration(), true),
    };
    if distance > MAX_INVOCATION + SKEW {
        warn_impossible(deadline_ms, distance, past);
        return None;
    }
    let left = if past {
        Duration::ZERO
    } else {
        distance.saturating_sub(DEADLINE_MARGIN)
    };
    Some(Instant::now() + left)
}

/// The last impossible value warned about, so a runner that sends the same one to every
/// invocation is named once, not on every request.
static LAST_WARNED: AtomicU64 = AtomicU64::new(0);

fn warn_impossible(deadline_ms: u64, distance: Duration, past: bool) {
    if LAST_WARNED.swap(deadline_ms, Ordering::Relaxed) == deadline_ms {
        return;
    }
    let when = if past { "ago" } else { "from now" };
    tracing::warn!(
        context_deadline = deadline_ms,
        "the runner's Context.deadline ({deadline_ms}) is {}s {when}: no Lambda invocation has such a deadline (the longest is {}s), so this one runs with none. A local runner that sends a duration (cargo lambda watch sends 600000) is the usual cause; on AWS, check the clock",
        distance.as_secs(),
        MAX_INVOCATION.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: SystemTime) -> u64 {
        u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
    }

    #[test]
    fn deadline_zero_is_none_and_a_deadline_just_past_is_now() {
        let mut context = Context::default();
        assert_eq!(deadline(&context), None);
        let now = SystemTime::now();
        let d = deadline_at(ms(now - Duration::from_secs(2)), now).unwrap();
        assert!(d <= Instant::now());
        context.deadline = ms(SystemTime::now() + Duration::from_secs(10));
        let d = deadline(&context).unwrap();
        let left = d - Instant::now();
        let full = Duration::from_secs(10) - DEADLINE_MARGIN;
        assert!(
            left > full - Duration::from_secs(1) && left <= full,
            "{left:?}"
        );
    }

    /// cargo lambda watch 1.9.2 sends `600000`: before, that was 1970 — a deadline long past, so
    /// every fan-out stopped before its first post. Now: no deadline, and a WARN naming it.
    #[test]
    fn an_impossible_deadline_is_none_and_named_at_warn() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        let now = SystemTime::now();
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(deadline_at(600_000, now), None);
            assert_eq!(deadline_at(600_000, now), None);
            // 16 minutes ahead (> 15 min + skew): impossible; 14 minutes: real.
            assert_eq!(
                deadline_at(ms(now + Duration::from_secs(17 * 60)), now),
                None
            );
            assert!(deadline_at(ms(now + Duration::from_secs(14 * 60)), now).is_some());
            // Long past: impossible too.
            assert_eq!(deadline_at(ms(now - Duration::from_secs(3_600)), now), None);
        });
        let text = capture.text();
        assert_eq!(
            text.matches("Context.deadline (600000)").count(),
            1,
            "named once per value: {text}"
        );
        assert!(text.contains("WARN"), "{text}");
        assert_eq!(text.matches("WARN").count(), 3, "{text}");
    }

    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Self;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }
}
