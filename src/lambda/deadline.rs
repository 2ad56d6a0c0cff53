//! The invocation's deadline, for the work that must end before it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Context;

/// The time [`deadline`] keeps free before the invocation's own deadline: 250 ms, for the
/// function's answer. The broadcaster keeps its own
/// [`cleanup_reserve`](crate::broadcast::BroadcastConfig::cleanup_reserve) (500 ms) before that
/// for the Gone cleanup, so posting stops about 750 ms before the invocation's deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// The instant by which this invocation's work must be done: [`Context::deadline`] (epoch
/// milliseconds) less [`DEADLINE_MARGIN`], as an [`Instant`]. Give it to
/// [`Broadcaster::with_deadline`](crate::broadcast::Broadcaster::with_deadline) (which
/// presence and the planner inherit) or `FanoutWorker::with_deadline`:
/// `broadcaster.with_deadline(lambda::deadline(&context))`.
///
/// `None` when the context carries none: `deadline == 0`, as in `Context::default()` in tests
/// and in local runners that leave it out. That means "no deadline", never "no time left". A
/// deadline already in the past gives `Instant::now()`.
///
/// ```
/// use stateless_ws::lambda::{deadline, Context};
/// assert!(deadline(&Context::default()).is_none());
/// ```
pub fn deadline(context: &Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let at = UNIX_EPOCH + Duration::from_millis(context.deadline);
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    Some(Instant::now() + left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_zero_is_none_and_a_past_deadline_is_now() {
        let mut context = Context::default();
        assert_eq!(deadline(&context), None);
        context.deadline = 1; // 1970
        let d = deadline(&context).unwrap();
        assert!(d <= Instant::now());
        let in_10s = SystemTime::now() + Duration::from_secs(10);
        context.deadline =
            u64::try_from(in_10s.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        let d = deadline(&context).unwrap();
        let left = d - Instant::now();
        let full = Duration::from_secs(10) - DEADLINE_MARGIN;
        assert!(
            left > full - Duration::from_secs(1) && left <= full,
            "{left:?}"
        );
    }
}
