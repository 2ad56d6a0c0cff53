//! [`JobKey`]: the HMAC-SHA256 key that signs fan-out jobs.

use crate::error::{Error, Result};
use crate::mac::MacKey;

/// The key of the HMAC-SHA256 that the [`FanoutPlanner`](super::FanoutPlanner) writes into
/// each job and the [`FanoutWorker`](super::FanoutWorker) checks, so that workers run only jobs
/// the planner wrote: anyone with `sqs:SendMessage` on the queue can write a message, but not
/// one signed with this key.
///
/// Give the planner and every worker the same key (`with_job_key`), e.g. from
/// `FANOUT_JOB_KEY` ([`from_env`](Self::from_env); make one with `openssl rand -hex 32` and
/// keep it in the functions' environment or a secret). A worker with a key refuses unsigned or
/// mis-signed jobs as poison (they go to the dead-letter queue); a worker without one runs any
/// job, and checks room membership instead (see
/// [`FanoutWorker::with_membership_check`](super::FanoutWorker::with_membership_check)).
/// `Debug` does not show the key.
#[derive(Clone)]
pub struct JobKey(MacKey);

impl std::fmt::Debug for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobKey(..)")
    }
}

impl JobKey {
    /// The fewest bytes a key may have: 32, HMAC-SHA256's output size.
    pub const MIN_LEN: usize = MacKey::MIN_LEN;

    /// A key of `bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when it has fewer than [`MIN_LEN`](Self::MIN_LEN) bytes.
    pub fn new(bytes: impl AsRef<[u8]>) -> Result<Self> {
        MacKey::new(bytes.as_ref(), "a fan-out job key").map(Self)
    }

    /// The key in [`FANOUT_JOB_KEY`](crate::env::FANOUT_JOB_KEY) (its bytes as written, e.g. 64
    /// hex digits), or `None` when it is unset.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when it is set but shorter than [`MIN_LEN`](Self::MIN_LEN) or not UTF-8.
    pub fn from_env() -> Result<Option<Self>> {
        crate::env::var(crate::env::FANOUT_JOB_KEY)?
            .map(|v| {
                Self::new(v.trim()).map_err(|_| {
                    Error::config(format!(
                        "{} must have at least {} bytes (e.g. `openssl rand -hex 32`)",
                        crate::env::FANOUT_JOB_KEY,
                        Self::MIN_LEN
                    ))
                })
            })
            .transpose()
    }

    pub(super) fn sign(&self, unsigned_body: &str) -> String {
        self.0
            .sign(unsigned_body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub(super) fn verify(&self, unsigned_body: &str, sig: &str) -> bool {
        decode_hex(sig).is_some_and(|bytes| self.0.verify(unsigned_body.as_bytes(), &bytes))
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}
