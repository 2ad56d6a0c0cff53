//! The item codec: a [`Membership`] ↔ a DynamoDB attribute map, in the table layout shared with
//! the Python version (see [`DynamoDbStore`](super::DynamoDbStore)).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::{Error, Result};
use crate::ids::{ConnectionId, RoomId, UserId};
use crate::store::Membership;

/// Attribute names of the table layout (shared with the Python version).
pub(super) mod attr {
    pub(in crate::store::dynamodb) const CONNECTION_ID: &str = "connectionId";
    pub(in crate::store::dynamodb) const ROOM_ID: &str = "roomId";
    pub(in crate::store::dynamodb) const USER_ID: &str = "userId";
    pub(in crate::store::dynamodb) const CONNECTED_AT: &str = "connectedAt";
    pub(in crate::store::dynamodb) const TTL: &str = "ttl";
    pub(in crate::store::dynamodb) const ENDPOINT: &str = "managementEndpoint";
}

/// The prefix of the table's sort key: a room named `lobby` is stored as `room#lobby`. Room names
/// cannot contain `#` ([`RoomId`] refuses it), so a key always splits back into its room.
const ROOM_KEY_PREFIX: &str = "room#";

/// The value of the `roomId` attribute for `room`: `room#<name>`.
pub(crate) fn room_key(room: &RoomId) -> String {
    format!("{ROOM_KEY_PREFIX}{room}")
}

/// Parses a `roomId` attribute (`room#<name>`) back into a room.
///
/// # Errors
///
/// [`Error::InvalidId`] when the prefix is missing or the name is invalid.
pub(super) fn room_from_key(key: &str) -> Result<RoomId> {
    let name = key.strip_prefix(ROOM_KEY_PREFIX).ok_or_else(|| {
        Error::invalid_id(
            "room id",
            format!("storage key does not start with {ROOM_KEY_PREFIX:?}"),
        )
    })?;
    RoomId::new(name)
}

/// The item `record` is written as. `now` (Unix seconds) stands in for a missing `connected_at`;
/// a missing `expires_at` becomes `now + ttl`.
pub(super) fn to_item(
    record: &Membership,
    now: u64,
    ttl: Duration,
) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::with_capacity(6);
    item.insert(
        attr::CONNECTION_ID.to_owned(),
        AttributeValue::S(record.connection_id.as_str().to_owned()),
    );
    item.insert(
        attr::ROOM_ID.to_owned(),
        AttributeValue::S(room_key(&record.room)),
    );
    if let Some(user) = &record.user_id {
        item.insert(
            attr::USER_ID.to_owned(),
            AttributeValue::S(user.as_str().to_owned()),
        );
    }
    item.insert(
        attr::CONNECTED_AT.to_owned(),
        AttributeValue::N(record.connected_at.unwrap_or(now).to_string()),
    );
    let expires_at = record
        .expires_at
        .unwrap_or_else(|| now.saturating_add(ttl.as_secs()));
    item.insert(
        attr::TTL.to_owned(),
        AttributeValue::N(expires_at.to_string()),
    );
    if let Some(endpoint) = &record.endpoint {
        item.insert(
            attr::ENDPOINT.to_owned(),
            AttributeValue::S(endpoint.clone()),
        );
    }
    item
}

/// Parses an item, or says why it does not fit the layout.
pub(super) fn parse_item(
    item: &HashMap<String, AttributeValue>,
) -> std::result::Result<Membership, String> {
    let s = |name: &str| -> std::result::Result<Option<&String>, String> {
        match item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s)),
            Some(other) => Err(format!("attribute {name} is {other:?}, expected a string")),
        }
    };
    // Numbers are written as N by this crate and by the Python version; accept a numeric string
    // too, and ignore a fractional part.
    let n = |name: &str| -> Option<u64> {
        let text = match item.get(name)? {
            AttributeValue::N(n) | AttributeValue::S(n) => n,
            _ => return None,
        };
        let text = text.trim();
        text.parse::<u64>().ok().or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|f| *f >= 0.0)
                .map(|f| f as u64)
        })
    };
    let connection_id = s(attr::CONNECTION_ID)?.ok_or("missing connectionId")?;
    let room = s(attr::ROOM_ID)?.ok_or("missing roomId")?;
    let connection_id = ConnectionId::new(connection_id.as_str()).map_err(|e| e.to_string())?;
    let room = room_from_key(room).map_err(|e| e.to_string())?;
    let user_id = s(attr::USER_ID)?
        .map(|u| UserId::new(u.as_str()))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(Membership {
        connection_id,
        room,
        user_id,
        connected_at: n(attr::CONNECTED_AT),
        expires_at: n(attr::TTL),
        endpoint: s(attr::ENDPOINT)?.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn storage_key_round_trip_and_rejects_foreign_keys() {
        let room = RoomId::new("lobby").unwrap();
        assert_eq!(room_key(&room), "room#lobby");
        assert_eq!(room_from_key("room#lobby").unwrap(), room);
        assert!(room_from_key("lobby").is_err());
        assert!(room_from_key("room#").is_err());
    }

    #[test]
    fn items_round_trip_and_fill_in_the_defaults() {
        let record = Membership::new(
            ConnectionId::new("L0SM9cOFvHcCIhw=").unwrap(),
            RoomId::new("general").unwrap(),
        )
        .with_user(UserId::new("alice").unwrap());
        let record = Membership {
            connected_at: None,
            endpoint: Some("https://abc.example/prod".to_owned()),
            ..record
        };
        let item = to_item(&record, 1_000, Duration::from_secs(60));
        assert_eq!(
            item.get("roomId"),
            Some(&AttributeValue::S("room#general".into()))
        );
        let parsed = parse_item(&item).unwrap();
        assert_eq!(parsed.connected_at, Some(1_000));
        assert_eq!(parsed.expires_at, Some(1_060));
        assert_eq!(
            Membership {
                connected_at: None,
                expires_at: None,
                ..parsed
            },
            record
        );
    }

    #[test]
    fn parses_items_written_by_the_python_version() {
        let parsed = parse_item(&item(&[
            ("connectionId", AttributeValue::S("L0SM9cOFvHcCIhw=".into())),
            ("roomId", AttributeValue::S("room#general".into())),
            ("userId", AttributeValue::S("alice".into())),
            ("connectedAt", AttributeValue::N("1700000000".into())),
            ("ttl", AttributeValue::N("1700007200.0".into())),
        ]))
        .unwrap();
        assert_eq!(parsed.connection_id, "L0SM9cOFvHcCIhw=");
        assert_eq!(parsed.room, "general");
        assert_eq!(parsed.user_id.unwrap(), "alice");
        assert_eq!(parsed.connected_at, Some(1_700_000_000));
        assert_eq!(parsed.expires_at, Some(1_700_007_200));
        assert_eq!(parsed.endpoint, None);
    }

    #[test]
    fn rejects_items_that_do_not_fit_the_layout() {
        let no_room = item(&[("connectionId", AttributeValue::S("c".into()))]);
        assert!(parse_item(&no_room).unwrap_err().contains("roomId"));
        let bad_prefix = item(&[
            ("connectionId", AttributeValue::S("c".into())),
            ("roomId", AttributeValue::S("general".into())),
        ]);
        assert!(parse_item(&bad_prefix).unwrap_err().contains("room#"));
        let wrong_type = item(&[
            ("connectionId", AttributeValue::N("1".into())),
            ("roomId", AttributeValue::S("room#x".into())),
        ]);
        assert!(
            parse_item(&wrong_type)
                .unwrap_err()
                .contains("connectionId")
        );
    }
}
