//! `SigV4Sender` beyond the fault suite: its credentials cache, delivery to real WebSocket
//! clients through the local gateway, and MiniStack's management API.
#![cfg(all(feature = "apigw", feature = "lambda"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::credential_fn::provide_credentials_fn;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use futures_util::StreamExt;
use stateless_ws::broadcast::{ConnectionSender, Payload, SigV4Sender, Target};
use stateless_ws::lambda::{self, Context, RouteHandler};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, InMemoryStore};
use stateless_ws::{ConnectionId, Error, Membership, RoomId, RouteResponse, WebSocketEvent};
use stateless_ws_local::test_util::FakeManagementApi;
use stateless_ws_local::{LocalGateway, LocalGatewayConfig};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

/// A config whose provider counts its calls, waits 50 ms, and hands out credentials valid for
/// `valid_for` (or fails when `None`).
async fn counting_config(
    calls: Arc<AtomicUsize>,
    valid_for: Option<Duration>,
) -> aws_config::SdkConfig {
    let provider = provide_credentials_fn(move || {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            match valid_for {
                Some(d) => Ok(Credentials::new(
                    "AKID",
                    "secret",
                    Some("token".into()),
                    Some(SystemTime::now() + d),
                    "counting",
                )),
                None => Err(CredentialsError::not_loaded("no credentials in this test")),
            }
        }
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .load()
        .await
}

fn target(id: &str) -> Target {
    Target::new(ConnectionId::new(id).unwrap())
}

/// 50 concurrent posts with an empty cache ask the provider once; later posts use the cache.
#[tokio::test]
async fn credentials_are_fetched_once_for_concurrent_posts_and_cached() {
    let fake = FakeManagementApi::start("prod").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let config = counting_config(Arc::clone(&calls), Some(Duration::from_secs(3600))).await;
    let sender = SigV4Sender::new(&config)
        .unwrap()
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    let payload = Payload::text("hi").unwrap();
    let posts = (0..50).map(|i| {
        let (sender, payload) = (sender.clone(), payload.clone());
        async move { sender.post(&target(&format!("c{i}=")), &payload).await }
    });
    for result in futures_util::future::join_all(posts).await {
        result.unwrap();
    }
    sender.post(&target("later="), &payload).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one provider call");
    assert_eq!(fake.total_deliveries(), 51);
    let request = &fake.requests()[0];
    assert_eq!(request.headers["x-amz-security-token"], "token");
    assert!(
        request.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256 Credential=AKID/")
    );
}

/// Credentials expiring within 5 minutes are replaced before the next request.
#[tokio::test]
async fn credentials_near_expiry_are_refreshed() {
    let fake = FakeManagementApi::start("prod").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let config = counting_config(Arc::clone(&calls), Some(Duration::from_secs(120))).await;
    let sender = SigV4Sender::new(&config)
        .unwrap()
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    for _ in 0..3 {
        sender
            .post(&target("a="), &Payload::text("hi").unwrap())
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// A failing provider is a typed error naming the cause; nothing is sent.
#[tokio::test]
async fn a_failing_credentials_provider_is_a_config_error() {
    let fake = FakeManagementApi::start("prod").await;
    let config = counting_config(Arc::default(), None).await;
    let sender = SigV4Sender::new(&config)
        .unwrap()
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    let err = sender
        .post(&target("a="), &Payload::text("hi").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("credentials provider"), "{err}");
    assert!(fake.requests().is_empty());
}

/// A provider failing while the cached credentials are in their last 5 minutes (not yet
/// expired): the cached ones still sign, and the provider is asked again on each request.
#[tokio::test]
async fn a_failing_refresh_keeps_using_unexpired_credentials() {
    let fake = FakeManagementApi::start("prod").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = provide_credentials_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Ok(Credentials::new(
                    "AKID",
                    "secret",
                    None,
                    Some(SystemTime::now() + Duration::from_secs(120)),
                    "once",
                ))
            } else {
                Err(CredentialsError::provider_timed_out(Duration::from_secs(1)))
            }
        }
    });
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .load()
        .await;
    let sender = SigV4Sender::new(&config)
        .unwrap()
        .with_default_endpoint(&fake.endpoint())
        .unwrap();
    for _ in 0..3 {
        sender
            .post(&target("a="), &Payload::text("hi").unwrap())
            .await
            .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "asked again each time");
    assert_eq!(fake.total_deliveries(), 3);
}

/// Construction errors name what is missing; Display and Debug show no secret.
#[tokio::test]
async fn construction_names_what_is_missing_and_shows_no_secret() {
    let no_region = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let err = SigV4Sender::new(&no_region).unwrap_err();
    assert!(
        matches!(err, Error::Config { .. }) && err.to_string().contains("region"),
        "{err}"
    );
    let no_credentials = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let err = SigV4Sender::new(&no_credentials).unwrap_err();
    assert!(err.to_string().contains("credentials"), "{err}");

    let config = crate::common::local_sdk_config().await;
    let err = SigV4Sender::new(&config)
        .unwrap()
        .with_default_endpoint("https://abc.execute-api.us-east-1.amazonaws.com")
        .unwrap_err();
    assert!(err.to_string().contains("stage"), "{err}");
    let sender = SigV4Sender::new(&config)
        .unwrap()
        .with_default_endpoint("https://abc.execute-api.us-east-1.amazonaws.com/prod/")
        .unwrap();
    assert_eq!(
        sender.to_string(),
        "SigV4Sender(https://abc.execute-api.us-east-1.amazonaws.com/prod)"
    );
    assert_eq!(
        ConnectionSender::default_endpoint(&sender),
        Some("https://abc.execute-api.us-east-1.amazonaws.com/prod")
    );
    let debug = format!("{sender:?}");
    assert!(
        !debug.contains("test\"") && debug.contains("us-east-1"),
        "{debug}"
    );
    // No default endpoint: the error names the connection.
    let err = SigV4Sender::new(&config)
        .unwrap()
        .post(&target("x="), &Payload::text("hi").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("x="), "{err}");
}

