//! [`PresenceEvent`]: the one JSON shape of presence messages, and the bounded room snapshot.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::broadcast::Payload;
use crate::ids::{RoomId, UserId};
use crate::store::Membership;

/// What a [`PresenceEvent`] says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PresenceKind {
    /// `"joined"`: the members entered the room (their first connection in it).
    Joined,
    /// `"left"`: the members left the room (their last connection in it).
    Left,
    /// `"members"`: the snapshot of the room — every member, or the first ones when
    /// `truncated`.
    Members,
}

impl PresenceKind {
    /// The `event` value: `"joined"`, `"left"` or `"members"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Left => "left",
            Self::Members => "members",
        }
    }
}

/// One member of a room: a user (however many connections they have in it), or an anonymous
/// connection, which is a member of its own.
///
/// Only these three fields ever leave the server: never the record's authorizer context,
/// endpoint, expiry or connection ids of users.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Member {
    /// `user:<user id>` when the connection has a user, else `conn:<connection id>`: the
    /// prefixes keep a user id that equals an anonymous connection's id from naming the same
    /// member. Clients key their member list on it and treat it as opaque (read the user from
    /// `userId`).
    pub member_id: String,
    /// The user, when known (absent for anonymous connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The member's live connections in the room after the change: 0 in `"left"`, at least 1
    /// in `"joined"` and `"members"`.
    pub connections: usize,
}

impl Member {
    /// The member a record belongs to, with `connections` connections.
    pub fn of(record: &Membership, connections: usize) -> Self {
        Self {
            member_id: member_id(record),
            user_id: record.user_id.clone(),
            connections,
        }
    }
}

/// The `memberId` prefix of a user.
const USER_PREFIX: &str = "user:";
/// The `memberId` prefix of an anonymous connection.
const CONNECTION_PREFIX: &str = "conn:";

/// The member id of a record: `user:<user id>`, or `conn:<connection id>` when it has no user.
/// Both id spaces allow the same strings (a user id "abc=" and a connection "abc="), so the
/// prefix is what keeps two members apart.
pub(super) fn member_id(record: &Membership) -> String {
    match &record.user_id {
        Some(user) => format!("{USER_PREFIX}{user}"),
        None => format!("{CONNECTION_PREFIX}{}", record.connection_id),
    }
}

