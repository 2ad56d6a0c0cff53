//! The job: one shard of a queued fan-out, as the JSON body of one queue message.
//!
//! ```json
//! {"v":1,"fanoutId":"5f0c…","shard":3,"generation":0,"room":"general","enqueuedAt":1764150000000,
//!  "targetCount":2,"payload":{"text":"{\"type\":\"message\"}"},
//!  "targets":[{"connectionId":"L0SM9cOFvHcCIhw="},
//!             {"connectionId":"L0SNBd8rvHcCFvw=","endpoint":"https://abc.execute-api.eu-west-1.amazonaws.com/prod"}]}
//! ```
//!
//! - `v` is the format's version (readers refuse a newer one rather than guess);
//! - `fanoutId`, `shard`, `room` / `user`, `enqueuedAt` and `targetCount` are there for a person
//!   reading the dead-letter queue: which fan-out, which part of it, to whom, since when. Nothing
//!   else from the request goes in — no tokens, no authorizer context;
//! - `generation` counts remainders: 0 for a job the planner made, n + 1 for the targets a
//!   generation-n job could not deliver;
//! - `payload` is `{"text": …}` or `{"base64": …}`, whichever is shorter once in JSON (text full
//!   of quotes and control characters grows when escaped; base64 always grows by a third);
//! - `targets` are the connections, each with its management endpoint when the record names one.
//!
//! Sizes are exact: the packer knows the byte length of the body it will write before adding a
//! target, so a job never exceeds the queue's message size.
//!
//! Bodies are SQS-safe: SQS refuses a message containing a character outside `#x9 | #xA | #xD |
//! #x20–#xD7FF | #xE000–#xFFFD | #x10000–#x10FFFF`. serde_json escapes control characters but
//! writes the noncharacters U+FFFE and U+FFFF raw, so the body writer escapes them as `\ufffe`
//! / `\uffff` (valid JSON, read back as the same character): a room or payload containing them
//! travels like any other.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

pub use super::key::JobKey;
use crate::broadcast::{Payload, Target};
use crate::error::{Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};

/// The version of the job format this crate writes and reads.
pub(crate) const JOB_VERSION: u32 = 1;

/// What a fan-out was for, carried by each of its jobs so that a job in the dead-letter queue
/// can be understood on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobContext {
    /// The room broadcast to, for a room fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomId>,
    /// The user notified, for a user fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
}

impl JobContext {
    /// The context of a room broadcast.
    pub fn room(room: RoomId) -> Self {
        Self {
            room: Some(room),
            user: None,
        }
    }

    /// The context of a user notification.
    pub fn user(user: UserId) -> Self {
        Self {
            room: None,
            user: Some(user),
        }
    }
}

/// The payload inside a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum JobPayload {
    Text(String),
    Base64(String),
}

impl JobPayload {
    /// The shorter encoding of `payload` once written as JSON.
    fn encode(payload: &Payload) -> Self {
        let escaped = json_len(payload.as_str());
        let base64_len = payload.len().div_ceil(3) * 4 + 2;
        if base64_len < escaped {
            JobPayload::Base64(BASE64.encode(payload.as_bytes()))
        } else {
            JobPayload::Text(payload.as_str().to_owned())
        }
    }

    fn decode(&self) -> Result<Payload> {
        match self {
            JobPayload::Text(text) => Payload::text(text.as_str()),
            JobPayload::Base64(data) => {
                let bytes = BASE64.decode(data).map_err(|e| {
                    Error::invalid_body(
                        "fan-out job: field `payload.base64`: not valid base64",
                        Some(Box::new(e)),
                    )
                })?;
                Payload::bytes(bytes)
            }
        }
    }
}

/// One target in a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobTarget {
    connection_id: ConnectionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
}

impl From<&Target> for JobTarget {
    fn from(target: &Target) -> Self {
        Self {
            connection_id: target.connection_id.clone(),
            endpoint: target.endpoint.as_deref().map(str::to_owned),
        }
    }
}

impl From<JobTarget> for Target {
    fn from(target: JobTarget) -> Self {
        Self {
            connection_id: target.connection_id,
            endpoint: target.endpoint.map(Arc::from),
        }
    }
}

/// One shard of a queued fan-out: a payload and at most a job's worth of targets.
///
/// Made by the [`FanoutPlanner`](super::FanoutPlanner) and read back by the
/// [`FanoutWorker`](super::FanoutWorker) with [`Job::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    v: u32,
    fanout_id: String,
    shard: u32,
    generation: u32,
    #[serde(flatten)]
    context: JobContext,
    enqueued_at: u64,
    target_count: usize,
    payload: JobPayload,
    targets: Vec<JobTarget>,
    /// HMAC-SHA256 (hex) of the body written without this field, when the planner has a
    /// [`JobKey`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
}

/// The length of `,"sig":"…"`: 64 hex digits of HMAC-SHA256.
const SIG_LEN: usize = 73;

