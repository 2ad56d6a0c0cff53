//! The real `ApiGatewaySender` (SDK client, SigV4, HTTP) against a loopback server posing as the
//! management API, and the broadcaster over both stores.
#![cfg(all(feature = "apigw", feature = "dynamodb"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, ConnectionSender, Payload, Target};
use stateless_ws::store::{ConnectionStore, InMemoryStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId, UserId};
use stateless_ws_local::test_util::FakeManagementApi;

fn id(s: &str) -> ConnectionId {
    ConnectionId::new(s).unwrap()
}

async fn sender_for(fake: &FakeManagementApi) -> ApiGatewaySender {
    ApiGatewaySender::new(&common::local_sdk_config().await)
        .with_default_endpoint(&fake.endpoint())
        .unwrap()
}

#[tokio::test]
async fn posts_are_signed_encoded_once_and_carry_the_body_unchanged() {
    let fake = FakeManagementApi::start("prod").await;
    let sender = sender_for(&fake).await;
    let body = "{\"type\":\"message\",\"message\":\"héllo ✓ \\\"quoted\\\" a+b=c\"}";
    let cases = [
        ("L0SM9cOFvHcCIhw=", "L0SM9cOFvHcCIhw%3D"),
        ("ab+cd==", "ab%2Bcd%3D%3D"),
        ("per%cent=", "per%25cent%3D"),
    ];
    for (conn, _) in cases {
        sender
            .post(&Target::new(id(conn)), &Payload::text(body).unwrap())
            .await
            .unwrap();
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    for (request, (conn, encoded)) in requests.iter().zip(cases) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.raw_path, format!("/prod/@connections/{encoded}"));
        assert_eq!(
            request.connection_id, conn,
            "decoding the path once gives the id back"
        );
        assert_eq!(request.body, body.as_bytes(), "body unchanged");
        let auth = request.headers["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=test/"),
            "{auth}"
        );
        assert!(
            auth.contains("/us-east-1/execute-api/aws4_request"),
            "{auth}"
        );
        assert!(request.headers.contains_key("x-amz-date"));
    }
    assert_eq!(
        sender.cached_clients(),
        1,
        "one client for one endpoint, reused"
    );
}

#[tokio::test]
async fn get_and_delete_connection() {
    let fake = FakeManagementApi::start("dev").await;
    let sender = sender_for(&fake).await;
    let target = Target::new(id("abc="));
    let info = sender.get(&target).await.unwrap();
    assert_eq!(info.source_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(info.user_agent.as_deref(), Some("websocat/1.13"));
    let connected = info
        .connected_at
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    assert_eq!(connected.as_secs(), 1_795_687_200, "2026-11-26T10:00:00Z");
    assert!(info.last_active_at.unwrap() > info.connected_at.unwrap());
    sender.delete(&target).await.unwrap();
    assert!(matches!(sender.get(&target).await, Err(Error::Gone { .. })));
    assert!(matches!(
        sender.delete(&target).await,
        Err(Error::Gone { .. })
    ));
    let methods: Vec<String> = fake
        .requests()
        .into_iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(methods, ["GET", "DELETE", "GET", "DELETE"]);
}

#[tokio::test]
async fn gone_answers_make_the_store_lose_those_records() {
    let fake = FakeManagementApi::start("prod").await;
    fake.set_gone("dead-1=");
    fake.set_gone("dead-2=");
    let store = Arc::new(InMemoryStore::new());
    let (room, side) = (RoomId::new("lobby").unwrap(), RoomId::new("side").unwrap());
    for c in ["alive=", "dead-1=", "dead-2="] {
        store
            .join(&Membership::new(id(c), room.clone()))
            .await
            .unwrap();
        store
            .join(&Membership::new(id(c), side.clone()))
            .await
            .unwrap();
    }
    let b = Broadcaster::new(store.clone(), Arc::new(sender_for(&fake).await))
        .with_config(crate::common::without_connect_grace());
    let report = b
        .broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered, [id("alive=")]);
    assert_eq!(report.gone.len(), 2);
    assert_eq!(report.removed.len(), 4);
    for r in [&room, &side] {
        let left: Vec<_> = store
            .room_connections(r)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.connection_id)
            .collect();
        assert_eq!(left, [id("alive=")]);
    }
}

