//! The room policy in the chat (issue 20): a room the user has no grant for, an expired,
//! forged or another user's grant, another user's room — each answers 403 with the reason,
//! stores no record, and announces nothing; the members list answers only members. Through
//! the routes on the in-memory store and on DynamoDB (MiniStack), and through the local
//! gateway with real WebSocket clients on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chat::{Chat, ChatConfig, ChatRooms, IdentitySource};
use futures_util::SinkExt;
use serde_json::{Value, json};
use stateless_ws::RouteResponse;
use stateless_ws::broadcast::{ApiGatewaySender, RecordingSender};
use stateless_ws::lambda::{self, Context};
use stateless_ws::policy::{GrantKey, RoomGrant, SignedGrants};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
use stateless_ws::{ConnectionId, RoomId, UserId, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "chat-test-room-grant-key-0123456789";
const DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

fn key() -> GrantKey {
    GrantKey::new(KEY).unwrap()
}

/// A grant of `KEY` (or `key`) for `user` in `room`, issued `ago` ago for `ttl`.
fn grant_with(key: &GrantKey, user: &str, room: &str, ago: Duration, ttl: Duration) -> String {
    RoomGrant::issue_at(
        key,
        &UserId::new(user).unwrap(),
        &RoomId::new(room).unwrap(),
        ttl,
        SystemTime::now() - ago,
    )
    .unwrap()
}

fn grant(user: &str, room: &str) -> String {
    grant_with(&key(), user, room, Duration::ZERO, Duration::from_secs(60))
}

/// The grants a client may try, each refused for `user` in `room`: none, expired, forged
/// (another key), another user's — with the words of the refusal.
fn bad_grants(user: &str, room: &str) -> Vec<(Option<String>, &'static str)> {
    let other_key = GrantKey::new("not-the-chat-key-not-the-chat-key!!").unwrap();
    vec![
        (None, "needs a grant"),
        (
            Some(grant_with(
                &key(),
                user,
                room,
                Duration::from_secs(3_600),
                Duration::from_secs(60),
            )),
            "expired",
        ),
        (
            Some(grant_with(
                &other_key,
                user,
                room,
                Duration::ZERO,
                Duration::from_secs(60),
            )),
            "signature is not valid",
        ),
        (Some(grant("someone-else", room)), "another user"),
        (Some(grant(user, "private-other")), "another room"),
    ]
}

fn chat_rooms() -> ChatRooms {
    ChatRooms::default().with_grants(SignedGrants::new(key()))
}

fn connect_event(conn: &str, user: &str, room: &str, grant: Option<&str>) -> WebSocketEvent {
    let mut query = json!({"room": room});
    if let Some(grant) = grant {
        query["grant"] = json!(grant);
    }
    WebSocketEvent::try_from(json!({
        "requestContext": {
            "routeKey": "$connect", "eventType": "CONNECT", "connectionId": conn,
            "domainName": DOMAIN, "stage": "prod", "connectedAt": 1_700_000_000_000_i64,
            "authorizer": {"principalId": user}
        },
        "queryStringParameters": query, "isBase64Encoded": false
    }))
    .unwrap()
}

fn message_event(conn: &str, user: &str, body: &Value) -> WebSocketEvent {
    WebSocketEvent::try_from(json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "connectionId": conn,
            "domainName": DOMAIN, "stage": "prod", "connectedAt": 1_700_000_000_000_i64,
            "authorizer": {"principalId": user}
        },
        "body": body.to_string(), "isBase64Encoded": false
    }))
    .unwrap()
}

fn error_of(response: &RouteResponse) -> String {
    let body = response.body_json();
    assert_eq!(body["type"], "error", "{body}");
    body["message"].as_str().unwrap().to_owned()
}

