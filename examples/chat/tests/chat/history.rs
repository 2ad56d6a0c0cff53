//! The chat with a message log (issue 19): `send` publishes envelopes with offsets, `resume`
//! posts `room.history` pages to the caller — and without a log, `resume` is refused and `send`
//! is unchanged. On the in-memory store and `InMemoryLog`, through [`Chat::handle`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chat::{Chat, ChatConfig};
use serde_json::{Value, json};
use stateless_ws::broadcast::RecordingSender;
use stateless_ws::history::{InMemoryLog, LogConfig, MessageLog};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::test_util::{InstrumentedStore, StoreOp};
use stateless_ws::{ConnectionId, Error, RouteResponse, WebSocketEvent};

const DOMAIN: &str = "abc123.execute-api.eu-west-1.amazonaws.com";

fn connect_event(conn: &str, room: &str, user: &str) -> WebSocketEvent {
    WebSocketEvent::try_from(json!({
        "requestContext": {
            "routeKey": "$connect", "eventType": "CONNECT", "connectionId": conn,
            "domainName": DOMAIN, "stage": "prod", "apiId": "abc123",
            "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64,
            "authorizer": {"principalId": user}
        },
        "queryStringParameters": {"room": room},
        "isBase64Encoded": false
    }))
    .unwrap()
}

fn message_event(conn: &str, body: &Value) -> WebSocketEvent {
    WebSocketEvent::try_from(json!({
        "requestContext": {
            "routeKey": "$default", "eventType": "MESSAGE", "connectionId": conn, "messageId": "m1",
            "domainName": DOMAIN, "stage": "prod", "messageDirection": "IN",
            "connectedAt": 1_700_000_000_000_i64, "requestTimeEpoch": 1_700_000_000_000_i64
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    }))
    .unwrap()
}

struct App {
    chat: Chat,
    sender: RecordingSender,
    store: Arc<InstrumentedStore>,
}

impl App {
    fn new(log: Option<Arc<dyn MessageLog>>) -> Self {
        let store = Arc::new(InstrumentedStore::new(Arc::new(InMemoryStore::new())));
        let sender = RecordingSender::new();
        let mut chat = Chat::new(
            store.clone(),
            Arc::new(sender.clone()),
            ChatConfig::default(),
        );
        if let Some(log) = log {
            chat = chat.with_log(log);
        }
        Self {
            chat,
            sender,
            store,
        }
    }

    fn with_log() -> Self {
        Self::new(Some(Arc::new(InMemoryLog::new())))
    }

    async fn connect(&self, conn: &str, room: &str, user: &str) {
        let resp = self
            .chat
            .handle(&connect_event(conn, room, user), None)
            .await;
        assert_eq!(resp.status_code, 200, "{resp:?}");
    }

    async fn say(&self, conn: &str, body: Value) -> RouteResponse {
        self.chat.handle(&message_event(conn, &body), None).await
    }

    async fn send(&self, conn: &str, room: &str, text: &str) -> Value {
        let resp = self
            .say(
                conn,
                json!({"action": "send", "room": room, "message": text}),
            )
            .await;
        assert_eq!(resp.status_code, 200, "{resp:?}");
        resp.body_json()
    }

    /// What `conn` received, presence events aside.
    fn inbox(&self, conn: &str) -> Vec<Value> {
        self.sender
            .messages(&ConnectionId::new(conn).unwrap())
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap())
            .filter(|v| v["type"] != "presence")
            .collect()
    }
}

