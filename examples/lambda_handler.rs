//! The README's "Your own Lambda" handler, exactly as printed there: `tests/readme.rs` checks
//! that the two agree and drives `App` through the local gateway.
//!
//! Build for Lambda with `cargo lambda build --release --arm64 --example lambda_handler`.

use std::sync::Arc;

use serde_json::json;
use stateless_ws::aws_config::{self, BehaviorVersion};
use stateless_ws::broadcast::{ApiGatewaySender, Broadcaster, Payload};
use stateless_ws::lambda::{self, Context, LambdaError};
use stateless_ws::store::{ConnectionStore, ConnectionStoreExt, DynamoDbStore};
use stateless_ws::{Membership, Result, RoomId, RouteResponse, WebSocketEvent};

/// What every invocation needs, built once in `main`.
#[derive(Clone)]
pub struct App {
    /// The routing table.
    pub store: Arc<dyn ConnectionStore>,
    /// Fans messages out through the management API.
    pub broadcaster: Broadcaster,
}

impl App {
    /// Handles one `$connect`, `$disconnect` or message event.
    pub async fn handle(&self, event: WebSocketEvent, context: Context) -> Result<RouteResponse> {
        match event {
            WebSocketEvent::Connect(connect) => {
                // A bad room name is an error: the adapter answers 400 and the client is refused.
                let room = RoomId::new(connect.query("room").unwrap_or("lobby"))?;
                // The user comes from the authorizer, the management endpoint from the event.
                self.store
                    .join(&Membership::for_connect(&connect, room)?)
                    .await?;
                Ok(RouteResponse::ok())
            }
            WebSocketEvent::Disconnect(disconnect) => {
                self.store.disconnect(disconnect.connection_id()).await?;
                Ok(RouteResponse::ok())
            }
            WebSocketEvent::Message(message) => {
                let me = message.connection_id();
                let Some(room) = self.store.rooms_of(me).await?.into_iter().next() else {
                    return Ok(RouteResponse::error(403, "not in a room"));
                };
                let payload = Payload::text(message.body_text()?)?;
                let broadcaster = self
                    .broadcaster
                    .clone()
                    .with_deadline(lambda::deadline(&context));
                let report = broadcaster.broadcast(&room, &payload, Some(me)).await?;
                Ok(RouteResponse::json(
                    200,
                    &json!({ "delivered": report.delivered.len() }),
                ))
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), LambdaError> {
    lambda::init_tracing();
    // One SDK configuration for every client; CONNECTIONS_TABLE names the table.
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store: Arc<dyn ConnectionStore> = Arc::new(DynamoDbStore::from_env_with(&aws)?);
    let broadcaster = Broadcaster::new(store.clone(), Arc::new(ApiGatewaySender::new(&aws)));
    let app = App { store, broadcaster };
    lambda::run(move |event, context| {
        let app = app.clone();
        async move { app.handle(event, context).await }
    })
    .await
}
