//! The built-in rules without a secret: [`PublicRooms`], [`UserRooms`], [`ClaimRooms`], and the
//! combinator [`AnyOf`].

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{Decision, Refusal, RoomPolicy, RoomRequest};
use crate::error::{Error, Result};
use crate::ids::{RoomId, UserId};

/// Whether `name` matches the glob `pattern`, where `*` stands for any run of characters (none
/// included) and every other character for itself.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen and the name position it was tried at: backtrack there on a mismatch.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Open rooms, by name pattern: anyone — signed in or not — may join a room that matches one
/// of the patterns and none of the exceptions. `*` in a pattern stands for any run of
/// characters: `*` is every room, `lobby-*` every room starting with `lobby-`.
///
/// Abstains on any other room.
///
/// ```
/// use stateless_ws::policy::PublicRooms;
/// let public = PublicRooms::new(["*"]).except(["private-*", "user-*"]);
/// assert!(public.matches("general"));
/// assert!(!public.matches("private-x"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PublicRooms {
    patterns: Vec<String>,
    except: Vec<String>,
}

impl PublicRooms {
    /// The rooms matching any of `patterns`.
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
            except: Vec::new(),
        }
    }

    /// Every room (the pattern `*`), before [`except`](Self::except).
    pub fn all() -> Self {
        Self::new(["*"])
    }

    /// Leaves out the rooms matching any of `patterns`.
    #[must_use]
    pub fn except<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.except.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// Whether `room` is public under these patterns.
    pub fn matches(&self, room: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, room))
            && !self.except.iter().any(|p| glob_match(p, room))
    }
}

#[async_trait]
impl RoomPolicy for PublicRooms {
    async fn decide(&self, request: &RoomRequest<'_>) -> Result<Decision> {
        Ok(if self.matches(request.room.as_str()) {
            Decision::Allow
        } else {
            Decision::Abstain
        })
    }
}

/// Rooms that belong to one user, named from a template with `{id}` in it: with `user-{id}`,
/// the room `user-alice` admits only the user `alice` (and refuses everyone else, anonymous
/// connections included). A room that does not fit the template is not this rule's business:
/// it abstains.
///
/// ```
/// use stateless_ws::policy::UserRooms;
/// use stateless_ws::UserId;
/// let rooms = UserRooms::new("user-{id}")?;
/// assert_eq!(rooms.room_for(&UserId::new("alice")?)?.as_str(), "user-alice");
/// assert_eq!(rooms.pattern(), "user-*");
/// # Ok::<(), stateless_ws::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct UserRooms {
    prefix: String,
    suffix: String,
}

impl UserRooms {
    /// The placeholder in a template.
    pub const PLACEHOLDER: &'static str = "{id}";

    /// Rooms named by `template`, which holds [`PLACEHOLDER`](Self::PLACEHOLDER) once.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `{id}` is missing or appears more than once.
    pub fn new(template: &str) -> Result<Self> {
        let mut parts = template.split(Self::PLACEHOLDER);
        match (parts.next(), parts.next(), parts.next()) {
            (Some(prefix), Some(suffix), None) => Ok(Self {
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
            }),
            _ => Err(Error::config(format!(
                "user room template {template:?} must contain `{}` exactly once",
                Self::PLACEHOLDER
            ))),
        }
    }

    /// The room of `user`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] when the name is not a valid room (too long, or `#` in the user id).
    pub fn room_for(&self, user: &UserId) -> Result<RoomId> {
        RoomId::new(format!("{}{}{}", self.prefix, user, self.suffix))
    }

    /// The template as a [`PublicRooms`] pattern (`{id}` replaced by `*`), to leave these rooms
    /// out of the public ones.
    pub fn pattern(&self) -> String {
        format!("{}*{}", self.prefix, self.suffix)
    }

    /// The user id in `room`'s name, when it fits the template.
    fn owner<'r>(&self, room: &'r str) -> Option<&'r str> {
        room.strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())
            .filter(|id| !id.is_empty())
    }
}

#[async_trait]
impl RoomPolicy for UserRooms {
    async fn decide(&self, request: &RoomRequest<'_>) -> Result<Decision> {
        let Some(owner) = self.owner(request.room.as_str()) else {
            return Ok(Decision::Abstain);
        };
        Ok(match request.user {
            Some(user) if user.as_str() == owner => Decision::Allow,
            Some(_) => Decision::Refuse(Refusal::OtherUsersRoom {
                room: request.room.clone(),
            }),
            None => Decision::Refuse(Refusal::Anonymous {
                room: request.room.clone(),
            }),
        })
    }
}