fn error_message(resp: &RouteResponse) -> String {
    let body = resp.body_json();
    assert_eq!(body["type"], "error", "{body}");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn send_with_a_log_delivers_envelopes_with_offsets_and_answers_them() {
    let app = App::with_log();
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;

    let mut epochs = Vec::new();
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let answer = app.send("alice", "lobby", text).await;
        assert_eq!(answer["type"], "sent", "{answer}");
        assert_eq!(answer["delivered"], 1);
        assert_eq!(answer["offset"], i + 1);
        epochs.push(answer["epoch"].as_str().unwrap().to_owned());
    }
    assert!(
        epochs.iter().all(|e| *e == epochs[0]),
        "one epoch: {epochs:?}"
    );

    let inbox = app.inbox("bob");
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    for (i, (envelope, text)) in inbox.iter().zip(["one", "two", "three"]).enumerate() {
        assert_eq!(envelope["type"], "room.message");
        assert_eq!(envelope["room"], "lobby");
        assert_eq!(envelope["offset"], i + 1);
        assert_eq!(envelope["epoch"], epochs[0]);
        assert!(
            envelope["id"].is_string() && envelope["at"].is_u64(),
            "{envelope}"
        );
        // `data` is the message the chat sends without a log.
        assert_eq!(
            envelope["data"],
            json!({"type": "message", "room": "lobby", "userId": "alice-id", "message": text})
        );
    }
    assert!(
        app.inbox("alice").is_empty(),
        "the sender is still excluded"
    );
}

