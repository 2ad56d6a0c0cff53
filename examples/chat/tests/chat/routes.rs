//! The chat application's routes (the logic behind the Lambda examples): happy paths, bad
//! input, unauthorized cases and stale cleanup — on the in-memory store, and again on
//! DynamoDB (MiniStack).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;

use chat::{Chat, ChatConfig};
use serde_json::{Value, json};
use stateless_ws::RouteResponse;
use stateless_ws::broadcast::{Payload, RecordingSender};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreCounts, StoreOp};
use stateless_ws::{ConnectionId, RoomId, UserId, WebSocketEvent};

const DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

fn connect_event(conn: &str, room: Option<&str>, principal: Option<&str>) -> WebSocketEvent {
    let mut ctx = json!({
        "routeKey": "$connect", "eventType": "CONNECT", "connectionId": conn,
        "domainName": DOMAIN, "stage": "prod", "apiId": "abc123",
        "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64,
        "identity": {"sourceIp": "203.0.113.9"}
    });
    if let Some(p) = principal {
        ctx["authorizer"] = json!({"principalId": p, "integrationLatency": 12});
    }
    let query = room.map_or(Value::Null, |r| json!({"room": r, "userId": "mallory"}));
    WebSocketEvent::try_from(
        json!({"requestContext": ctx, "queryStringParameters": query, "isBase64Encoded": false}),
    )
    .unwrap()
}

fn message_event(conn: &str, body: &str) -> WebSocketEvent {
    WebSocketEvent::try_from(json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "connectionId": conn, "messageId": "m1",
            "domainName": DOMAIN, "stage": "prod", "messageDirection": "IN",
            "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64
        },
        "body": body,
        "isBase64Encoded": false
    }))
    .unwrap()
}

fn disconnect_event(conn: &str) -> WebSocketEvent {
    WebSocketEvent::try_from(json!({
        "requestContext": {
            "routeKey": "$disconnect", "eventType": "DISCONNECT", "connectionId": conn,
            "disconnectStatusCode": 1005, "disconnectReason": "Client-side close frame status not set",
            "domainName": DOMAIN, "stage": "prod"
        },
        "isBase64Encoded": false
    }))
    .unwrap()
}

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

struct App {
    chat: Chat,
    sender: RecordingSender,
    store: Arc<dyn ConnectionStore>,
    /// Prefix making ids unique per run (the DynamoDB table is shared by scenarios).
    p: String,
}

impl App {
    fn new(store: Arc<dyn ConnectionStore>, config: ChatConfig) -> Self {
        let sender = RecordingSender::new();
        let chat = Chat::new(store.clone(), Arc::new(sender.clone()), config);
        let p = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        Self {
            chat,
            sender,
            store,
            p,
        }
    }

    fn c(&self, name: &str) -> String {
        format!("{name}-{}=", self.p)
    }

    fn r(&self, name: &str) -> String {
        format!("{name}-{}", self.p)
    }

    async fn connect(&self, conn: &str, room: &str, user: &str) -> RouteResponse {
        self.chat
            .handle(
                &connect_event(&self.c(conn), Some(&self.r(room)), Some(user)),
                None,
            )
            .await
    }

    async fn say(&self, conn: &str, body: Value) -> RouteResponse {
        self.chat
            .handle(&message_event(&self.c(conn), &body.to_string()), None)
            .await
    }

    /// What `conn` received, presence events aside (tests/chat/presence.rs checks those).
    fn inbox(&self, conn: &str) -> Vec<Value> {
        self.sender
            .messages(&id(&self.c(conn)))
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap())
            .filter(|v| v["type"] != "presence")
            .collect()
    }
}

