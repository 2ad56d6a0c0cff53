//! The routing table in five minutes, on the in-memory store (no AWS account needed).
//!
//! Run with: `cargo run --example quickstart`
//!
//! It parses a `$connect` event the way a Lambda handler would, records the connection in its
//! room, lists the room and the user's connections, and disconnects. Swap `InMemoryStore` for
//! `DynamoDbStore::from_env().await?` and the same code runs against the real table.

use std::sync::Arc;

use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
use stateless_ws::{Membership, RoomId, UserId, WebSocketEvent};

const CONNECT: &str = r#"{
  "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com"},
  "queryStringParameters": {"room": "general"},
  "requestContext": {
    "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "L0SM9cOFvHcCIhw=",
    "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "stage": "prod",
    "apiId": "abc123", "connectedAt": 1700000000000, "requestTimeEpoch": 1700000000000,
    "authorizer": {"principalId": "alice"},
    "identity": {"sourceIp": "203.0.113.7", "userAgent": "websocat"}
  },
  "isBase64Encoded": false
}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), stateless_ws::Error> {
    // Handlers hold the store behind `Arc<dyn ConnectionStore>`: the backend is chosen once.
    let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());

    // $connect: identity from the authorizer, never from the query string.
    let WebSocketEvent::Connect(connect) = CONNECT.parse::<WebSocketEvent>()? else {
        unreachable!("the sample is a CONNECT event");
    };
    let ctx = &connect.context;
    let room = RoomId::new(connect.query("room").unwrap_or("general"))?;
    let mut record = Membership::new(ctx.connection_id.clone(), room.clone())
        .with_endpoint(ctx.management_endpoint()?);
    if let Some(user) = ctx.authorizer.as_ref().and_then(|a| a.principal_id()) {
        record = record.with_user(UserId::new(user)?);
    }
    store.join(&record).await?;
    println!(
        "{} joined {room} (management endpoint {})",
        ctx.connection_id,
        ctx.management_endpoint()?
    );

    // The same user on a second device, in two rooms.
    let alice = UserId::new("alice")?;
    let phone = stateless_ws::ConnectionId::new("Zm9vYmFyQmF6=")?;
    for r in ["general", "random"] {
        store
            .join(&Membership::new(phone.clone(), RoomId::new(r)?).with_user(alice.clone()))
            .await?;
    }

    let members = store.room_connections(&room).await?;
    println!("room {room}: {} connection(s)", members.len());
    let devices = store.user_connections(&alice).await?;
    println!(
        "user {alice}: {} connection(s), each listed once",
        devices.len()
    );

    // $disconnect: every room of the connection, in one call.
    let removed = store.disconnect(&phone).await?;
    println!("disconnect {phone}: removed {} record(s)", removed.len());
    println!(
        "room {room} now: {} connection(s)",
        store.room_connections(&room).await?.len()
    );
    Ok(())
}
