//! The whole stateless architecture on one machine: a local API Gateway WebSocket endpoint
//! running the same chat handlers as the Lambda examples, a chat page, and a "billing service"
//! that notifies users from outside any WebSocket event.
//!
//! Run with: `cargo run -p chat` (from the repository root) and open the printed address in two browser tabs.
//!
//! Options:
//! - `--port N` (default 8080; 0 picks a free port; if 8080 is taken a free port is used);
//! - `--dynamodb-endpoint URL` to keep the routing table in a DynamoDB-compatible server (e.g.
//!   MiniStack: `scripts/dynamodb-local.sh start` prints its URL) instead of in memory, with
//!   `--table NAME` (default `ws-local-chat`, created if missing);
//! - `--idle-timeout SECS` (default 600, API Gateway's);
//! - `--queue-above N` (or `CHAT_QUEUE_ABOVE=N`): rooms of more than N members (0: every room)
//!   are fanned out through an in-memory queue drained by `--queue-workers W` (default 2)
//!   in-process workers — the queued path of `lambda_fanout_worker`, without AWS. `send` then
//!   answers `{"type":"queued",…}` and the page shows "queued for N in M jobs".
//! - `--no-history`: no message log. By default every room message is kept in an in-memory
//!   `InMemoryLog` (24 h, 10,000 messages per room) — with `--dynamodb-endpoint`, in the
//!   DynamoDB table `{table}-messages` (`DynamoDbLog`, created if missing) — so `send` answers
//!   its `offset` and `epoch` and a reconnecting client can `resume` (see the `history` module
//!   of `stateless_ws`).
//!
//! - `--grant-key KEY` (or `ROOM_GRANT_KEY`, at least 32 bytes): the key of room grants; by
//!   default a random one per process.
//!
//! The backend's grant endpoint: `curl -X POST 'http://127.0.0.1:8080/grant?room=private-x&userId=alice'`
//! answers `{"room":"private-x","grant":"…","expiresAt":UNIX_SECONDS}`, a signed grant (5
//! minutes) the page sends with its join to enter a `private-*` room (see `ChatRooms`).
//! **Demo mode**: the user is whoever the page says; a real backend issues a grant only to the
//! signed-in user it authenticated, and only for rooms that user may enter.
//!
//! The billing service: `curl -X POST 'http://127.0.0.1:8080/notify?user=alice' -d '{"type":"invoice.paid"}'`
//! pushes the JSON to every connection of `alice` through the management API, exactly as
//! `examples/notify_user.rs` does against AWS, and answers the delivery report.
//!
//! **Demo mode**: the user name comes from the page (query string `userId`), which is not
//! authentication — anyone can pick any name. Deployed, the name comes from an authorizer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chat::{Chat, ChatConfig, ChatRooms, IdentitySource};
use serde_json::{Value, json};
use stateless_ws::broadcast::{ApiGatewaySender, Payload};
use stateless_ws::history::{DynamoDbLog, InMemoryLog, MessageLog};
use stateless_ws::lambda::{self, Context};
use stateless_ws::policy::{GrantKey, RoomGrant, SignedGrants};
use stateless_ws::presence::{Presence, PresenceConfig};
use stateless_ws::queue::{FanoutPlanner, FanoutWorker, InMemoryQueue};
use stateless_ws::store::{ConnectionStore, DynamoDbStore, InMemoryStore};
use stateless_ws::{Error, RoomId, UserId, WebSocketEvent};
use stateless_ws_local::{LocalGateway, LocalGatewayConfig};

const PAGE: &str = include_str!("../../static/index.html");
/// The ES module the page imports (`./resumable.js`): the client side of resumable rooms.
const RESUMABLE_JS: &str = include_str!("../../static/resumable.js");

#[derive(Debug)]
struct Options {
    port: u16,
    dynamodb_endpoint: Option<String>,
    table: String,
    idle_timeout: Duration,
    queue_above: Option<usize>,
    queue_workers: usize,
    history: bool,
    grant_key: Option<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 8080,
        dynamodb_endpoint: None,
        table: "ws-local-chat".to_owned(),
        idle_timeout: Duration::from_secs(600),
        queue_above: None,
        queue_workers: 2,
        history: true,
        grant_key: None,
    };
    if let Some(v) = std::env::var(chat::env::QUEUE_ABOVE)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        options.queue_above = Some(
            v.trim()
                .parse()
                .map_err(|e| format!("{}: {e}", chat::env::QUEUE_ABOVE))?,
        );
    }
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => options.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--dynamodb-endpoint" => options.dynamodb_endpoint = Some(value()?),
            "--table" => options.table = value()?,
            "--idle-timeout" => {
                let secs: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--idle-timeout: {e}"))?;
                options.idle_timeout = Duration::from_secs(secs);
            }
            "--queue-above" => {
                options.queue_above = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--queue-above: {e}"))?,
                );
            }
            "--queue-workers" => {
                options.queue_workers = value()?
                    .parse()
                    .map_err(|e| format!("--queue-workers: {e}"))?;
            }
            "--no-history" => options.history = false,
            "--grant-key" => options.grant_key = Some(value()?),
            "-h" | "--help" => {
                return Err("usage: local_chat [--port N] [--dynamodb-endpoint URL] [--table NAME] [--idle-timeout SECS] [--queue-above N] [--queue-workers W] [--no-history] [--grant-key KEY]".to_owned());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

/// Local-only credentials: the gateway accepts any signature, but the SDK signs every call.
async fn local_sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "local_chat",
        ));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

