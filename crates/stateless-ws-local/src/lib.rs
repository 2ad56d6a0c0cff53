//! # stateless-ws-local: API Gateway WebSockets on your machine
//!
//! AWS's own tools cannot run WebSocket APIs locally. This crate can, two ways:
//!
//! - [`LocalGateway`] in your tests and demos: it accepts WebSocket clients on loopback,
//!   builds for each connect, message and close the event API Gateway would send
//!   ([`stateless_ws::WebSocketEvent`] — the same JSON a Lambda receives, which
//!   `aws_lambda_events` parses too), calls your handlers by route key — the very
//!   [`RouteHandler`](stateless_ws::lambda::RouteHandler) your Lambda runs, in process — and serves
//!   the Management API (`POST|GET|DELETE /{stage}/@connections/{id}`) on the same port, so
//!   `stateless_ws::broadcast::ApiGatewaySender` — the AWS SDK's own client — works against it
//!   unchanged;
//! - the `stateless-ws-local` binary (and [`LocalApi`], what it runs) in front of your **real
//!   Lambda functions**: it reads the WebSocket API of a SAM/CloudFormation template and invokes
//!   the functions through a local runner's Lambda Invoke API (`cargo lambda watch`,
//!   `sam local start-lambda`, MiniStack), REQUEST authorizer included.
//!
//! With the `test-util` feature, `test_util::FakeManagementApi` stands in for the
//! Management API alone, with injectable faults (410, 429, hangs, delays).
//!
//! ## HTTPS management endpoint
//!
//! Handlers in the wild build the management endpoint as `https://{domainName}/{stage}` from the
//! event and post with their SDK. The gateway's port therefore speaks TLS and plain HTTP side by
//! side (the first byte of a connection tells them apart: 0x16 starts a TLS handshake): `ws://`,
//! `wss://`, `http://` and `https://` all work, [`RunningGateway::https_management_endpoint`] is
//! `https://127.0.0.1:{port}/{stage}` — `domainName` as the events carry it — and plain `http://`
//! is unchanged ([`RunningGateway::management_endpoint`] stays `http://`).
//!
//! The certificate is issued at each start by a [`LocalCa`] generated once and kept in
//! [`LocalGatewayConfig::ca_dir`] (default `$XDG_DATA_HOME/stateless-ws-local`, else
//! `~/.local/share/stateless-ws-local`): `ca.pem`, `ca-key.pem` (mode 0600) and `ca-bundle.pem`
//! (the CA and the system's roots, since `SSL_CERT_FILE` and `AWS_CA_BUNDLE` *replace* a
//! process's roots). [`trust_env`] gives the variables each runtime reads — `AWS_CA_BUNDLE`
//! (boto3), `SSL_CERT_FILE` (OpenSSL, Python's `ssl`, and the Rust AWS SDK's default HTTPS
//! client, whose `rustls-native-certs` reads it), `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`
//! (Node) — and the binary prints and writes them. The README has the table of runtimes (tested
//! or cited), the Rust SDK's source references, and what `sam local` needs.
//!
//! ```
//! use stateless_ws_local::{LocalGateway, LocalGatewayConfig};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mut config = LocalGatewayConfig::default();
//! # let dir = std::env::temp_dir().join(format!("sws-doc-ca-{}", std::process::id()));
//! config.ca_dir = Some(dir.clone()); // default: ~/.local/share/stateless-ws-local
//! let gateway = LocalGateway::new(config).bind("127.0.0.1:0".parse().unwrap()).await?;
//! let ca = gateway.local_ca().expect("TLS is on by default");
//! println!("{} (trust {})", gateway.https_management_endpoint().unwrap(), ca.cert_path().display());
//! for (name, value) in ca.trust_env() {
//!     println!("{name}={value}"); // AWS_CA_BUNDLE=…/ca-bundle.pem, NODE_EXTRA_CA_CERTS=…/ca.pem, …
//! }
//! gateway.shutdown().await;
//! # let _ = std::fs::remove_dir_all(dir);
//! # Ok::<(), stateless_ws::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## In-process handlers
//!
//! A route's handler is what the Lambda function runs: `lambda::service(handle)` — the same
//! value `lambda::run(handle)` serves in Lambda. The gateway calls it as Lambda does: the event
//! as JSON, and a `Context` with a fresh `request_id` and a `deadline` 29 s (the integration
//! timeout) away.
//!
//! ```
//! use stateless_ws::lambda::{self, Context};
//! use stateless_ws::{Result, RouteResponse, WebSocketEvent};
//! use stateless_ws_local::{LocalGateway, LocalGatewayConfig};
//!
//! // The function's handler: accept each connect, echo each message to its sender.
//! async fn handle(event: WebSocketEvent, _context: Context) -> Result<RouteResponse> {
//!     match event {
//!         WebSocketEvent::Message(message) => Ok(RouteResponse::text(200, message.body_text()?)),
//!         _ => Ok(RouteResponse::ok()),
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // One function for every route, as a single Lambda serving all routes sees them.
//! let gateway = LocalGateway::new(LocalGatewayConfig::default())
//!     .default_handler(lambda::service(handle))
//!     .bind("127.0.0.1:0".parse().unwrap())
//!     .await?;
//! println!("clients: {}  management API: {}", gateway.ws_url(), gateway.management_endpoint());
//! let report = gateway.shutdown().await; // every open connection gets its $disconnect
//! assert_eq!(report.unfinished, 0);
//! # Ok::<(), stateless_ws::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## Real functions, from a template
//!
//! The binary is the usual entry point (`stateless-ws-local --help`):
//!
//! ```sh
//! cargo lambda watch --env-file .env.local      # in the functions' crate (port 9000)
//! stateless-ws-local --template template.yaml \
//!     --lambda-endpoint http://127.0.0.1:9000 --function-names binary --env-file .env.local
//! ```
//!
//! [`LocalApi`] is what it runs, for tests and tools:
//!
//! ```no_run
//! use stateless_ws_local::{LocalApi, Naming, Settings};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let text = std::fs::read_to_string("examples/chat/template.yaml")?;
//! let api = LocalApi::from_template(&text, Settings::default(), None)?;
//! let names = api.function_names(Naming::LogicalId, &Default::default())?;
//! let gateway = api
//!     .gateway("http://127.0.0.1:3001", &names, None)?
//!     .bind("127.0.0.1:0".parse()?)
//!     .await?;
//! println!("{}", gateway.ws_url());
//! # Ok(()) }
//! ```
//!
//! Read from the template: the `AWS::ApiGatewayV2::Api` (WEBSOCKET, `RouteSelectionExpression`
//! `$request.body.<field>`), its `Route`s, `Integration`s (`AWS_PROXY` to a function of the
//! template), `RouteResponse`s (two-way routes), the `$connect` `Authorizer` (REQUEST, identity
//! sources from the query string or headers), the `Stage` name, the functions' `Environment`
//! (SAM `Globals` included), `Parameters`, `Conditions`, and the intrinsic functions.
//!
//! `Ref` and `Fn::GetAtt` return what CloudFormation documents for each resource type: a
//! DynamoDB table's name (its `TableName`, else `{stack}-{LogicalId}` — CloudFormation adds a
//! random suffix), an SQS queue's URL (as the endpoint of [`Settings::endpoint`] forms it, e.g.
//! MiniStack's `http://127.0.0.1:4566/000000000000/NAME`), a function's name, the API id, a
//! stage's name, with their `Arn`, `StreamArn`, `QueueName`, `QueueUrl`, `ApiEndpoint`, …
//! attributes. A name that is itself an intrinsic (`!Sub "${AWS::StackName}-connections"`)
//! resolves through the same resolver. `AWS::AccountId` defaults to `000000000000`, MiniStack's
//! and LocalStack's. Values with nothing behind them locally (a table to create, a queue URL, the
//! account id) are [`StandIn`]s: [`LocalApi::stand_ins`] says which variables hold each and what
//! to do, and the binary prints that note at start-up.
//!
//! # Faithfulness
//!
//!
//! | API Gateway | here |
//! |---|---|
//! | `wss://{api}.execute-api.{region}.amazonaws.com/{stage}` | `ws://127.0.0.1:{port}/{stage}`, and `wss://` on the same port (a local CA's certificate) |
//! | management API at `https://{domainName}/{stage}` | same, and `http://` on the same port; `domainName` is `127.0.0.1:{port}` (or [`LocalGatewayConfig::domain_name`]) |
//! | connection ids like `L0SM9cOFvHc=` | 12 base64 characters ending in `=` |
//! | `$connect` answering non-2xx refuses the upgrade with that status (the guide's subprotocol example: the function returns 400, wscat reports "Unexpected server response: 400"); a proxy integration's body reaches a client only through a route response | same: the function's status (3xx–5xx), empty body, no upgrade; a `statusCode` below 200 or above 599 is an integration failure (500) |
//! | route selection `$request.body.action`, `$default` fallback, non-JSON to `$default` | same (the path is configurable) |
//! | a message route's response body is sent to the caller | same; a body over the message limit (128 KB) is dropped with a WARN log (AWS does not document this case) |
//! | each message invokes its integration on its own: "Responses are asynchronous and are not necessarily received by the client in the same order as the client's messages were sent" (developer guide); a hung integration is given up after 29 s ("Endpoint request timed out") | same: a hung route holds up no other message of its connection; answers in the order routes finish; at most [`max_routes_in_flight`](LocalGatewayConfig::max_routes_in_flight) (16) per connection (API Gateway has no such bound: see there); [`integration_timeout`](LocalGatewayConfig::integration_timeout) (29 s) frees a hung route's slot; posts, `DELETE`, the limits and shutdown act while routes run |
//! | `$connect`'s query string: "API Gateway supports multiple headers and query string parameters that have the same name" (developer guide); `queryStringParameters` keeps a repeated key's last value | same: `?room=a&room=b` gives `multiValueQueryStringParameters` `{"room": ["a", "b"]}` and `queryStringParameters` `{"room": "b"}`; `%XX` and `+` decoded as API Gateway does |
//! | `requestContext.domainName` is set by API Gateway | set by the gateway: [`LocalGatewayConfig::domain_name`] or the bound address, never the client's `Host` |
//! | Management API `POST`/`GET`/`DELETE @connections/{id}`; 410 `GoneException`, 413 `PayloadTooLargeException` | same, every error with `x-amzn-ErrorType` and `{"message": ...}`; a malformed id is 400 `BadRequestException`; other paths under the stage 403 `ForbiddenException`; other methods 405 |
//! | a management call to a stage that does not exist: 403 `ForbiddenException` | same, its message naming the stage served (`no stage "prod" here; this gateway serves stage "local": ws://127.0.0.1:3002/local ...`); a WebSocket client (or any request) at another path gets a 404 with that sentence; both logged at WARN, once a minute per path and at most 16 paths a minute |
//! | idle keep-alive HTTP connections to the management API are closed | after [`http_idle_timeout`](LocalGatewayConfig::http_idle_timeout) (60 s) without a request |
//! | `PostToConnection` `Data` is a blob | delivered unchanged: a text frame when it is UTF-8, a binary frame otherwise |
//! | 429 `LimitExceededException` when "the WebSocket client side buffer is full" | same: per connection ≤ [`max_queued_bytes`](LocalGatewayConfig::max_queued_bytes) and [`max_queued_messages`](LocalGatewayConfig::max_queued_messages) waiting; a client that accepts nothing for [`send_timeout`](LocalGatewayConfig::send_timeout) is dropped |
//! | idle timeout 10 min, maximum duration 2 h, messages ≤ 128 KB (1009), no binary frames (1003) | same, configurable; they act even while a send to the client is stuck |
//! | `DELETE @connections` closes the socket and runs `$disconnect` | same (the TCP connection is dropped when the close frame cannot be written within 1 s) |
//! | a Lambda invocation is not cancelled when its caller goes away | `$connect` runs to completion in its own task; if it accepted but the upgrade failed, `$disconnect` follows |
//! | a route integrated with a Lambda function | a template's `AWS_PROXY` integration, served by [`LocalApi::gateway`] (and the binary): the function on a Lambda Invoke API endpoint (`cargo lambda watch`, `sam local start-lambda`, MiniStack), 29 s timeout |
//! | Lambda hands each invocation a `Context`: request id, deadline, function ARN | in-process routes get one too: a fresh UUID `request_id`, `deadline` 29 s away (epoch ms), function `{api_id}-{route}` (e.g. `local-join`) in `invoked_function_arn` and `env_config`; at the deadline the caller gets API Gateway's timeout answer, and the handler — like a Lambda whose caller stopped waiting — is not cancelled but goes on in the background |
//! | a failing integration: `$connect` 500; a message's caller gets `{"message": "Internal server error", "connectionId", "requestId"}` | same (`"Endpoint request timed out"` after the timeout); what failed goes to the log, and to the client (a `detail` field) only with [`expose_errors`](LocalGatewayConfig::expose_errors) / `--expose-errors` |
//! | Lambda REQUEST authorizer on `$connect`: 401 missing identity source, 403 on `Deny`, 500 on error; `principalId` and `context` in `requestContext.authorizer` | the template's `AWS::ApiGatewayV2::Authorizer`, served by [`LocalApi::gateway`]; same |
//!
//! Not emulated: authorizer result caching, IAM signature checks (requests must be
//! signed, but any key is accepted), frame-level 32 KB limits, and the account throttle.
//! In-process handlers need no authorizer: set the identity on the events yourself with a
//! `$connect` wrapper, as the chat example's insecure demo mode does.
//! Message routes run as tasks beside their connection's socket loop, never inside it: a
//! message beyond [`max_routes_in_flight`](LocalGatewayConfig::max_routes_in_flight) waits
//! unread until a route answers or reaches the integration timeout.
//! [`RunningGateway::shutdown`] waits at most [`LocalGatewayConfig::shutdown_grace`]; handlers
//! still running then finish in the background and are counted in its [`ShutdownReport`].
//! The `$connect` event's `headers` are the client's, `Host` included, as on AWS: derive
//! endpoints from `requestContext.domainName`, never from headers.
//!
//! # Layout
//!
//! `gateway/` is the emulator ([`LocalGateway`]; the connection loop, the management API, the
//! Invoke API client and the REQUEST authorizer are private modules beside it); `template/`
//! reads SAM/CloudFormation templates; `local_api.rs` joins the two ([`LocalApi`]); `tls.rs` is
//! the local CA ([`LocalCa`]) that certifies the gateway's TLS;
//! `test_util.rs` is the fake management API (feature `test-util`); `main.rs` the binary.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod gateway;
mod local_api;
mod template;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
mod tls;

pub use gateway::{
    LocalGateway, LocalGatewayConfig, MAX_MESSAGE_SIZE, RunningGateway, ShutdownReport,
};
pub use local_api::{LocalApi, Naming, TemplateError, parse_pairs};
pub use template::{
    AuthorizerSpec, FunctionSpec, Location, RouteSpec, Settings, StandIn, Template, WebSocketApi,
};
pub use tls::{CA_BUNDLE_FILE, CA_CERT_FILE, CA_KEY_FILE, CaError, LocalCa, trust_env};
