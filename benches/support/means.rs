//! Mean time per fan-out, by benchmark name, noted by the benches' `iter_custom` closures for
//! their closing summaries (criterion keeps its own statistics but does not hand them back).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

static MEANS: Mutex<BTreeMap<String, (Duration, u32)>> = Mutex::new(BTreeMap::new());

/// Adds `iters` runs that took `elapsed` in all to `name`.
pub(crate) fn note(name: &str, elapsed: Duration, iters: u64) {
    let mut means = MEANS.lock().unwrap();
    let entry = means.entry(name.to_owned()).or_default();
    entry.0 += elapsed;
    entry.1 += u32::try_from(iters).unwrap();
}

/// The mean time of one run of `name`, if it ran.
pub(crate) fn mean(name: &str) -> Option<Duration> {
    let means = MEANS.lock().unwrap();
    means.get(name).map(|(total, n)| *total / (*n).max(1))
}