async fn store(options: &Options) -> Result<Arc<dyn ConnectionStore>, Error> {
    let Some(endpoint) = &options.dynamodb_endpoint else {
        return Ok(Arc::new(InMemoryStore::new()));
    };
    let config = local_sdk_config(Some(endpoint)).await;
    let store = DynamoDbStore::builder()
        .client(aws_sdk_dynamodb::Client::new(&config))
        .table_name(&options.table)
        .build()?;
    store.ensure_table().await?;
    println!(
        "routing table: DynamoDB table {} at {endpoint}",
        options.table
    );
    Ok(Arc::new(store))
}

/// The message history: in memory, or beside the routing table on `--dynamodb-endpoint`.
async fn log(options: &Options) -> Result<Arc<dyn MessageLog>, Error> {
    let Some(endpoint) = &options.dynamodb_endpoint else {
        println!("message history: in memory (--no-history to turn it off)");
        return Ok(Arc::new(InMemoryLog::new()));
    };
    let table = format!("{}-messages", options.table);
    let log = DynamoDbLog::builder()
        .client(aws_sdk_dynamodb::Client::new(
            &local_sdk_config(Some(endpoint)).await,
        ))
        .table_name(&table)
        .build()?;
    log.ensure_table().await?;
    println!("message history: DynamoDB table {table} at {endpoint} (--no-history to turn it off)");
    Ok(Arc::new(log))
}

/// `POST /notify?user=NAME` with a JSON body: the billing service.
async fn notify(
    State(chat): State<Arc<Chat>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: String,
) -> Response {
    let user = match query.get("user").map(|u| UserId::new(u.as_str())) {
        Some(Ok(user)) => user,
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        None => return (StatusCode::BAD_REQUEST, "missing ?user=").into_response(),
    };
    let event: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| json!({"type": "notice", "message": body}));
    let payload = match Payload::json(&event) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match chat.broadcaster().notify_user(&user, &payload).await {
        Ok(report) => Json(json!({
            "user": user,
            "delivered": report.delivered_count,
            "gone": report.gone.len(),
            "failed": report.failed.iter().map(|f| json!({"connectionId": f.connection_id, "error": f.error.to_string()})).collect::<Vec<_>>(),
            "summary": report.to_string(),
        }))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// How long the demo backend's grants last: long enough to join, short enough that a grant
/// copied out of a URL or a log is soon useless.
const GRANT_TTL: Duration = Duration::from_secs(300);

/// `POST /grant?room=NAME&userId=NAME`: the application's backend issuing a room grant.
///
/// **Demo mode**: it signs for whatever user the page names. A real backend takes the user from
/// its own session (never from the request), checks that this user may enter the room, and only
/// then calls `RoomGrant::issue`.
async fn grant(
    State(key): State<GrantKey>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message).into_response();
    let room = match query.get("room").map(|r| RoomId::new(r.as_str())) {
        Some(Ok(room)) => room,
        Some(Err(e)) => return bad(format!("room: {e}")),
        None => return bad("missing ?room=".to_owned()),
    };
    let user = match query.get("userId").map(|u| UserId::new(u.as_str())) {
        Some(Ok(user)) => user,
        Some(Err(e)) => return bad(format!("userId: {e}")),
        None => return bad("missing ?userId=".to_owned()),
    };
    let now = std::time::SystemTime::now();
    match RoomGrant::issue_at(&key, &user, &room, GRANT_TTL, now) {
        Ok(grant) => {
            let expires_at = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + GRANT_TTL.as_secs();
            Json(json!({"room": room, "grant": grant, "expiresAt": expires_at})).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The key of room grants: `--grant-key`, else `ROOM_GRANT_KEY`, else 32 random bytes (hex) —
/// grants then last as long as the process.
fn grant_key(options: &Options) -> Result<GrantKey, Error> {
    let configured = options.grant_key.clone().or_else(|| {
        std::env::var(stateless_ws::env::ROOM_GRANT_KEY)
            .ok()
            .filter(|k| !k.trim().is_empty())
    });
    if let Some(key) = configured {
        return GrantKey::new(key.trim());
    }
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Config {
        message: format!("no random room grant key: {e}; pass --grant-key"),
    })?;
    GrantKey::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The page, the module it imports, the billing service and the grant endpoint, beside the
/// gateway's routes.
fn site(chat: Arc<Chat>, grants: GrantKey) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/resumable.js", get(resumable_js))
        .route("/notify", post(notify))
        .with_state(chat)
        .merge(
            Router::new()
                .route("/grant", post(grant))
                .with_state(grants),
        )
}

/// `GET /resumable.js`: a module script must come with a JavaScript MIME type, or the browser
/// refuses to run it.
async fn resumable_js() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        RESUMABLE_JS,
    )
}