impl Job {
    /// Reads a job from a message body.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] naming the field (its JSON path, e.g. `targets[3].connectionId`)
    /// when the body is not a job of this version, its `targetCount` disagrees with its
    /// targets, or its payload does not decode or exceeds 128 KB.
    pub fn parse(body: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(body);
        let job: Job = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            Error::invalid_body(
                format!("fan-out job: field `{field}`: {}", strip_position(&inner)),
                Some(Box::new(inner)),
            )
        })?;
        if job.v != JOB_VERSION {
            return Err(Error::invalid_body(
                format!(
                    "fan-out job: field `v`: version {} is not {JOB_VERSION}, the one this build reads",
                    job.v
                ),
                None,
            ));
        }
        if job.target_count != job.targets.len() {
            return Err(Error::invalid_body(
                format!(
                    "fan-out job: field `targetCount`: says {} but `targets` has {}",
                    job.target_count,
                    job.targets.len()
                ),
                None,
            ));
        }
        job.payload.decode()?;
        Ok(job)
    }

    /// The job as a message body: JSON, with U+FFFE and U+FFFF escaped as `\ufffe` / `\uffff`
    /// (SQS refuses them raw and serde_json writes them raw; read back, they are the same
    /// characters). Unsigned (see [`to_signed_body`](Self::to_signed_body)).
    pub fn to_body(&self) -> String {
        if self.sig.is_some() {
            let unsigned = Self {
                sig: None,
                ..self.clone()
            };
            return to_sqs_json(&unsigned);
        }
        to_sqs_json(self)
    }

    /// The job as a message body signed with `key` (HMAC-SHA256 of the unsigned body, in a
    /// last field `sig`), or unsigned when `key` is `None`.
    pub fn to_signed_body(&self, key: Option<&JobKey>) -> String {
        let unsigned = self.to_body();
        match key {
            None => unsigned,
            Some(key) => {
                let sig = key.sign(&unsigned);
                to_sqs_json(&Self {
                    sig: Some(sig),
                    ..self.clone()
                })
            }
        }
    }

    /// Checks the job's signature with `key`: the HMAC-SHA256 of the job re-written unsigned
    /// (what the worker will act on, whatever the body's spacing or field order), compared in
    /// constant time.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] naming field `sig` when it is missing or does not match.
    pub fn verify(&self, key: &JobKey) -> Result<()> {
        let Some(sig) = self.sig.as_deref() else {
            return Err(Error::invalid_body(
                "fan-out job: field `sig`: missing, and this worker runs only signed jobs",
                None,
            ));
        };
        if key.verify(&self.to_body(), sig) {
            Ok(())
        } else {
            Err(Error::invalid_body(
                "fan-out job: field `sig`: does not match the job (not written by a planner with this key, or altered)",
                None,
            ))
        }
    }

    /// The fan-out this job belongs to.
    pub fn fanout_id(&self) -> &str {
        &self.fanout_id
    }

    /// The job's index within its fan-out (remainders keep their job's index).
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// 0 for a job the planner made; n + 1 for the remainder of a generation-n job.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// What the fan-out was for (room or user).
    pub fn context(&self) -> &JobContext {
        &self.context
    }

    /// When the fan-out was enqueued, in milliseconds since the Unix epoch.
    pub fn enqueued_at_ms(&self) -> u64 {
        self.enqueued_at
    }

    /// The number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the job has no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The targets.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.iter().cloned().map(Target::from).collect()
    }

    /// The payload.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBody`] / [`Error::PayloadTooLarge`] as [`parse`](Self::parse) checks.
    pub fn payload(&self) -> Result<Payload> {
        self.payload.decode()
    }

    /// The next generation of this job for `targets` (a subset of its own): same fan-out, shard,
    /// context and payload.
    pub fn remainder(&self, targets: &[Target]) -> Self {
        Self {
            generation: self.generation.saturating_add(1),
            target_count: targets.len(),
            targets: targets.iter().map(JobTarget::from).collect(),
            sig: None,
            ..self.clone()
        }
    }
}

/// serde_json appends " at line 1 column 57"; the field path says more.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The length of `s` as a JSON string literal (as [`to_sqs_json`] writes it), quotes included.
fn json_len(s: &str) -> usize {
    to_sqs_json(s).len()
}

/// `value` as JSON that SQS accepts: serde_json's output with the noncharacters U+FFFE and
/// U+FFFF — the only characters it writes raw that SQS refuses (control characters it escapes;
/// surrogates cannot be in a `str`) — escaped. They can only occur inside string literals (the
/// rest of JSON is ASCII), where `\ufffe` means the same character.
pub(crate) fn to_sqs_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Strings, numbers and validated ids: serialization cannot fail.
    let json = serde_json::to_string(value).unwrap_or_default();
    if !json.contains(['\u{FFFE}', '\u{FFFF}']) {
        return json;
    }
    json.replace('\u{FFFE}', "\\ufffe")
        .replace('\u{FFFF}', "\\uffff")
}