/// `$connect` joins the lobby; `$disconnect` removes the connection.
fn lobby_routes(store: &Arc<InMemoryStore>) -> (impl RouteHandler, impl RouteHandler) {
    let s = Arc::clone(store);
    let connect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let store = Arc::clone(&s);
        async move {
            let WebSocketEvent::Connect(connect) = event else {
                return Ok(RouteResponse::error(400, "not a connect"));
            };
            let record = Membership::for_connect(&connect, RoomId::new("lobby").unwrap()).unwrap();
            store.join(&record).await.unwrap();
            Ok(RouteResponse::ok())
        }
    });
    let s = Arc::clone(store);
    let disconnect = lambda::service(move |event: WebSocketEvent, _: Context| {
        let store = Arc::clone(&s);
        async move {
            store.disconnect(event.connection_id()).await.unwrap();
            Ok(RouteResponse::ok())
        }
    });
    (connect, disconnect)
}

/// A real WebSocket client behind the local gateway gets what the lean sender posts; GET
/// describes it; DELETE closes it; a closed connection answers 410 → `Gone`.
#[tokio::test]
async fn the_lean_sender_delivers_through_the_local_gateway() {
    let store = Arc::new(InMemoryStore::new());
    let (connect, disconnect) = lobby_routes(&store);
    let gateway = LocalGateway::new(LocalGatewayConfig::default())
        .route("$connect", connect)
        .route("$disconnect", disconnect)
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sender = SigV4Sender::new(&crate::common::local_sdk_config().await)
        .unwrap()
        .with_default_endpoint(&gateway.management_endpoint())
        .unwrap();
    let (mut alice, _) = connect_async(gateway.ws_url()).await.unwrap();
    let (bob, _) = connect_async(gateway.ws_url()).await.unwrap();
    let lobby = RoomId::new("lobby").unwrap();
    let ids: Vec<ConnectionId> = store
        .room_connections(&lobby)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.connection_id)
        .collect();
    assert_eq!(ids.len(), 2);

    // Which id is alice's: post to both and see which message she gets.
    for (i, id) in ids.iter().enumerate() {
        sender
            .post(
                &Target::new(id.clone()),
                &Payload::text(format!("hello {i} ✓")).unwrap(),
            )
            .await
            .unwrap();
    }
    let got = loop {
        match tokio::time::timeout(WAIT, alice.next()).await.unwrap() {
            Some(Ok(Message::Text(text))) => break text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    };
    let index: usize = got
        .strip_prefix("hello ")
        .and_then(|r| r.strip_suffix(" ✓"))
        .unwrap()
        .parse()
        .unwrap();
    let (alice_id, bob_id) = (ids[index].clone(), ids[1 - index].clone());
    let info = sender.get(&Target::new(alice_id.clone())).await.unwrap();
    assert!(info.connected_at.is_some(), "{info:?}");

    // bob closes: his connection is gone for the management API.
    drop(bob);
    tokio::time::timeout(WAIT, async {
        while gateway.connection_count() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("bob's connection closed");
    let err = sender
        .post(&Target::new(bob_id), &Payload::text("late").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Gone { .. }), "{err:?}");

    // DELETE closes alice's connection.
    sender.delete(&Target::new(alice_id.clone())).await.unwrap();
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match alice.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "alice's socket closed after DELETE");
    assert!(matches!(
        sender.get(&Target::new(alice_id)).await,
        Err(Error::Gone { .. })
    ));
    gateway.shutdown().await;
}

/// MiniStack's management API (`/_aws/execute-api/{apiId}/{stage}`): POST, GET and DELETE to an
/// unknown connection are `Gone` for both senders.
#[tokio::test]
async fn ministack_answers_gone_for_unknown_connections_to_both_senders() {
    let Some(endpoint) = crate::common::dynamodb_endpoint(
        "ministack_answers_gone_for_unknown_connections_to_both_senders",
    ) else {
        return;
    };
    let endpoint = format!(
        "{}/_aws/execute-api/noapi1/prod",
        endpoint.trim_end_matches('/')
    );
    let senders = crate::both_senders(&endpoint).await;
    let unknown = target("abcdef0123456789");
    for (name, sender) in senders {
        let post = sender.post(&unknown, &Payload::text("x").unwrap()).await;
        assert!(
            matches!(post, Err(Error::Gone { .. })),
            "{name} POST: {post:?}"
        );
        let get = sender.get(&unknown).await;
        assert!(
            matches!(get, Err(Error::Gone { .. })),
            "{name} GET: {get:?}"
        );
        let delete = sender.delete(&unknown).await;
        assert!(
            matches!(delete, Err(Error::Gone { .. })),
            "{name} DELETE: {delete:?}"
        );
    }
}