/// The rooms listed in a claim of the authorizer context, e.g. `rooms` set by a Lambda
/// authorizer from the user's group memberships. API Gateway passes context values as strings,
/// so the claim may be a JSON array in a string (`["ops","dev"]`), or names separated by commas
/// and/or whitespace (`ops, dev`); a real JSON array (a test's context) is read too. Names match
/// exactly (no patterns). Abstains on a room that is not listed.
#[derive(Debug, Clone)]
pub struct ClaimRooms {
    claim: String,
}

impl ClaimRooms {
    /// The rooms in the authorizer context key `claim`.
    pub fn new(claim: impl Into<String>) -> Self {
        Self {
            claim: claim.into(),
        }
    }

    /// Whether the claim's value lists `room`.
    fn lists(value: &Value, room: &str) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|v| v.as_str() == Some(room)),
            Value::String(s) if s.trim_start().starts_with('[') => {
                serde_json::from_str::<Vec<String>>(s).is_ok_and(|v| v.iter().any(|r| r == room))
            }
            Value::String(s) => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .any(|r| r == room),
            _ => false,
        }
    }
}

#[async_trait]
impl RoomPolicy for ClaimRooms {
    async fn decide(&self, request: &RoomRequest<'_>) -> Result<Decision> {
        let listed = request
            .authorizer
            .and_then(|a| a.get(&self.claim))
            .is_some_and(|v| Self::lists(v, request.room.as_str()));
        Ok(if listed {
            Decision::Allow
        } else {
            Decision::Abstain
        })
    }
}

/// Admits a room when any of its rules allows it. Otherwise it refuses with the first refusal
/// of its rules, in order (so put the rule with the most useful reason first), or abstains when
/// every rule abstained — which [`check`](super::RoomPolicy) turns into
/// [`Refusal::NoRule`]. A rule that fails (a custom rule's lookup) fails the whole check.
#[derive(Debug, Clone, Default)]
pub struct AnyOf {
    rules: Vec<Arc<dyn RoomPolicy>>,
}

impl AnyOf {
    /// No rules yet: abstains on every room.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `rule` after the others.
    #[must_use]
    pub fn with(mut self, rule: impl RoomPolicy) -> Self {
        self.rules.push(Arc::new(rule));
        self
    }

    /// Adds a shared `rule` after the others.
    #[must_use]
    pub fn with_shared(mut self, rule: Arc<dyn RoomPolicy>) -> Self {
        self.rules.push(rule);
        self
    }
}

#[async_trait]
impl RoomPolicy for AnyOf {
    async fn decide(&self, request: &RoomRequest<'_>) -> Result<Decision> {
        let mut first_refusal = None;
        for rule in &self.rules {
            match rule.decide(request).await? {
                Decision::Allow => return Ok(Decision::Allow),
                Decision::Refuse(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
                Decision::Abstain => {}
            }
        }
        Ok(first_refusal.map_or(Decision::Abstain, Decision::Refuse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, n, m) in [
            ("*", "", true),
            ("*", "anything", true),
            ("lobby-*", "lobby-1", true),
            ("lobby-*", "lobby-", true),
            ("lobby-*", "lobb", false),
            ("*-ops", "team-ops", true),
            ("*-ops", "team-opsx", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a**", "a", true),
            ("*é*", "café!", true),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} ~ {n}");
        }
    }

    #[test]
    fn claim_formats() {
        let room = "dev";
        assert!(ClaimRooms::lists(&Value::from("ops,dev"), room));
        assert!(ClaimRooms::lists(&Value::from("ops, dev"), room));
        assert!(ClaimRooms::lists(&Value::from("ops dev"), room));
        assert!(ClaimRooms::lists(&Value::from(r#"["ops","dev"]"#), room));
        assert!(ClaimRooms::lists(&serde_json::json!(["ops", "dev"]), room));
        assert!(!ClaimRooms::lists(&Value::from("ops,devs"), room));
        assert!(!ClaimRooms::lists(&Value::from(r#"["ops","dev"#), room));
        assert!(!ClaimRooms::lists(&Value::from(""), room));
        assert!(!ClaimRooms::lists(&Value::from(3), room));
    }

    #[test]
    fn user_room_templates() {
        assert!(UserRooms::new("user-").is_err());
        assert!(UserRooms::new("{id}-{id}").is_err());
        let rooms = UserRooms::new("{id}@home").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rooms.owner("alice@home"), Some("alice"));
        assert_eq!(rooms.owner("@home"), None);
        assert_eq!(rooms.pattern(), "*@home");
    }
}
