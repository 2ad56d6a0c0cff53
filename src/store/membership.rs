//! [`Membership`]: one row of the routing table.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::clock::unix_seconds;
use crate::ids::{ConnectionId, RoomId, UserId};

/// One row of the routing table: one connection's membership of one room.
///
/// A connection in three rooms has three memberships, one per room, all with the same
/// `connection_id`; listings ([`ConnectionStore::room_connections`](crate::store::ConnectionStore::room_connections),
/// [`connection_rooms`](crate::store::ConnectionStore::connection_rooms), ...) return these rows.
///
/// Its serde form uses the table's attribute names — `connectionId`, `roomId`, `userId`,
/// `connectedAt`, `ttl` and the optional `managementEndpoint` — with one difference: `roomId` is
/// the plain room name here, while the DynamoDB table stores it as `room#<name>` (the layout
/// shared with the Python handlers; the prefix is added and removed by
/// `DynamoDbStore`'s item codec).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Membership {
    /// The API Gateway connection id (partition key).
    pub connection_id: ConnectionId,
    /// The room (`roomId`, the sort key; stored as `room#<name>` in DynamoDB).
    #[serde(rename = "roomId")]
    pub room: RoomId,
    /// The user holding the connection, when known. Records without a user are not in the
    /// `userId-index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// When the connection was made, in Unix seconds (`connectedAt`). `None` for records written
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<u64>,
    /// When the record expires, in Unix seconds (the `ttl` attribute). `None` when joining means
    /// "the store's TTL from now"; `None` on a record read back means it was written without a
    /// `ttl` and never expires.
    #[serde(rename = "ttl", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The management API endpoint (`https://{domain}/{stage}`) of the API holding the socket,
    /// for tables shared by several APIs or regions. Absent in records written by older code;
    /// senders then use their default endpoint.
    #[serde(
        rename = "managementEndpoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint: Option<String>,
}

impl Membership {
    /// A record for `connection_id` in `room` with no user, no endpoint, and `connectedAt` and
    /// expiry left to the store: joining it stamps the store's clock's now and its TTL
    /// ([`ConnectionStore`](crate::store::ConnectionStore) rules 7 and 11).
    pub fn new(connection_id: ConnectionId, room: RoomId) -> Self {
        Self {
            connection_id,
            room,
            user_id: None,
            connected_at: None,
            expires_at: None,
            endpoint: None,
        }
    }

    /// The record a `$connect` handler stores for `event`'s connection in `room`:
    ///
    /// - `connectedAt` from the event's `requestContext.connectedAt` (now when absent);
    /// - the user from the REQUEST authorizer's `principalId` — identity comes from the
    ///   authorizer only, never from the query string or headers a client controls (an
    ///   application that wants otherwise sets [`user_id`](Self::user_id) itself);
    /// - the management endpoint `https://{domainName}/{stage}` from the event
    ///   ([`RequestContext::management_endpoint`](crate::RequestContext::management_endpoint)),
    ///   so that any later sender — another handler, a backend service — posts to the API that
    ///   holds this socket. Left empty when the event lacks `domainName` or `stage`; senders
    ///   then use their default endpoint.
    ///
    /// ```
    /// use stateless_ws::{Authorizer, ConnectEvent, ConnectionId, Membership, RoomId};
    ///
    /// let mut connect = ConnectEvent::new(ConnectionId::new("L0SM9cOFvHcCIhw=")?);
    /// connect.context.domain_name = Some("abc123.execute-api.eu-west-1.amazonaws.com".into());
    /// connect.context.stage = Some("prod".into());
    /// connect.context.authorizer = Some(Authorizer::new().with_principal_id("alice"));
    ///
    /// let record = Membership::for_connect(&connect, RoomId::new("lobby")?)?;
    /// assert_eq!(record.user_id.as_ref().map(|u| u.as_str()), Some("alice"));
    /// assert_eq!(record.endpoint.as_deref(), Some("https://abc123.execute-api.eu-west-1.amazonaws.com/prod"));
    /// # Ok::<(), stateless_ws::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`](crate::Error::InvalidId) when the authorizer's `principalId` is not a
    /// valid [`UserId`].
    pub fn for_connect(event: &crate::ConnectEvent, room: RoomId) -> crate::Result<Self> {
        let context = &event.context;
        let mut record = Self::new(context.connection_id.clone(), room);
        if let Some(ms) = context.connected_at.and_then(|ms| u64::try_from(ms).ok()) {
            record.connected_at = Some(ms / 1_000);
        }
        if let Some(principal) = context.authorizer.as_ref().and_then(|a| a.principal_id()) {
            record.user_id = Some(UserId::new(principal)?);
        }
        record.endpoint = context.management_endpoint().ok();
        Ok(record)
    }

    /// Sets the user.
    #[must_use]
    pub fn with_user(mut self, user_id: UserId) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Sets the connection time (Unix seconds).
    #[must_use]
    pub fn with_connected_at(mut self, unix_seconds: u64) -> Self {
        self.connected_at = Some(unix_seconds);
        self
    }

    /// Sets an explicit expiry (Unix seconds) instead of the store's TTL.
    #[must_use]
    pub fn with_expires_at(mut self, unix_seconds: u64) -> Self {
        self.expires_at = Some(unix_seconds);
        self
    }

    /// Sets the expiry to `ttl` after `now`.
    #[must_use]
    pub fn with_ttl_from(self, now: SystemTime, ttl: Duration) -> Self {
        self.with_expires_at(unix_seconds(now).saturating_add(ttl.as_secs()))
    }

    /// Sets the management endpoint of the API holding the socket.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Whether the record has expired at `now` (its `ttl` is at or before `now`). Records without
    /// an expiry never expire.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| t <= unix_seconds(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn serde_validates() {
        let id: ConnectionId = serde_json::from_str("\"abc=\"").unwrap();
        let c = Membership::new(id, RoomId::new("r").unwrap()).with_expires_at(10);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["connectionId"], "abc=");
        assert_eq!(v["roomId"], "r");
        assert_eq!(v["ttl"], 10);
        assert!(v.get("userId").is_none());
        let back: Membership = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn expiry() {
        let c = Membership::new(ConnectionId::new("c").unwrap(), RoomId::new("r").unwrap());
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert!(!c.is_expired_at(now), "no ttl never expires");
        let c = c.with_expires_at(100);
        assert!(c.is_expired_at(now));
        assert!(!c.is_expired_at(now - Duration::from_secs(1)));
        let c = c.with_ttl_from(now, Duration::from_secs(60));
        assert_eq!(c.expires_at, Some(160));
    }
}