/// The routes: refusals on `$connect` and `join` store nothing and post nothing.
async fn refusal_scenario(store: Arc<dyn ConnectionStore>) {
    let sender = RecordingSender::new();
    let chat = Chat::new(
        Arc::clone(&store),
        Arc::new(sender.clone()),
        ChatConfig::default(),
    )
    .with_room_policy(chat_rooms().policy().unwrap());
    let tag = format!("{:x}", std::process::id());
    let conn = |name: &str| format!("{name}-{tag}=");
    let id = |name: &str| ConnectionId::new(conn(name)).unwrap();
    let private = "private-x";
    let private_room = RoomId::new(private).unwrap();

    // bob enters with his grant on $connect.
    let bob_grant = grant("bob", private);
    let ok = chat
        .handle(
            &connect_event(&conn("bob"), "bob", private, Some(&bob_grant)),
            None,
        )
        .await;
    assert_eq!(ok.status_code, 200, "{:?}", ok.body_json());
    assert!(
        store
            .membership(&id("bob"), &private_room)
            .await
            .unwrap()
            .is_some()
    );

    // carol, on $connect, with each bad grant: 403, no record, nothing posted to bob.
    for (grant, words) in bad_grants("carol", private) {
        let refused = chat
            .handle(
                &connect_event(&conn("carol"), "carol", private, grant.as_deref()),
                None,
            )
            .await;
        assert_eq!(refused.status_code, 403, "{words}");
        assert!(error_of(&refused).contains(words), "{words}: {refused:?}");
        assert!(
            store
                .connection_rooms(&id("carol"))
                .await
                .unwrap()
                .is_empty()
        );
    }
    // Another user's room, on $connect.
    let refused = chat
        .handle(
            &connect_event(&conn("carol"), "carol", "user-bob", None),
            None,
        )
        .await;
    assert_eq!(refused.status_code, 403);
    assert!(error_of(&refused).contains("belongs to another user"));
    assert!(
        store
            .connection_rooms(&id("carol"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sender.total_attempts(), 0, "nothing announced");

    // alice is in general; each refused join leaves no record and tells bob nothing.
    let ok = chat
        .handle(
            &connect_event(&conn("alice"), "alice", "general", None),
            None,
        )
        .await;
    assert_eq!(ok.status_code, 200);
    let join = |grant: Option<&str>, room: &str| {
        let mut body = json!({"action": "join", "room": room});
        if let Some(grant) = grant {
            body["grant"] = json!(grant);
        }
        message_event(&conn("alice"), "alice", &body)
    };
    let mut cases = bad_grants("alice", private);
    cases.push((Some(grant("alice", "user-bob")), "belongs to another user"));
    for (grant, words) in cases {
        let room = if words == "belongs to another user" {
            "user-bob"
        } else {
            private
        };
        let refused = chat.handle(&join(grant.as_deref(), room), None).await;
        assert_eq!(refused.status_code, 403, "{words}");
        assert!(error_of(&refused).contains(words), "{words}: {refused:?}");
        assert_eq!(
            store.rooms_of(&id("alice")).await.unwrap(),
            [RoomId::new("general").unwrap()],
            "{words}: no record"
        );
        assert_eq!(sender.total_attempts(), 0, "{words}: nothing announced");
    }
    // A body's grant must be a string.
    let bad = chat
        .handle(
            &message_event(
                &conn("alice"),
                "alice",
                &json!({"action": "join", "room": private, "grant": 7}),
            ),
            None,
        )
        .await;
    assert_eq!(bad.status_code, 400);

    // Item 4: the members list answers only members.
    let members = json!({"action": "members", "room": private});
    let refused = chat
        .handle(&message_event(&conn("alice"), "alice", &members), None)
        .await;
    assert_eq!(refused.status_code, 403);
    assert!(error_of(&refused).contains("not in room"));

    // With her own grant alice enters, and bob hears of it.
    let ok = chat
        .handle(&join(Some(&grant("alice", private)), private), None)
        .await;
    assert_eq!(ok.status_code, 200, "{:?}", ok.body_json());
    assert!(
        store
            .membership(&id("alice"), &private_room)
            .await
            .unwrap()
            .is_some()
    );
    let heard: Vec<Value> = sender
        .messages(&id("bob"))
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(
        (&heard[0]["event"], &heard[0]["room"]),
        (&json!("joined"), &json!(private))
    );
    assert_eq!(heard[0]["members"][0]["userId"], "alice");
    let answer = chat
        .handle(&message_event(&conn("alice"), "alice", &members), None)
        .await;
    assert_eq!(answer.status_code, 200);
    let mut users: Vec<String> = answer.body_json()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    // Their own user room needs no grant.
    let ok = chat.handle(&join(None, "user-alice"), None).await;
    assert_eq!(ok.status_code, 200);

    for who in ["alice", "bob"] {
        store.disconnect(&id(who)).await.unwrap();
    }
}

#[tokio::test]
async fn refused_rooms_store_nothing_and_announce_nothing() {
    refusal_scenario(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn refused_rooms_store_nothing_and_announce_nothing_on_dynamodb() {
    if let Some(store) = common::ministack_store("policy_routes_on_dynamodb", "policy", 5).await {
        refusal_scenario(Arc::new(store)).await;
    }
}

#[test]
fn the_default_chat_closes_private_rooms_without_a_key() {
    // No ROOM_GRANT_KEY: no grant can open a private room (and `Chat::new` uses these rules).
    assert!(ChatRooms::default().grants.is_none());
}

// ---- Through the local gateway, with real WebSocket clients ----

use crate::gateway::{Client, next_any};

async fn start(store: Arc<dyn ConnectionStore>) -> RunningGateway {
    let sender = ApiGatewaySender::new(&common::local_sdk_config().await);
    let mut config = ChatConfig::default();
    config.identity = IdentitySource::InsecureQueryString {
        param: "userId".into(),
    };
    let chat = Arc::new(
        Chat::new(store, Arc::new(sender), config).with_room_policy(chat_rooms().policy().unwrap()),
    );
    let on_event = lambda::service(move |event: WebSocketEvent, context: Context| {
        let chat = Arc::clone(&chat);
        async move { Ok(chat.handle(&event, lambda::deadline(&context)).await) }
    });
    LocalGateway::new(LocalGatewayConfig::default())
        .default_handler(on_event.clone())
        .route("join", on_event.clone())
        .route("send", on_event)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn client(gateway: &RunningGateway, query: &str) -> Client {
    let (ws, response) = connect_async(format!("{}?{query}", gateway.ws_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// The status of a refused upgrade.
async fn refused(gateway: &RunningGateway, query: &str) -> u16 {
    match connect_async(format!("{}?{query}", gateway.ws_url())).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("{query}: connected"),
    }
}

async fn say(ws: &mut Client, body: Value) -> Value {
    ws.send(Message::text(body.to_string())).await.unwrap();
    next_any(ws).await
}

async fn gateway_scenario(store: Arc<dyn ConnectionStore>) {
    let gateway = start(Arc::clone(&store)).await;
    let tag = format!("{:x}", std::process::id());
    let (bob_name, alice_name, carol_name) = (
        format!("bob-{tag}"),
        format!("alice-{tag}"),
        format!("carol-{tag}"),
    );
    let private = format!("private-{tag}");
    let private_room = RoomId::new(private.as_str()).unwrap();

    // bob connects straight into the private room with his grant.
    let mut bob = client(
        &gateway,
        &format!(
            "room={private}&userId={bob_name}&grant={}",
            grant(&bob_name, &private)
        ),
    )
    .await;
    // Without, or with someone else's grant, the upgrade is refused with 403.
    assert_eq!(
        refused(&gateway, &format!("room={private}&userId={alice_name}")).await,
        403
    );
    assert_eq!(
        refused(
            &gateway,
            &format!(
                "room={private}&userId={alice_name}&grant={}",
                grant(&bob_name, &private)
            )
        )
        .await,
        403
    );
    assert_eq!(
        refused(
            &gateway,
            &format!("room=user-{bob_name}&userId={alice_name}")
        )
        .await,
        403
    );
    assert_eq!(gateway.connection_count(), 1);
    assert_eq!(
        store.room_connections(&private_room).await.unwrap().len(),
        1
    );

    let mut carol = client(&gateway, &format!("room=general-{tag}&userId={carol_name}")).await;
    let mut alice = client(&gateway, &format!("room=general-{tag}&userId={alice_name}")).await;
    let alice_id = store
        .user_connections(&UserId::new(alice_name.as_str()).unwrap())
        .await
        .unwrap()[0]
        .connection_id
        .clone();

    for (grant, words) in bad_grants(&alice_name, &private) {
        let mut body = json!({"action": "join", "room": private});
        if let Some(grant) = grant {
            body["grant"] = json!(grant);
        }
        let answer = say(&mut alice, body).await;
        assert_eq!(answer["type"], "error", "{words}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(words),
            "{words}: {answer}"
        );
        assert!(
            store
                .membership(&alice_id, &private_room)
                .await
                .unwrap()
                .is_none(),
            "{words}: no record"
        );
    }
    // Item 4: presence answers only members.
    let answer = say(&mut alice, json!({"action": "members", "room": private})).await;
    assert_eq!(answer["type"], "error", "{answer}");

    // With her grant alice enters: bob's very next message is that "joined" — none of the
    // refused attempts reached him.
    let answer = say(
        &mut alice,
        json!({"action": "join", "room": private, "grant": grant(&alice_name, &private)}),
    )
    .await;
    assert_eq!(answer["type"], "joined", "{answer}");
    let heard = next_any(&mut bob).await;
    assert_eq!(
        (&heard["type"], &heard["event"], &heard["room"]),
        (&json!("presence"), &json!("joined"), &json!(private)),
        "{heard}"
    );
    assert_eq!(heard["members"][0]["userId"], json!(alice_name));

    // carol, in general only, heard nothing of the private room: up to alice's message in
    // general, only general's presence.
    let answer = say(
        &mut alice,
        json!({"action": "send", "room": format!("general-{tag}"), "message": "hi"}),
    )
    .await;
    assert_eq!(answer["type"], "sent", "{answer}");
    loop {
        let seen = next_any(&mut carol).await;
        assert_ne!(seen["room"], json!(private), "{seen}");
        if seen["type"] == "message" {
            assert_eq!(seen["message"], "hi");
            break;
        }
    }
    let answer = say(&mut carol, json!({"action": "members", "room": private})).await;
    assert_eq!(answer["type"], "error", "{answer}");

    for ws in [&mut alice, &mut bob, &mut carol] {
        ws.close(None).await.unwrap();
    }
    common::eventually("every $disconnect cleaned its records", async || {
        store
            .room_connections(&private_room)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn private_rooms_through_the_local_gateway() {
    gateway_scenario(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn private_rooms_through_the_local_gateway_on_dynamodb() {
    if let Some(store) = common::ministack_store("policy_gateway_on_dynamodb", "policy-gw", 5).await
    {
        gateway_scenario(Arc::new(store)).await;
    }
}