#[tokio::test]
async fn resume_posts_the_missed_messages_as_a_history_page() {
    let app = App::with_log();
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;
    let first = app.send("alice", "lobby", "one").await;
    let epoch = first["epoch"].clone();
    app.send("alice", "lobby", "two").await;
    app.send("alice", "lobby", "three").await;

    // Bob saw offset 1 only.
    let resp = app
        .say(
            "bob",
            json!({"action": "resume", "room": "lobby", "epoch": epoch, "offset": 1}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{resp:?}");
    assert_eq!(
        resp.body_json(),
        json!({"type": "resumed", "room": "lobby", "pages": 1, "messages": 2,
               "recovered": true, "more": false})
    );
    let page = app.inbox("bob").pop().unwrap();
    assert_eq!(page["type"], "room.history", "{page}");
    assert_eq!(page["room"], "lobby");
    assert_eq!(page["recovered"], true);
    assert_eq!(page["more"], false);
    let messages = page["messages"].as_array().unwrap();
    let offsets: Vec<_> = messages.iter().map(|m| m["offset"].clone()).collect();
    assert_eq!(offsets, [json!(2), json!(3)]);
    let texts: Vec<_> = messages
        .iter()
        .map(|m| m["data"]["message"].clone())
        .collect();
    assert_eq!(texts, [json!("two"), json!("three")]);

    // A client with nothing yet: epoch null, offset 0 — the whole history, recovered.
    let resp = app
        .say(
            "alice",
            json!({"action": "resume", "room": "lobby", "epoch": null, "offset": 0}),
        )
        .await;
    assert_eq!(resp.body_json()["messages"], 3, "{resp:?}");
}

#[tokio::test]
async fn resume_with_another_epoch_is_not_recovered() {
    let app = App::with_log();
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;
    app.send("alice", "lobby", "one").await;
    app.send("alice", "lobby", "two").await;

    let resp = app
        .say(
            "bob",
            json!({"action": "resume", "room": "lobby", "epoch": "not-this-one", "offset": 1}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{resp:?}");
    let answer = resp.body_json();
    assert_eq!(answer["recovered"], false, "{answer}");
    let page = app.inbox("bob").pop().unwrap();
    assert_eq!(page["type"], "room.history");
    assert_eq!(page["recovered"], false);
    // From the oldest message kept, under the room's epoch, for the client to reload.
    assert_eq!(page["messages"][0]["offset"], 1, "{page}");
}

#[tokio::test]
async fn resume_is_refused_for_a_room_not_joined() {
    let app = App::with_log();
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("eve", "elsewhere", "eve-id").await;
    app.send("alice", "lobby", "secret").await;

    let resp = app
        .say(
            "eve",
            json!({"action": "resume", "room": "lobby", "epoch": null, "offset": 0}),
        )
        .await;
    assert_eq!(resp.status_code, 403, "{resp:?}");
    assert!(error_message(&resp).contains("not in room `lobby`"));
    assert!(
        app.inbox("eve").is_empty(),
        "nothing of the room was posted"
    );
}

#[tokio::test]
async fn resume_input_is_validated_naming_the_field() {
    let app = App::with_log();
    app.connect("bob", "lobby", "bob-id").await;
    let cases = [
        (
            json!({"action": "resume", "room": "lobby", "offset": -1}),
            "`offset`",
        ),
        (
            json!({"action": "resume", "room": "lobby", "offset": 1.5}),
            "`offset`",
        ),
        (
            json!({"action": "resume", "room": "lobby", "offset": "3"}),
            "`offset`",
        ),
        (json!({"action": "resume", "room": "lobby"}), "`offset`"),
        (
            json!({"action": "resume", "room": "lobby", "epoch": 7, "offset": 0}),
            "`epoch`",
        ),
        (
            json!({"action": "resume", "room": "lobby", "epoch": "", "offset": 0}),
            "`epoch`",
        ),
        (
            json!({"action": "resume", "room": "lobby", "epoch": "x".repeat(65), "offset": 0}),
            "`epoch`",
        ),
        (json!({"action": "resume", "offset": 0}), "`room`"),
    ];
    for (body, field) in cases {
        let resp = app.say("bob", body.clone()).await;
        assert_eq!(resp.status_code, 400, "{body}: {resp:?}");
        let message = error_message(&resp);
        assert!(message.contains(field), "{body}: {message}");
    }
    // A missing epoch is null.
    let resp = app
        .say(
            "bob",
            json!({"action": "resume", "room": "lobby", "offset": 0}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{resp:?}");
}

#[tokio::test]
async fn an_append_that_fails_answers_an_error_and_sends_nothing() {
    let mut config = LogConfig::default();
    config.max_message_bytes = 400;
    let app = App::new(Some(Arc::new(InMemoryLog::with_config(config).unwrap())));
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;

    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": "lobby", "message": "x".repeat(300)}),
        )
        .await;
    assert_eq!(resp.status_code, 400, "{resp:?}");
    assert!(error_message(&resp).contains("`message`"));
    assert!(app.inbox("bob").is_empty(), "nothing sent");
    // The log took no offset: the next message is offset 1.
    assert_eq!(app.send("alice", "lobby", "short").await["offset"], 1);
}

/// The room cannot be read once the message is logged: the sender is told it is kept (with its
/// offset) and not to send it again, and the members get it by resuming.
#[tokio::test]
async fn a_logged_message_whose_fan_out_cannot_start_is_answered_as_logged() {
    let app = App::with_log();
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;
    app.store.fail_next(StoreOp::RoomPage, 1, || Error::Store {
        backend: "test".into(),
        source: "ProvisionedThroughputExceededException".into(),
    });

    let resp = app
        .say(
            "alice",
            json!({"action": "send", "room": "lobby", "message": "kept"}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{resp:?}");
    let answer = resp.body_json();
    assert_eq!(
        (&answer["type"], &answer["offset"]),
        (&json!("logged"), &json!(1)),
        "{answer}"
    );
    assert!(
        !answer["message"].as_str().unwrap().contains("Provisioned"),
        "the service's error stays in the log, not in the answer: {answer}"
    );
    assert!(app.inbox("bob").is_empty(), "nothing was sent");

    let resp = app
        .say(
            "bob",
            json!({"action": "resume", "room": "lobby", "epoch": answer["epoch"], "offset": 0}),
        )
        .await;
    assert_eq!(resp.status_code, 200, "{resp:?}");
    let page = &app.inbox("bob")[0];
    assert_eq!(page["type"], "room.history", "{page}");
    assert_eq!(page["messages"][0]["data"]["message"], "kept");
    // The next message takes offset 2: the first was logged once.
    assert_eq!(app.send("alice", "lobby", "next").await["offset"], 2);
}

#[tokio::test]
async fn without_a_log_resume_is_refused_and_send_is_unchanged() {
    let app = App::new(None);
    assert!(app.chat.log().is_none());
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;

    let answer = app.send("alice", "lobby", "hello").await;
    assert_eq!(
        answer,
        json!({"type": "sent", "room": "lobby", "delivered": 1, "failed": 0})
    );
    assert_eq!(
        app.inbox("bob"),
        [json!({"type": "message", "room": "lobby", "userId": "alice-id", "message": "hello"})]
    );

    let resp = app
        .say(
            "bob",
            json!({"action": "resume", "room": "lobby", "epoch": null, "offset": 0}),
        )
        .await;
    assert_eq!(resp.status_code, 400, "{resp:?}");
    assert!(error_message(&resp).contains("no message history"));
    assert_eq!(app.inbox("bob").len(), 1, "nothing more posted");
}

#[tokio::test]
async fn a_gone_member_is_still_cleaned_up_when_publishing() {
    let app = App::with_log();
    app.connect("alice", "lobby", "alice-id").await;
    app.connect("bob", "lobby", "bob-id").await;
    app.connect("carol", "lobby", "carol-id").await;
    app.sender.set_gone(&ConnectionId::new("bob").unwrap());

    let answer = app.send("alice", "lobby", "hi").await;
    assert_eq!(answer["offset"], 1, "{answer}");
    assert_eq!(answer["delivered"], 1, "carol only: {answer}");
    let members = app
        .chat
        .store()
        .room_connections(&stateless_ws::RoomId::new("lobby").unwrap())
        .await
        .unwrap();
    assert!(
        members.iter().all(|m| m.connection_id != "bob"),
        "bob's record was removed"
    );
    let left = app
        .sender
        .messages(&ConnectionId::new("carol").unwrap())
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap())
        .any(|v| v["type"] == "presence" && v["event"] == "left");
    assert!(left, "carol was told bob left");
}

#[tokio::test]
async fn a_queued_room_gets_the_envelope_through_the_workers() {
    use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue};
    use stateless_ws::{Membership, RoomId};

    let store = Arc::new(InstrumentedStore::new(Arc::new(InMemoryStore::new())));
    let sender = RecordingSender::new();
    let queue = Arc::new(InMemoryQueue::new());
    let mut config = ChatConfig::default();
    config.queue_above = Some(0);
    for conn in ["alice", "bob"] {
        let member = Membership::new(
            ConnectionId::new(conn).unwrap(),
            RoomId::new("lobby").unwrap(),
        );
        store.join(&member).await.unwrap();
    }
    let chat = Chat::new(store.clone(), Arc::new(sender.clone()), config)
        .with_queue(FanoutPlanner::new(store.clone(), queue.clone()))
        .with_log(Arc::new(InMemoryLog::new()));
    let app = App {
        chat,
        sender,
        store,
    };

    // Records and an event without an endpoint (as in queued.rs): a worker refuses targets on
    // endpoints it does not serve, and this one is set up to serve none in particular.
    let body = json!({"action": "send", "room": "lobby", "message": "hi"}).to_string();
    let event = WebSocketEvent::Message(stateless_ws::event::MessageEvent::new(
        ConnectionId::new("alice").unwrap(),
        body,
    ));
    let answer = app.chat.handle(&event, None).await.body_json();
    assert_eq!(
        (&answer["type"], &answer["offset"]),
        (&json!("queued"), &json!(1)),
        "{answer}"
    );
    assert!(answer["epoch"].is_string(), "{answer}");
    let worker = FanoutWorker::new(app.chat.broadcaster().clone(), queue.clone());
    let pool = queue.spawn_workers(&worker, 1);
    queue.wait_until_empty().await;
    pool.shutdown().await;
    let inbox = app.inbox("bob");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0]["type"], "room.message");
    assert_eq!(inbox[0]["offset"], 1);
    assert_eq!(inbox[0]["data"]["message"], "hi");
}

/// Real WebSocket clients through the local gateway: a client that was away resumes and gets
/// what it missed, posted to it during its own `resume` route.
mod through_the_local_gateway {
    use std::time::Duration;

    use chat::{Chat, ChatConfig, IdentitySource};
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use stateless_ws::broadcast::ApiGatewaySender;
    use stateless_ws::history::InMemoryLog;
    use stateless_ws::lambda::{self, Context};
    use stateless_ws::store::InMemoryStore;
    use stateless_ws::{Error, WebSocketEvent};
    use stateless_ws_local::{LocalGateway, LocalGatewayConfig, RunningGateway};
    use std::sync::Arc;
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

    use crate::common;

    type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

    const WAIT: Duration = Duration::from_secs(10);

    async fn start() -> RunningGateway {
        let store = Arc::new(InMemoryStore::new());
        let sender = ApiGatewaySender::new(&common::local_sdk_config().await);
        let mut config = ChatConfig::default();
        config.identity = IdentitySource::InsecureQueryString {
            param: "userId".into(),
        };
        let chat = Arc::new(
            Chat::new(store, Arc::new(sender), config).with_log(Arc::new(InMemoryLog::new())),
        );
        let on_event = lambda::service(move |event: WebSocketEvent, context: Context| {
            let chat = chat.clone();
            async move { Ok::<_, Error>(chat.handle(&event, lambda::deadline(&context)).await) }
        });
        LocalGateway::new(LocalGatewayConfig::default())
            .default_handler(on_event)
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    async fn client(gateway: &RunningGateway, query: &str) -> Client {
        connect_async(format!("{}?{query}", gateway.ws_url()))
            .await
            .unwrap()
            .0
    }

    /// The next message that is not a presence event.
    async fn next_json(ws: &mut Client) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("a message in time")
                .unwrap()
                .unwrap();
            if let Message::Text(text) = msg {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] != "presence" {
                    return value;
                }
            }
        }
    }

    async fn send(ws: &mut Client, body: Value) {
        ws.send(Message::text(body.to_string())).await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_was_away_resumes_what_it_missed() {
        let gateway = start().await;
        let mut alice = client(&gateway, "room=general&userId=alice").await;
        let mut bob = client(&gateway, "room=general&userId=bob").await;

        let mut epoch = Value::Null;
        for (i, text) in ["one", "two"].into_iter().enumerate() {
            send(
                &mut alice,
                json!({"action": "send", "room": "general", "message": text}),
            )
            .await;
            let ack = next_json(&mut alice).await;
            assert_eq!(
                (&ack["type"], &ack["offset"]),
                (&json!("sent"), &json!(i + 1))
            );
            epoch = ack["epoch"].clone();
            let envelope = next_json(&mut bob).await;
            assert_eq!(envelope["type"], "room.message", "{envelope}");
            assert_eq!(envelope["data"]["message"], text);
        }

        // Bob goes away; two messages are sent meanwhile.
        bob.close(None).await.unwrap();
        drop(bob);
        for text in ["three", "four"] {
            send(
                &mut alice,
                json!({"action": "send", "room": "general", "message": text}),
            )
            .await;
            assert_eq!(next_json(&mut alice).await["type"], "sent");
        }

        // Bob is back on a new connection and resumes from offset 2.
        let mut bob = client(&gateway, "room=general&userId=bob").await;
        send(
            &mut bob,
            json!({"action": "resume", "room": "general", "epoch": epoch, "offset": 2}),
        )
        .await;
        let (mut page, mut answer) = (None, None);
        for _ in 0..2 {
            let value = next_json(&mut bob).await;
            match value["type"].as_str() {
                Some("room.history") => page = Some(value),
                Some("resumed") => answer = Some(value),
                _ => panic!("unexpected {value}"),
            }
        }
        let (page, answer) = (page.unwrap(), answer.unwrap());
        assert_eq!(
            answer,
            json!({"type": "resumed", "room": "general", "pages": 1, "messages": 2,
                   "recovered": true, "more": false})
        );
        let texts: Vec<_> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["offset"].clone(), m["data"]["message"].clone()))
            .collect();
        assert_eq!(
            texts,
            [(json!(3), json!("three")), (json!(4), json!("four"))]
        );
        gateway.shutdown().await;
    }
}