#[tokio::test]
async fn records_naming_an_endpoint_are_delivered_through_it() {
    let (home, eu) = (
        FakeManagementApi::start("prod").await,
        FakeManagementApi::start("eu").await,
    );
    let store = Arc::new(InMemoryStore::new());
    let room = RoomId::new("global").unwrap();
    store
        .join(&Membership::new(id("old="), room.clone()))
        .await
        .unwrap(); // no endpoint: default
    store
        .join(&Membership::new(id("home="), room.clone()).with_endpoint(home.endpoint()))
        .await
        .unwrap();
    store
        .join(&Membership::new(id("eu-1="), room.clone()).with_endpoint(eu.endpoint()))
        .await
        .unwrap();
    store
        .join(&Membership::new(id("eu-2="), room.clone()).with_endpoint(eu.endpoint()))
        .await
        .unwrap();
    let sender = Arc::new(sender_for(&home).await);
    let b = Broadcaster::new(store, sender.clone());
    let report = b
        .broadcast(&room, &Payload::text("hi").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 4);
    let mut at_home: Vec<String> = home
        .requests()
        .into_iter()
        .map(|r| r.connection_id)
        .collect();
    at_home.sort();
    let mut in_eu: Vec<String> = eu.requests().into_iter().map(|r| r.connection_id).collect();
    in_eu.sort();
    assert_eq!(at_home, ["home=", "old="]);
    assert_eq!(in_eu, ["eu-1=", "eu-2="]);
    assert_eq!(sender.cached_clients(), 2, "one cached client per endpoint");
}

#[tokio::test]
async fn an_endpoint_without_stage_is_refused_at_construction() {
    let config = common::local_sdk_config().await;
    let err = ApiGatewaySender::new(&config)
        .with_default_endpoint("https://abc.execute-api.us-east-1.amazonaws.com")
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    assert!(err.to_string().contains("stage"), "{err}");
    // A sender without any endpoint reports which connection it could not route.
    let sender = ApiGatewaySender::new(&config);
    let err = sender
        .post(&Target::new(id("x=")), &Payload::text("hi").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("x="), "{err}");
}

/// Against MiniStack: a user in two rooms is notified once, the sender can be excluded, and a
/// room larger than one DynamoDB page is reached in full; gone connections leave the table.
#[tokio::test]
async fn broadcaster_over_dynamodb() {
    let Some(store) = common::ministack_store("broadcaster_over_dynamodb", "bcast", 7).await else {
        return;
    };
    let store = Arc::new(store);
    let fake = FakeManagementApi::start("prod").await;
    let b = Broadcaster::new(store.clone(), Arc::new(sender_for(&fake).await))
        .with_config(crate::common::without_connect_grace());

    let (a, bb) = (RoomId::new("a").unwrap(), RoomId::new("b").unwrap());
    let alice = UserId::new("alice").unwrap();
    for (conn, room) in [("phone=", &a), ("phone=", &bb), ("laptop=", &a)] {
        store
            .join(&Membership::new(id(conn), room.clone()).with_user(alice.clone()))
            .await
            .unwrap();
    }
    let report = b
        .notify_user(&alice, &Payload::text("bill paid").unwrap())
        .await
        .unwrap();
    assert_eq!(report.delivered.len(), 2, "{report}");
    assert_eq!(
        fake.posts_to("phone=").len(),
        1,
        "a user in two rooms is notified once"
    );
    assert_eq!(fake.posts_to("laptop=").len(), 1);

    let report = b
        .broadcast(
            &a,
            &Payload::text("from phone").unwrap(),
            Some(&id("phone=")),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, [id("laptop=")], "the sender is excluded");

    let big = RoomId::new("big").unwrap();
    for i in 0..60 {
        store
            .join(&Membership::new(id(&format!("m{i}=")), big.clone()))
            .await
            .unwrap();
    }
    for i in 0..5 {
        fake.set_gone(&format!("m{i}="));
    }
    let report = b
        .broadcast(&big, &Payload::text("all").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(report.targets(), 60, "every page of the room is reached");
    assert_eq!(report.delivered.len(), 55);
    assert_eq!(report.gone.len(), 5);
    assert_eq!(report.removed.len(), 5);
    // The room is read through the roomId index, which may lag the deletes (a GSI is
    // eventually consistent): wait for it rather than for a fixed time.
    common::eventually("gone records removed from DynamoDB", async || {
        store.room_connections(&big).await.unwrap().len() == 55
    })
    .await;
}