async fn run(options: Options) -> Result<(), Error> {
    let store = store(&options).await?;
    // No default endpoint: each connection's record carries the management endpoint of the
    // gateway that holds it (http://{host}/local), taken from its $connect event.
    let sender = ApiGatewaySender::new(&local_sdk_config(None).await);
    let mut config = ChatConfig::default();
    config.identity = IdentitySource::InsecureQueryString {
        param: "userId".to_owned(),
    };
    config.queue_above = options.queue_above;
    // The chat's room rules (CHAT_PUBLIC_ROOMS, ...), private rooms checked with this process's
    // grant key — the one `/grant` signs with.
    let key = grant_key(&options)?;
    let rooms = ChatRooms::from_env()?.with_grants(SignedGrants::new(key.clone()));
    let mut chat =
        Chat::new(Arc::clone(&store), Arc::new(sender), config).with_room_policy(rooms.policy()?);
    if options.history {
        chat = chat.with_log(log(&options).await?);
    }
    // Queued fan-out: an in-memory queue (SQS's semantics) and workers in this process.
    let mut queued = None;
    if options.queue_above.is_some() {
        let queue = Arc::new(InMemoryQueue::new());
        chat = chat.with_queue(FanoutPlanner::new(Arc::clone(&store), queue.clone()));
        // The worker announces the departures its Gone cleanup finds, as the routes do.
        let mut presence = PresenceConfig::default();
        presence.queue_above = options.queue_above;
        let presence = Presence::new(chat.broadcaster().clone())
            .with_config(presence)
            .with_queue(FanoutPlanner::new(store, queue.clone()));
        let worker =
            FanoutWorker::new(chat.broadcaster().clone(), queue.clone()).with_presence(presence);
        queued = Some((queue, worker));
    }
    let chat = Arc::new(chat);

    // What a Lambda serving every route would run: the library's adapter, called by the gateway
    // with the event as JSON and a `Context` whose deadline bounds the fan-out, as in Lambda.
    let on_event = {
        let chat = Arc::clone(&chat);
        lambda::service(move |event: WebSocketEvent, context: Context| {
            let chat = Arc::clone(&chat);
            async move { Ok(chat.handle(&event, lambda::deadline(&context)).await) }
        })
    };
    let mut gateway_config = LocalGatewayConfig::default();
    gateway_config.idle_timeout = options.idle_timeout;
    let mut gateway = LocalGateway::new(gateway_config).default_handler(on_event.clone());
    // The same routes as examples/chat/template.yaml; selection by `$request.body.action`.
    for route in ["join", "leave", "send", "members", "ping", "resume"] {
        gateway = gateway.route(route, on_event.clone());
    }
    let site = site(Arc::clone(&chat), key);
    let gateway = gateway.merge(site);

    let wanted = SocketAddr::from(([127, 0, 0, 1], options.port));
    let running = match gateway.bind(wanted).await {
        Ok(running) => running,
        Err(e) if options.port != 0 => {
            eprintln!("{e}; using a free port instead");
            return Box::pin(run(Options { port: 0, ..options })).await;
        }
        Err(e) => return Err(e),
    };
    let addr = running.local_addr();
    // Started once the gateway is bound (a retry on another port must not start them twice).
    let workers = queued.map(|(queue, worker)| {
        // Jobs are input: the workers post only to this gateway's management API.
        let worker = worker.with_allowed_endpoints([running.management_endpoint().to_string()]);
        let n = options.queue_workers.max(1);
        println!(
            "queued fan-out: rooms above {} member(s) go through an in-memory queue, {n} worker(s)",
            options.queue_above.unwrap_or_default()
        );
        queue.spawn_workers(&worker, n)
    });
    println!("local chat: open http://{addr}/");
    println!(
        "  WebSocket clients: {}?room=general&userId=NAME",
        running.ws_url()
    );
    println!(
        "  management API:    {}/@connections/{{id}}",
        running.management_endpoint()
    );
    println!(
        "  billing service:   curl -X POST 'http://{addr}/notify?user=NAME' -d '{{\"type\":\"invoice.paid\"}}'"
    );
    println!(
        "  grant endpoint:    curl -X POST 'http://{addr}/grant?room=private-x&userId=NAME' (private-* rooms need one)"
    );
    println!("  demo mode: user names come from the page and are not authenticated");
    println!("  Ctrl-C to stop (every open connection gets its $disconnect)");

    tokio::signal::ctrl_c().await.map_err(|e| Error::Config {
        message: format!("waiting for Ctrl-C: {e}"),
    })?;
    println!(
        "shutting down: closing {} connection(s)",
        running.connection_count()
    );
    if let Some(workers) = workers {
        // Jobs in hand finish before the connections close.
        workers.shutdown().await;
    }
    running.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local_chat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chat::{Chat, ChatConfig};
    use stateless_ws::broadcast::ApiGatewaySender;
    use stateless_ws::store::InMemoryStore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{GrantKey, PAGE, RESUMABLE_JS, local_sdk_config, parse_args, site};

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn history_is_on_by_default_and_no_history_turns_it_off() {
        assert!(parse_args(args(&[])).is_ok_and(|o| o.history));
        assert!(parse_args(args(&["--no-history", "--port", "0"])).is_ok_and(|o| !o.history));
        assert!(parse_args(args(&["--help"])).is_err_and(|usage| usage.contains("--no-history")));
    }

    /// `GET path` from the site served on a free loopback port: (head, body).
    async fn get(path: &str) -> (String, String) {
        request("GET", path).await
    }

    /// `method path` from the site served on a free loopback port: (head, body).
    async fn request(method: &str, path: &str) -> (String, String) {
        let sender = ApiGatewaySender::new(&local_sdk_config(None).await);
        let chat = Chat::new(
            Arc::new(InMemoryStore::new()),
            Arc::new(sender),
            ChatConfig::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let key = GrantKey::new(KEY).unwrap();
            axum::serve(listener, site(Arc::new(chat), key))
                .await
                .unwrap();
        });
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        server.abort();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.to_ascii_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn the_page_and_the_module_it_imports_are_served() {
        let (head, body) = get("/").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/html"), "{head}");
        assert_eq!(body, PAGE);
        assert!(
            PAGE.contains("from './resumable.js'"),
            "the page imports the module by the path served below"
        );

        let (head, body) = get("/resumable.js").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        // A module script with another MIME type is refused by the browser.
        assert!(
            head.contains("content-type: text/javascript; charset=utf-8"),
            "{head}"
        );
        assert_eq!(body, RESUMABLE_JS);
        assert!(body.contains("export class ResumableSocket"));
    }

    #[test]
    fn the_grant_key_is_an_option() {
        assert!(
            parse_args(args(&["--grant-key", KEY]))
                .is_ok_and(|o| o.grant_key.as_deref() == Some(KEY))
        );
        assert!(parse_args(args(&["--grant-key"])).is_err());
    }

    #[tokio::test]
    async fn the_grant_endpoint_issues_a_grant_for_the_user_and_room() {
        use stateless_ws::policy::{GrantError, RoomGrant};
        use stateless_ws::{RoomId, UserId};

        let (head, body) = request("POST", "/grant?room=private-x&userId=alice").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["room"], "private-x");
        let now = std::time::SystemTime::now();
        let unix = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let expires_at = answer["expiresAt"].as_u64().unwrap();
        assert!((unix + 290..=unix + 301).contains(&expires_at), "{answer}");

        let key = GrantKey::new(KEY).unwrap();
        let token = answer["grant"].as_str().unwrap();
        let grant = RoomGrant::decode(token, std::slice::from_ref(&key)).unwrap();
        assert_eq!(grant.expires_at, expires_at);
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let room = RoomId::new("private-x").unwrap();
        assert_eq!(grant.check(Some(&alice), &room, now), Ok(()));
        assert_eq!(
            grant.check(Some(&bob), &room, now),
            Err(GrantError::OtherUser)
        );
        // Another process's key (local_chat's default is random per process) does not verify it.
        let other = GrantKey::new("x".repeat(32)).unwrap();
        assert_eq!(
            RoomGrant::decode(token, &[other]),
            Err(GrantError::BadSignature)
        );

        for (path, expected) in [
            ("/grant?userId=alice", "missing ?room="),
            ("/grant?room=private-x", "missing ?userId="),
            ("/grant?room=a%23b&userId=alice", "room: "),
            ("/grant?room=private-x&userId=", "userId: "),
        ] {
            let (head, body) = request("POST", path).await;
            assert!(head.starts_with("http/1.1 400"), "{path}: {head}");
            assert!(body.contains(expected), "{path}: {body}");
        }
        let (head, _) = request("GET", "/grant?room=private-x&userId=alice").await;
        assert!(head.starts_with("http/1.1 405"), "{head}");
    }
}
