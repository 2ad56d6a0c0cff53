//! The chat's presence: which events `$connect`, `$disconnect`, `join`, `leave` and a `send`'s
//! Gone cleanup post, through the routes (in memory; the library's `tests/presence` runs the
//! same rules on DynamoDB too).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chat::{Chat, ChatConfig};
use serde_json::{Value, json};
use stateless_ws::broadcast::RecordingSender;
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, RoomId, WebSocketEvent};

/// (event, room, [(memberId, connections)]) of one presence event.
type Seen = (String, String, Vec<(String, u64)>);

const DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

fn context(conn: &str, route: &str, kind: &str, connected_at_ms: i64) -> Value {
    json!({
        "routeKey": route, "eventType": kind, "connectionId": conn, "messageId": "m1",
        "domainName": DOMAIN, "stage": "prod",
        "connectedAt": connected_at_ms, "requestTimeEpoch": connected_at_ms,
    })
}

struct App {
    chat: Chat,
    sender: RecordingSender,
    store: Arc<dyn ConnectionStore>,
}

impl App {
    fn new(config: ChatConfig) -> Self {
        let store: Arc<dyn ConnectionStore> = Arc::new(InMemoryStore::new());
        let sender = RecordingSender::new();
        let chat = Chat::new(Arc::clone(&store), Arc::new(sender.clone()), config);
        Self {
            chat,
            sender,
            store,
        }
    }

    /// `$connect` of `conn` as `user` to `room`, connected an hour ago (or now when `fresh`).
    async fn connect_at(&self, conn: &str, room: &str, user: &str, fresh: bool) -> u16 {
        let now_ms = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let at = if fresh { now_ms } else { now_ms - 3_600_000 };
        let mut ctx = context(conn, "$connect", "CONNECT", at);
        ctx["authorizer"] = json!({"principalId": user});
        let event = WebSocketEvent::try_from(json!({
            "requestContext": ctx, "queryStringParameters": {"room": room}, "isBase64Encoded": false
        }))
        .unwrap();
        self.chat.handle(&event, None).await.status_code
    }

    async fn connect(&self, conn: &str, room: &str, user: &str) -> u16 {
        self.connect_at(conn, room, user, false).await
    }

    async fn disconnect(&self, conn: &str) {
        let mut ctx = context(conn, "$disconnect", "DISCONNECT", 1_700_000_000_000);
        ctx["disconnectStatusCode"] = json!(1006);
        let event =
            WebSocketEvent::try_from(json!({"requestContext": ctx, "isBase64Encoded": false}))
                .unwrap();
        assert_eq!(self.chat.handle(&event, None).await.status_code, 200);
    }

    async fn say(&self, conn: &str, body: Value) -> Value {
        let event = WebSocketEvent::try_from(json!({
            "requestContext": context(conn, "$default", "MESSAGE", 1_700_000_000_000),
            "body": body.to_string(), "isBase64Encoded": false
        }))
        .unwrap();
        let response = self.chat.handle(&event, None).await;
        serde_json::from_str(response.body.as_deref().unwrap_or("null")).unwrap()
    }