/// A presence message, as posted to the members of a room:
///
/// ```json
/// {"type":"presence","event":"joined","room":"general",
///  "members":[{"memberId":"user:alice","userId":"alice","connections":1}],"at":1764240000000}
/// ```
///
/// - `type` is always `"presence"` (the shape's version: a change that breaks clients gets a
///   new `type`);
/// - `event` is `"joined"`, `"left"` or `"members"` ([`PresenceKind`]);
/// - `memberId` is `user:<user id>` for a user (however many connections), `conn:<connection
///   id>` for an anonymous connection. It used to be the bare id, so a user whose id equalled
///   an anonymous connection's id was merged with it (and announced as gone when the
///   connection left); clients compare `memberId`s and should not parse them;
/// - `members`: one entry for a join or leave, several for a batch of departures found by a
///   broadcast's Gone cleanup, the room's members for `"members"`;
/// - `at`: when the server made the event, in Unix milliseconds. Events are not ordered by
///   delivery: a client keeps, per `memberId`, the latest `at` it applied and ignores older
///   events (a snapshot counts as an event at its `at` for every member);
/// - `truncated: true` (only then present) when a snapshot lists only the first members, to
///   stay under API Gateway's 128 KB.
///
/// Events are delivered at least once: a `"joined"` for a member already present, or a
/// `"left"` for one already absent, changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PresenceEvent {
    /// Always `"presence"`; anything else does not deserialize.
    #[serde(rename = "type")]
    tag: PresenceTag,
    /// What happened.
    pub event: PresenceKind,
    /// The room.
    pub room: RoomId,
    /// Who it happened to.
    pub members: Vec<Member>,
    /// When the server made the event (Unix milliseconds).
    pub at: u64,
    /// Whether a snapshot lists only part of the room.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl PresenceEvent {
    /// An event of `kind` in `room` about `members`, made at `at` (Unix milliseconds; presence
    /// takes it from the store's [`clock`](crate::store::ConnectionStore::clock)).
    pub fn new(kind: PresenceKind, room: RoomId, members: Vec<Member>, at: u64) -> Self {
        Self {
            tag: PresenceTag,
            event: kind,
            room,
            members,
            at,
            truncated: false,
        }
    }

    /// The event as a payload (checked ≤ 128 KB).
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`](crate::Error::PayloadTooLarge) above 128 KB — never for the
    /// events [`Presence`](super::Presence) makes, which it splits or truncates.
    pub fn to_payload(&self) -> crate::Result<Payload> {
        Payload::json(self)
    }
}

/// The `"type"` of a presence event: serializes as `"presence"` and accepts nothing else
/// (serde's `tag` on a struct does not check the value it reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PresenceTag;

const TAG: &str = "presence";

impl Serialize for PresenceTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(TAG)
    }
}

impl<'de> Deserialize<'de> for PresenceTag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(d)?;
        if value == TAG {
            Ok(Self)
        } else {
            Err(serde::de::Error::custom(format!(
                "`type` is {value:?}, not \"{TAG}\""
            )))
        }
    }
}

/// Bytes a presence event may spend on its `members`: the 128 KB payload limit minus room for
/// the envelope (type, event, a room id of at most 128 bytes — 768 escaped — `at`, `truncated`).
pub(super) const MEMBERS_BUDGET: usize = Payload::MAX_SIZE - 2_048;

/// The serialized size of `member` in a list, with room for its count to grow to any `usize`.
pub(super) fn member_bytes(member: &Member) -> usize {
    serde_json::to_string(member).map_or(MEMBERS_BUDGET, |s| s.len()) + 21
}

/// Splits `members` into lists that each fit one event.
pub(super) fn chunks(members: Vec<Member>) -> Vec<Vec<Member>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for member in members {
        let size = member_bytes(&member);
        if !current.is_empty() && bytes + size > MEMBERS_BUDGET {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(member);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A room's members gathered from its records, page after page: one entry per member, at most
/// `max_listed` of them and [`MEMBERS_BUDGET`] bytes; members past that only set `truncated`.
#[derive(Debug)]
pub(super) struct Snapshot {
    members: Vec<Member>,
    index: HashMap<String, usize>,
    bytes: usize,
    max_listed: usize,
    pub(super) truncated: bool,
}

impl Snapshot {
    pub(super) fn new(max_listed: usize) -> Self {
        Self {
            members: Vec::new(),
            index: HashMap::new(),
            bytes: 0,
            max_listed,
            truncated: false,
        }
    }

    pub(super) fn add(&mut self, record: &Membership) {
        let id = member_id(record);
        if let Some(&i) = self.index.get(&id) {
            if let Some(member) = self.members.get_mut(i) {
                member.connections += 1;
            }
            return;
        }
        let member = Member::of(record, 1);
        let size = member_bytes(&member);
        if self.members.len() >= self.max_listed || self.bytes + size > MEMBERS_BUDGET {
            self.truncated = true;
            return;
        }
        self.bytes += size;
        self.index.insert(id, self.members.len());
        self.members.push(member);
    }

    pub(super) fn into_members(self) -> Vec<Member> {
        self.members
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnectionId;

    fn record(conn: &str, user: Option<&str>) -> Membership {
        let mut r = Membership::new(
            ConnectionId::new(conn).unwrap(),
            RoomId::new("general").unwrap(),
        )
        .with_endpoint("https://secret.example/prod")
        .with_expires_at(99);
        r.user_id = user.map(|u| UserId::new(u).unwrap());
        r
    }

    #[test]
    fn the_documented_shape_round_trips() {
        let text = r#"{"type":"presence","event":"joined","room":"general","members":[{"memberId":"user:alice","userId":"alice","connections":1}],"at":1764240000000}"#;
        let event: PresenceEvent = serde_json::from_str(text).unwrap();
        assert_eq!(event.event, PresenceKind::Joined);
        assert_eq!(event.members[0].user_id.as_ref().unwrap(), "alice");
        assert!(!event.truncated);
        assert_eq!(serde_json::to_string(&event).unwrap(), text);
        for kind in [PresenceKind::Left, PresenceKind::Members] {
            let e = PresenceEvent::new(kind, RoomId::new("r").unwrap(), vec![], 1);
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["event"], kind.as_str());
            assert_eq!(serde_json::from_value::<PresenceEvent>(v).unwrap(), e);
        }
    }

    #[test]
    fn another_type_is_not_a_presence_event() {
        let text = r#"{"type":"message","event":"joined","room":"general","members":[],"at":1}"#;
        assert!(serde_json::from_str::<PresenceEvent>(text).is_err());
    }

    #[test]
    fn members_carry_nothing_but_their_id_user_and_count() {
        let alice = Member::of(&record("c1=", Some("alice")), 2);
        let anon = Member::of(&record("c2=", None), 1);
        let e = PresenceEvent::new(
            PresenceKind::Joined,
            RoomId::new("general").unwrap(),
            vec![alice, anon],
            1_700_000_000_000,
        );
        let text = serde_json::to_string(&e).unwrap();
        for secret in [
            "secret.example",
            "ttl",
            "99",
            "c1=",
            "endpoint",
            "connectionId",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["members"][0],
            serde_json::json!({"memberId": "user:alice", "userId": "alice", "connections": 2})
        );
        assert_eq!(
            v["members"][1],
            serde_json::json!({"memberId": "conn:c2=", "connections": 1}),
            "anonymous: its connection"
        );
        assert_eq!(
            v.as_object().unwrap().len(),
            5,
            "type, event, room, members, at: {v}"
        );
    }

    #[test]
    fn snapshots_merge_connections_and_stay_under_the_payload_limit() {
        let mut s = Snapshot::new(usize::MAX);
        s.add(&record("a1", Some("alice")));
        s.add(&record("a2", Some("alice")));
        s.add(&record("b1", None));
        assert!(!s.truncated);
        let members = s.into_members();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].connections, 2);

        // 2,000 users with 256-byte names cannot fit 128 KB: the list stops and says so.
        let mut s = Snapshot::new(usize::MAX);
        for i in 0..2_000 {
            let name = format!("{i:0>256}");
            s.add(&record(&format!("c{i}"), Some(&name)));
        }
        assert!(s.truncated);
        let mut e = PresenceEvent::new(
            PresenceKind::Members,
            RoomId::new("r".repeat(128)).unwrap(),
            s.into_members(),
            1_700_000_000_000,
        );
        e.truncated = true;
        assert!(e.to_payload().is_ok(), "within 128 KB");

        let mut s = Snapshot::new(1);
        s.add(&record("a1", Some("alice")));
        s.add(&record("b1", Some("bob")));
        s.add(&record("a2", Some("alice")));
        assert!(s.truncated);
        let members = s.into_members();
        assert_eq!(
            (members.len(), members[0].connections),
            (1, 2),
            "listed members still count"
        );
    }

    #[test]
    fn large_batches_split_into_events_that_fit() {
        let members: Vec<Member> = (0..2_000)
            .map(|i| Member::of(&record(&format!("c{i}"), Some(&format!("{i:0>256}"))), 0))
            .collect();
        let parts = chunks(members);
        assert!(parts.len() > 1);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 2_000);
        for part in parts {
            let e = PresenceEvent::new(
                PresenceKind::Left,
                RoomId::new("r".repeat(128)).unwrap(),
                part,
                1_700_000_000_000,
            );
            assert!(e.to_payload().is_ok());
        }
    }
}
