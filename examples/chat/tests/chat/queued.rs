//! `send` through the fan-out queue: a room above `queue_above` is answered "queued" at once
//! and delivered by the workers; a smaller room is still sent to in-line.

use std::sync::Arc;

use chat::{Chat, ChatConfig};
use serde_json::{Value, json};
use stateless_ws::broadcast::RecordingSender;
use stateless_ws::event::MessageEvent;
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Membership, RoomId, WebSocketEvent};

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

async fn send(chat: &Chat, from: &str, room: &str) -> Value {
    let body = json!({"action": "send", "room": room, "message": "hi"}).to_string();
    let event = WebSocketEvent::Message(MessageEvent::new(id(from), body));
    chat.handle(&event, None).await.body_json()
}

#[tokio::test]
async fn large_rooms_are_queued_and_small_ones_sent_in_line() {
    let store = Arc::new(InMemoryStore::new().with_page_size(2));
    for (room, n) in [("big", 6), ("small", 3)] {
        let room = RoomId::new(room).unwrap();
        for i in 0..n {
            let member = Membership::new(id(&format!("{room}{i}=")), room.clone());
            store.join(&member).await.unwrap();
        }
    }
    let sender = RecordingSender::new();
    let queue = Arc::new(InMemoryQueue::new());
    let mut config = ChatConfig::default();
    config.queue_above = Some(2);
    let chat = Chat::new(store.clone(), Arc::new(sender.clone()), config)
        .with_queue(FanoutPlanner::new(store, queue.clone()));

    let answer = send(&chat, "big0=", "big").await;
    assert_eq!(
        answer,
        json!({"type": "queued", "room": "big", "targets": 5, "jobs": 1})
    );
    assert_eq!(
        sender.total_delivered(),
        0,
        "nothing is sent before a worker runs"
    );
    let answer = send(&chat, "small0=", "small").await;
    assert_eq!(answer["type"], "sent");
    assert_eq!(answer["delivered"], 2);

    let worker = FanoutWorker::new(chat.broadcaster().clone(), queue.clone());
    let pool = queue.spawn_workers(&worker, 2);
    queue.wait_until_empty().await;
    pool.shutdown().await;
    for i in 1..6 {
        let got: Value =
            serde_json::from_str(&sender.messages(&id(&format!("big{i}=")))[0]).unwrap();
        assert_eq!(got["message"], "hi");
    }
    assert!(
        sender.messages(&id("big0=")).is_empty(),
        "not to the sender"
    );
}

#[tokio::test]
async fn queue_above_zero_queues_every_room() {
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("r").unwrap();
    for c in ["a=", "b="] {
        store
            .join(&Membership::new(id(c), room.clone()))
            .await
            .unwrap();
    }
    let queue = Arc::new(InMemoryQueue::new());
    let mut config = ChatConfig::default();
    config.queue_above = Some(0);
    let chat = Chat::new(store.clone(), Arc::new(RecordingSender::new()), config)
        .with_queue(FanoutPlanner::new(store, queue.clone()));
    assert_eq!(send(&chat, "a=", "r").await["type"], "queued");
    assert_eq!(queue.len(), 1);
}