/// The sorted `memberId`s of a presence `members` snapshot.
fn member_ids(snapshot: &Value) -> Vec<String> {
    assert_eq!(
        (&snapshot["type"], &snapshot["event"]),
        (&json!("presence"), &json!("members"))
    );
    let mut ids: Vec<String> = snapshot["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["memberId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Every route, on any store.
async fn routes_scenario(store: Arc<dyn ConnectionStore>) {
    let app = App::new(store, ChatConfig::default());
    let lobby = app.r("lobby");

    // $connect
    assert_eq!(
        app.connect("alice", "lobby", "alice-id").await.status_code,
        200
    );
    assert_eq!(app.connect("bob", "lobby", "bob-id").await.status_code, 200);
    let members = app
        .store
        .room_connections(&RoomId::new(lobby.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
    let alice_rec = members
        .iter()
        .find(|m| m.connection_id == app.c("alice"))
        .unwrap();
    assert_eq!(
        alice_rec.user_id.as_ref().unwrap(),
        "alice-id",
        "identity from the authorizer, not ?userId=mallory"
    );
    assert_eq!(
        alice_rec.endpoint.as_deref(),
        Some(format!("https://{DOMAIN}/prod").as_str())
    );

    // send: delivered to the room, sender excluded, shape {type, room, userId, message}
    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": lobby, "message": "hello"}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{resp:?}");
    assert_eq!(resp.body_json()["delivered"], 1);
    assert_eq!(
        app.inbox("bob"),
        [json!({"type": "message", "room": lobby, "userId": "alice-id", "message": "hello"})]
    );
    assert!(
        app.inbox("alice").is_empty(),
        "the sender is excluded by default"
    );

    // join another room: presence notice to its members, ack to the caller
    let games = app.r("games");
    let resp = app
        .say("bob", json!({"action": "join", "room": games}))
        .await;
    assert_eq!(
        resp.body_json(),
        json!({"type": "joined", "room": games, "userId": "bob-id"})
    );
    let resp = app
        .say("alice", json!({"action": "join", "room": games}))
        .await;
    assert_eq!(resp.status_code, 200);
    let told: Vec<Value> = app
        .sender
        .messages(&id(&app.c("bob")))
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let last = told.last().unwrap();
    assert_eq!(
        (&last["type"], &last["event"], &last["members"][0]["userId"]),
        (&json!("presence"), &json!("joined"), &json!("alice-id")),
        "bob is told alice joined"
    );

    // members
    let resp = app
        .say("alice", json!({"action": "members", "room": games}))
        .await;
    assert_eq!(
        member_ids(&resp.body_json()),
        ["user:alice-id", "user:bob-id"]
    );

    // ping refreshes the TTL
    let before = app
        .store
        .connection_rooms(&id(&app.c("alice")))
        .await
        .unwrap();
    let resp = app.say("alice", json!({"action": "ping"})).await;
    assert_eq!(resp.body_json(), json!({"type": "pong"}));
    let after = app
        .store
        .connection_rooms(&id(&app.c("alice")))
        .await
        .unwrap();
    assert_eq!(after.len(), before.len());
    assert!(after.iter().all(|r| r.expires_at.is_some()));

    // leave
    let resp = app
        .say("alice", json!({"action": "leave", "room": games}))
        .await;
    assert_eq!(resp.body_json()["type"], "left");
    assert!(
        !app.store
            .is_member(&id(&app.c("alice")), &RoomId::new(games.clone()).unwrap())
            .await
            .unwrap()
    );
    let resp = app
        .say("alice", json!({"action": "leave", "room": games}))
        .await;
    assert_eq!(resp.status_code, 400, "leaving a room one is not in");
    let resp = app
        .say("alice", json!({"action": "leave", "room": lobby}))
        .await;
    assert_eq!(resp.status_code, 400, "a connection keeps its last room");
    assert!(
        resp.body_json()["message"]
            .as_str()
            .unwrap()
            .contains("last room")
    );

    // a sender cannot post to a room it has not joined
    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": games, "message": "sneaky"}),
        )
        .await;
    assert_eq!(resp.status_code, 403);
    assert!(
        resp.body_json()["message"]
            .as_str()
            .unwrap()
            .contains("join it")
    );
    let resp = app
        .say("alice", json!({"action": "members", "room": games}))
        .await;
    assert_eq!(resp.status_code, 403);

    // stale connections met while broadcasting are cleaned from every room
    assert_eq!(
        app.connect("ghost", "lobby", "ghost-id").await.status_code,
        200
    );
    app.say("ghost", json!({"action": "join", "room": app.r("attic")}))
        .await;
    app.sender.set_gone(&id(&app.c("ghost")));
    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": lobby, "message": "anyone?"}),
        )
        .await;
    assert_eq!(resp.body_json()["delivered"], 1, "bob only");
    assert!(
        app.store
            .connection_rooms(&id(&app.c("ghost")))
            .await
            .unwrap()
            .is_empty(),
        "ghost left lobby and attic"
    );

    // a user in two rooms is notified once
    let resp = app
        .say("bob", json!({"action": "join", "room": app.r("third")}))
        .await;
    assert_eq!(resp.status_code, 200);
    let before = app.inbox("bob").len();
    let report = app
        .chat
        .broadcaster()
        .notify_user(
            &UserId::new("bob-id").unwrap(),
            &Payload::text("{\"type\":\"invoice\"}").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 1);
    assert_eq!(app.inbox("bob").len(), before + 1);

    // $disconnect: every room, idempotent
    let bob = app.c("bob");
    assert_eq!(
        app.chat
            .handle(&disconnect_event(&bob), None)
            .await
            .status_code,
        200
    );
    assert!(
        app.store
            .connection_rooms(&id(&bob))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.chat
            .handle(&disconnect_event(&bob), None)
            .await
            .status_code,
        200
    );
    app.chat
        .handle(&disconnect_event(&app.c("alice")), None)
        .await;
}

/// Bad input on every route: each a 4xx with a message naming the problem, nothing stored.
async fn bad_input_scenario(store: Arc<dyn ConnectionStore>) {
    let app = App::new(store, ChatConfig::default());
    let lobby = app.r("lobby");
    assert_eq!(
        app.connect("alice", "lobby", "alice-id").await.status_code,
        200
    );

    let too_long = "r".repeat(129);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"action": "dance"}), "unknown action `dance`"),
        (json!({"room": lobby}), "missing `action`"),
        (json!({"action": 7}), "`action` must be a string"),
        (json!({"action": "join"}), "missing `room`"),
        (
            json!({"action": "join", "room": too_long}),
            "`room`: invalid room id: is 129 bytes long",
        ),
        (json!({"action": "join", "room": "a#b"}), "room#<name>"),
        (
            json!({"action": "join", "room": 5}),
            "`room` must be a string",
        ),
        (
            json!({"action": "send", "room": lobby}),
            "missing `message`",
        ),
        (
            json!({"action": "send", "room": lobby, "message": ""}),
            "`message` is empty",
        ),
        (
            json!({"action": "send", "room": lobby, "message": {"x": 1}}),
            "`message` must be a string",
        ),
        (
            json!({"action": "send", "room": lobby, "message": "x".repeat(16 * 1024 + 1)}),
            "the limit is 16384",
        ),
        (
            json!({"action": "send", "room": lobby, "message": "hi", "userId": "bob-id"}),
            "`userId` cannot be set",
        ),
        (
            json!({"action": "join", "room": lobby, "userId": "admin"}),
            "`userId` cannot be set",
        ),
        (json!(["send"]), "must be a JSON object"),
    ];
    for (body, expected) in cases {
        let resp = app.say("alice", body.clone()).await;
        assert_eq!(resp.status_code, 400, "{body}");
        let message = resp.body_json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(expected),
            "{body}: {message:?} should contain {expected:?}"
        );
        assert_eq!(resp.body_json()["type"], "error");
    }
    let resp = app
        .chat
        .handle(&message_event(&app.c("alice"), "not json {"), None)
        .await;
    assert_eq!(resp.status_code, 400);
    assert!(
        resp.body_json()["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        app.store
            .connection_rooms(&id(&app.c("alice")))
            .await
            .unwrap()
            .len(),
        1,
        "nothing joined"
    );

    // $connect refusals
    let resp = app
        .chat
        .handle(
            &connect_event(&app.c("x"), Some(&"y".repeat(200)), Some("u")),
            None,
        )
        .await;
    assert_eq!(resp.status_code, 400);
    // A payload that is not an event, as the Lambda binaries get it: through the library's adapter.
    let handler = |chat: Arc<Chat>, event: WebSocketEvent, _| async move {
        Ok(chat.handle(&event, None).await)
    };
    let resp = chat::lambda::adapter(Arc::new(app.chat.clone()), handler)
        .call(
            json!({"requestContext": {"eventType": "CONNECT"}}),
            stateless_ws::lambda::Context::default(),
        )
        .await;
    assert_eq!(resp.status_code, 400);
    assert!(resp.body.unwrap().contains("requestContext.connectionId"));
    app.chat
        .handle(&disconnect_event(&app.c("alice")), None)
        .await;
}