    /// The presence events `conn` received: (event, room, [(memberId, connections)]).
    fn presence(&self, conn: &str) -> Vec<Seen> {
        self.sender
            .messages(&ConnectionId::new(conn).unwrap())
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap())
            .filter(|v| v["type"] == "presence")
            .map(|v| {
                let mut members: Vec<(String, u64)> = v["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["memberId"].as_str().unwrap().to_owned(),
                            m["connections"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                members.sort();
                (
                    v["event"].as_str().unwrap().to_owned(),
                    v["room"].as_str().unwrap().to_owned(),
                    members,
                )
            })
            .collect()
    }
}

/// An expected event; every member here is a user, `memberId` `user:<name>`.
fn ev(event: &str, room: &str, members: &[(&str, u64)]) -> Seen {
    (
        event.to_owned(),
        room.to_owned(),
        members
            .iter()
            .map(|(m, n)| (format!("user:{m}"), *n))
            .collect(),
    )
}

#[tokio::test]
async fn connect_and_disconnect_announce_to_the_others_only() {
    let app = App::new(ChatConfig::default());
    assert_eq!(app.connect("alice1=", "general", "alice").await, 200);
    assert_eq!(app.connect("bob1=", "general", "bob").await, 200);
    assert!(
        app.presence("bob1=").is_empty(),
        "never posted to the connecting client"
    );
    assert_eq!(
        app.presence("alice1="),
        [ev("joined", "general", &[("bob", 1)])]
    );

    // bob opens a second tab: one member, nothing announced; closing it announces nothing
    app.connect("bob2=", "general", "bob").await;
    app.disconnect("bob2=").await;
    assert_eq!(app.presence("alice1=").len(), 1);

    app.disconnect("bob1=").await;
    assert_eq!(
        app.presence("alice1="),
        [
            ev("joined", "general", &[("bob", 1)]),
            ev("left", "general", &[("bob", 0)])
        ]
    );
}

#[tokio::test]
async fn join_and_leave_announce_and_members_answers_the_snapshot() {
    let app = App::new(ChatConfig::default());
    app.connect("alice1=", "general", "alice").await;
    app.connect("bob1=", "general", "bob").await;
    app.connect("bob2=", "general", "bob").await;
    assert_eq!(
        app.say("bob1=", json!({"action": "join", "room": "games"}))
            .await["type"],
        "joined"
    );
    assert_eq!(
        app.say("alice1=", json!({"action": "join", "room": "games"}))
            .await["type"],
        "joined"
    );
    assert_eq!(
        app.presence("bob1="),
        [ev("joined", "games", &[("alice", 1)])]
    );

    let snapshot = app
        .say("bob1=", json!({"action": "members", "room": "general"}))
        .await;
    assert_eq!(
        (&snapshot["type"], &snapshot["event"]),
        (&json!("presence"), &json!("members"))
    );
    let mut listed: Vec<(String, u64)> = snapshot["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["memberId"].as_str().unwrap().to_owned(),
                m["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [("user:alice".to_owned(), 1), ("user:bob".to_owned(), 2)]
    );

    assert_eq!(
        app.say("alice1=", json!({"action": "leave", "room": "games"}))
            .await["type"],
        "left"
    );
    assert_eq!(
        app.presence("bob1=").last().unwrap(),
        &ev("left", "games", &[("alice", 0)])
    );
}

#[tokio::test]
async fn a_sends_gone_cleanup_announces_departures_and_spares_connecting_clients() {
    let app = App::new(ChatConfig::default());
    app.connect("alice1=", "general", "alice").await;
    app.connect("bob1=", "general", "bob").await;
    app.connect("ghost1=", "general", "ghost").await;
    app.say("ghost1=", json!({"action": "join", "room": "attic"}))
        .await;
    app.connect("zed1=", "general", "zed").await;
    app.say("zed1=", json!({"action": "join", "room": "attic"}))
        .await;
    // carol is in the middle of her $connect: her record is there, API Gateway answers 410
    app.connect_at("carol1=", "general", "carol", true).await;
    for gone in ["ghost1=", "carol1="] {
        app.sender.set_gone(&ConnectionId::new(gone).unwrap());
    }
    app.sender.clear();

    let sent = app
        .say(
            "alice1=",
            json!({"action": "send", "room": "general", "message": "anyone?"}),
        )
        .await;
    assert_eq!(sent["delivered"], 2, "{sent}");
    let general = RoomId::new("general").unwrap();
    let carol = ConnectionId::new("carol1=").unwrap();
    assert!(
        app.store
            .membership(&carol, &general)
            .await
            .unwrap()
            .is_some(),
        "carol is kept"
    );
    let ghost = ConnectionId::new("ghost1=").unwrap();
    assert!(
        app.store.connection_rooms(&ghost).await.unwrap().is_empty(),
        "ghost removed"
    );
    // one "left" per room the ghost was in
    assert_eq!(
        app.presence("bob1="),
        [ev("left", "general", &[("ghost", 0)])]
    );
    assert_eq!(
        app.presence("zed1="),
        [
            ev("left", "attic", &[("ghost", 0)]),
            ev("left", "general", &[("ghost", 0)])
        ]
    );
}

#[tokio::test]
async fn presence_max_room_size_turns_announcements_off() {
    let mut config = ChatConfig::default();
    config.presence_max_room_size = Some(1);
    let app = App::new(config);
    app.connect("alice1=", "general", "alice").await;
    // An announcement to 1 connection (the one entering is not counted): sent.
    app.connect("bob1=", "general", "bob").await;
    // To 2 (alice, bob), then bob's departure to 2 (alice, carol): above 1, withheld.
    app.connect("carol1=", "general", "carol").await;
    app.disconnect("bob1=").await;
    assert_eq!(
        app.presence("alice1="),
        [ev("joined", "general", &[("bob", 1)])],
        "rooms of more than 1 recipient: no announcements"
    );
    assert!(app.presence("carol1=").is_empty());
}