/// Whether SQS accepts `body`: every character is `#x9 | #xA | #xD | #x20–#xD7FF |
/// #xE000–#xFFFD | #x10000–#x10FFFF`. Returns the first character it refuses.
pub(crate) fn sqs_refused_char(body: &str) -> Option<char> {
    body.chars().find(|&c| {
        !matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    })
}

/// The JSON of one target with a 128-byte connection id and a 256-byte endpoint, rounded up.
const ONE_TARGET_BOUND: usize = 450;

/// Packs targets into jobs of at most `max_targets` targets and `max_bytes` bytes of body.
///
/// The size of a job's body is known before each target is added (its header measured once per
/// job, each target's JSON measured once), so the packer never writes a body over the limit.
#[derive(Debug)]
pub(crate) struct JobPacker {
    header: Job,
    key: Option<JobKey>,
    max_targets: usize,
    max_bytes: usize,
    next_shard: u32,
    /// Body size with no targets, `targetCount` written as `max_targets` (never fewer digits).
    empty_len: usize,
    targets: Vec<JobTarget>,
    len: usize,
}

impl JobPacker {
    /// A packer for fan-out `fanout_id` of `payload`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when not even a job of one target fits in `max_bytes` (a queue whose
    /// `MaximumMessageSize` is smaller than the payload), or `max_targets` is 0.
    pub(crate) fn new(
        fanout_id: impl Into<String>,
        context: JobContext,
        payload: &Payload,
        max_targets: usize,
        max_bytes: usize,
        enqueued_at_ms: u64,
        key: Option<JobKey>,
    ) -> Result<Self> {
        if max_targets == 0 {
            return Err(Error::config("targets per job must be at least 1"));
        }
        let header = Job {
            v: JOB_VERSION,
            fanout_id: fanout_id.into(),
            shard: 0,
            generation: 0,
            context,
            enqueued_at: enqueued_at_ms,
            target_count: max_targets,
            payload: JobPayload::encode(payload),
            targets: Vec::new(),
            sig: None,
        };
        let mut packer = Self {
            header,
            key,
            max_targets,
            max_bytes,
            next_shard: 0,
            empty_len: 0,
            targets: Vec::new(),
            len: 0,
        };
        packer.start_job();
        // A job of one target — the longest connection id, an endpoint of a custom domain and
        // stage — must fit, or no job can be written.
        let one = packer.empty_len + ONE_TARGET_BOUND;
        if one > max_bytes {
            return Err(Error::config(format!(
                "a fan-out job of this {}-byte payload needs up to {one} bytes, more than the queue's \
                 maximum message size of {max_bytes} bytes; raise the queue's MaximumMessageSize \
                 (up to 1 MiB) and the configured limit",
                payload.len()
            )));
        }
        Ok(packer)
    }

    fn start_job(&mut self) {
        self.header.shard = self.next_shard;
        self.header.target_count = self.max_targets;
        self.empty_len = self.header.to_body().len() + if self.key.is_some() { SIG_LEN } else { 0 };
        self.len = self.empty_len;
        self.targets.clear();
    }

    /// Adds `target`; returns the body of the job it filled, if adding it closed one (the target
    /// then starts the next job).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when this one target does not fit in an empty job (an endpoint longer
    /// than any API Gateway endpoint).
    pub(crate) fn push(&mut self, target: &Target) -> Result<Option<(String, usize)>> {
        let target = JobTarget::from(target);
        let size = to_sqs_json(&target).len();
        let comma = usize::from(!self.targets.is_empty());
        let mut closed = None;
        if self.targets.len() >= self.max_targets
            || self.len.saturating_add(comma).saturating_add(size) > self.max_bytes
        {
            closed = self.finish();
        }
        let comma = usize::from(!self.targets.is_empty());
        if self.len.saturating_add(comma).saturating_add(size) > self.max_bytes {
            return Err(Error::config(format!(
                "target {} ({size} bytes of JSON) does not fit in a job of at most {} bytes",
                target.connection_id, self.max_bytes
            )));
        }
        self.len += comma + size;
        self.targets.push(target);
        Ok(closed)
    }

    /// The body of the job being filled and its target count, if it has targets; the next job
    /// gets the next shard index.
    pub(crate) fn finish(&mut self) -> Option<(String, usize)> {
        if self.targets.is_empty() {
            return None;
        }
        let mut job = self.header.clone();
        job.target_count = self.targets.len();
        job.targets = std::mem::take(&mut self.targets);
        let count = job.targets.len();
        let body = job.to_signed_body(self.key.as_ref());
        debug_assert!(body.len() <= self.len, "{} > {}", body.len(), self.len);
        self.next_shard = self.next_shard.saturating_add(1);
        self.start_job();
        Some((body, count))
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