async fn unauthorized_scenario(store: Arc<dyn ConnectionStore>) {
    let mut config = ChatConfig::default();
    config.require_auth = true;
    let app = App::new(store, config);
    let resp = app
        .chat
        .handle(&connect_event(&app.c("anon"), Some("lobby"), None), None)
        .await;
    assert_eq!(
        resp.status_code, 401,
        "no principal: refused even with ?userId="
    );
    assert!(
        app.store
            .connection_rooms(&id(&app.c("anon")))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.connect("ok", "lobby", "alice-id").await.status_code,
        200
    );
    app.chat.handle(&disconnect_event(&app.c("ok")), None).await;
}

#[tokio::test]
async fn routes_on_the_in_memory_store() {
    routes_scenario(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn bad_input_on_the_in_memory_store() {
    bad_input_scenario(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn unauthorized_on_the_in_memory_store() {
    unauthorized_scenario(Arc::new(InMemoryStore::new())).await;
}

#[tokio::test]
async fn echo_to_sender_when_the_app_chooses_it() {
    let mut config = ChatConfig::default();
    config.echo_to_sender = true;
    let app = App::new(Arc::new(InMemoryStore::new()), config);
    app.connect("alice", "lobby", "alice-id").await;
    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": app.r("lobby"), "message": "me too"}),
        )
        .await;
    assert_eq!(resp.body_json()["delivered"], 1);
    assert_eq!(app.inbox("alice")[0]["message"], "me too");
}

/// What the reads of a message cost in DynamoDB, where read capacity is per item read: the
/// records the listings returned, plus one per `membership` (a `GetItem` costs one read whether
/// or not it finds the item). Counted at the seam by the instrumented store.
fn records_read(counts: &StoreCounts) -> u64 {
    let listed: u64 = [
        StoreOp::RemoveConnections,
        StoreOp::RoomPage,
        StoreOp::UserConnections,
        StoreOp::ConnectionRooms,
        StoreOp::Refresh,
    ]
    .into_iter()
    .map(|op| counts.records(op))
    .sum();
    listed + counts.calls(StoreOp::Membership)
}

/// Records read to handle one `send` and one `members` from a connection in `rooms` rooms,
/// to a room of two.
async fn records_read_per_message(rooms: usize) -> (u64, u64) {
    let store = InstrumentedStore::new(Arc::new(InMemoryStore::new()));
    let app = App::new(Arc::new(store.clone()), ChatConfig::default());
    assert_eq!(
        app.connect("alice", "lobby", "alice-id").await.status_code,
        200
    );
    assert_eq!(app.connect("bob", "lobby", "bob-id").await.status_code, 200);
    let alice = id(&app.c("alice"));
    for i in 1..rooms {
        // Straight into the table: more rooms than the chat's cap would let one join.
        let room = RoomId::new(app.r(&format!("extra{i}"))).unwrap();
        store
            .inner()
            .join(
                &stateless_ws::Membership::new(alice.clone(), room)
                    .with_user(UserId::new("alice-id").unwrap()),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store.inner().connection_rooms(&alice).await.unwrap().len(),
        rooms
    );
    store.take_counts();
    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": app.r("lobby"), "message": "hi"}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body_json());
    assert_eq!(resp.body_json()["delivered"], 1);
    assert_eq!(
        app.inbox("bob")[0]["userId"],
        "alice-id",
        "the user id still comes from the store"
    );
    let send = records_read(&store.take_counts());
    let resp = app
        .say(
            "alice",
            json!({"action": "members", "room": app.r("lobby")}),
        )
        .await;
    assert_eq!(resp.status_code, 200);
    assert_eq!(
        member_ids(&resp.body_json()),
        ["user:alice-id", "user:bob-id"]
    );
    let members = records_read(&store.take_counts());
    (send, members)
}

#[tokio::test]
async fn a_message_reads_the_same_records_in_one_room_or_three_thousand() {
    let one = records_read_per_message(1).await;
    let many = records_read_per_message(3_000).await;
    assert_eq!(
        many, one,
        "records read per (send, members): {one:?} in 1 room, {many:?} in 3,000 rooms"
    );
    // The sender's membership of the room (1) + the room's two records for the fan-out.
    assert_eq!(one, (3, 3));
}

async fn room_cap_scenario(store: Arc<dyn ConnectionStore>) {
    let mut config = ChatConfig::default();
    config.max_rooms_per_connection = 3;
    let app = App::new(store, config);
    assert_eq!(
        app.connect("alice", "r0", "alice-id").await.status_code,
        200
    );
    for room in ["r1", "r2"] {
        let resp = app
            .say("alice", json!({"action": "join", "room": app.r(room)}))
            .await;
        assert_eq!(resp.status_code, 200, "{:?}", resp.body_json());
    }
    let resp = app
        .say("alice", json!({"action": "join", "room": app.r("r3")}))
        .await;
    assert_eq!(resp.status_code, 400);
    let message = resp.body_json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("at most 3 rooms") && message.contains("max_rooms_per_connection"),
        "{message}"
    );
    let alice = id(&app.c("alice"));
    assert!(
        !app.store
            .is_member(&alice, &RoomId::new(app.r("r3")).unwrap())
            .await
            .unwrap()
    );
    // Joining a room it is already in is not a new room.
    let resp = app
        .say("alice", json!({"action": "join", "room": app.r("r1")}))
        .await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body_json());
    let resp = app
        .say("alice", json!({"action": "leave", "room": app.r("r1")}))
        .await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body_json());
    let resp = app
        .say("alice", json!({"action": "join", "room": app.r("r3")}))
        .await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body_json());
    assert_eq!(app.store.rooms_of(&alice).await.unwrap().len(), 3);
    app.store.disconnect(&alice).await.unwrap();
}

#[tokio::test]
async fn rooms_per_connection_are_capped() {
    assert_eq!(ChatConfig::default().max_rooms_per_connection, 50);
    room_cap_scenario(Arc::new(InMemoryStore::new())).await;
}

async fn dynamodb_store(tag: &str) -> Option<Arc<dyn ConnectionStore>> {
    Some(Arc::new(common::ministack_store(tag, "chat", 5).await?))
}

#[tokio::test]
async fn routes_on_dynamodb() {
    if let Some(store) = dynamodb_store("routes_on_dynamodb").await {
        routes_scenario(store.clone()).await;
        bad_input_scenario(store.clone()).await;
        unauthorized_scenario(store.clone()).await;
        room_cap_scenario(store).await;
    }
}
