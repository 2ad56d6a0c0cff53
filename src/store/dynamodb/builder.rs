//! Making a [`DynamoDbStore`]: [`DynamoDbStoreBuilder`] and the environment (`from_env`).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;

use super::DynamoDbStore;
use crate::clock::{Clock, SystemClock};
use crate::env;
use crate::error::{Error, Result};
use crate::store::DEFAULT_TTL;

/// The default name of the GSI keyed by `roomId`.
const DEFAULT_ROOM_INDEX: &str = "roomId-index";
/// The default name of the GSI keyed by `userId`.
const DEFAULT_USER_INDEX: &str = "userId-index";

impl DynamoDbStore {
    /// A builder; `client` and `table_name` are required.
    ///
    /// ```no_run
    /// # async fn f() -> stateless_ws::Result<()> {
    /// use std::time::Duration;
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let store = stateless_ws::store::DynamoDbStore::builder()
    ///     .client(aws_sdk_dynamodb::Client::new(&config))
    ///     .table_name("ws-connections")
    ///     .ttl(Duration::from_secs(3600))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> DynamoDbStoreBuilder {
        DynamoDbStoreBuilder::default()
    }

    /// A store configured from the environment: the table and tuning from
    /// [`DynamoDbStoreBuilder::from_env_vars`], the client from `aws_config`'s default chain (region,
    /// credentials, and `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` for a local endpoint).
    /// Call it once at start-up, not per request.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the missing or invalid variable. Never panics.
    pub async fn from_env() -> Result<Self> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_env_with(&config)
    }

    /// A store on `table` with a client made from `config` — the one `SdkConfig` the process
    /// shares between all its AWS clients — and the default indexes and TTL.
    ///
    /// ```no_run
    /// # async fn f() -> stateless_ws::Result<()> {
    /// use stateless_ws::aws_config::{self, BehaviorVersion};
    /// use stateless_ws::broadcast::ApiGatewaySender;
    /// use stateless_ws::store::DynamoDbStore;
    ///
    /// let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    /// let store = DynamoDbStore::new(&aws, "ws-connections")?;
    /// let sender = ApiGatewaySender::new(&aws);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the table name is invalid.
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Result<Self> {
        Self::builder()
            .client(Client::new(config))
            .table_name(table)
            .build()
    }

    /// A store configured from the environment as [`from_env`](Self::from_env) does, with a
    /// client made from `config` (shared with the process's other AWS clients, so it is loaded
    /// once). Needs no `.await`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the missing or invalid variable. Never panics.
    pub fn from_env_with(config: &aws_config::SdkConfig) -> Result<Self> {
        DynamoDbStoreBuilder::from_env_vars()?
            .client(Client::new(config))
            .build()
    }
}

/// Builds a [`DynamoDbStore`]; see [`DynamoDbStore::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct DynamoDbStoreBuilder {
    client: Option<Client>,
    table: Option<String>,
    room_index: Option<String>,
    user_index: Option<String>,
    ttl: Option<Duration>,
    page_size: Option<u32>,
    max_batch_attempts: Option<u32>,
    clock: Option<Arc<dyn Clock>>,
}

impl DynamoDbStoreBuilder {
    /// A builder with the settings found in the environment: [`env::CONNECTIONS_TABLE`] (required),
    /// [`env::CONNECTIONS_ROOM_INDEX`], [`env::CONNECTIONS_USER_INDEX`], [`env::CONNECTION_TTL_SECONDS`]. Add a client and build.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable that is missing or unparsable. Never panics.
    pub fn from_env_vars() -> Result<Self> {
        let table = env::var(env::CONNECTIONS_TABLE)?.ok_or_else(|| {
            Error::config(format!(
                "environment variable {} is not set: it must name the connections table",
                env::CONNECTIONS_TABLE
            ))
        })?;
        let mut builder = Self::default().table_name(table);
        if let Some(index) = env::var(env::CONNECTIONS_ROOM_INDEX)? {
            builder = builder.room_index(index);
        }
        if let Some(index) = env::var(env::CONNECTIONS_USER_INDEX)? {
            builder = builder.user_index(index);
        }
        if let Some(secs) =
            env::whole_number(env::CONNECTION_TTL_SECONDS, "a whole number of seconds")?
        {
            builder = builder.ttl(Duration::from_secs(secs));
        }
        Ok(builder)
    }

    /// The DynamoDB client (required). Build it once per process and share it.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The table name (required).
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// The GSI keyed by `roomId` (default `roomId-index`).
    pub fn room_index(mut self, index: impl Into<String>) -> Self {
        self.room_index = Some(index.into());
        self
    }

    /// The GSI keyed by `userId` (default `userId-index`).
    pub fn user_index(mut self, index: impl Into<String>) -> Self {
        self.user_index = Some(index.into());
        self
    }

    /// How long a joined record lives, and how far [`refresh`](crate::store::ConnectionStore::refresh) extends
    /// it (default 2 hours, API Gateway's maximum connection duration).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The `Limit` of each query page (default: none, DynamoDB's 1 MB pages). Small pages are
    /// for tests that must cross page boundaries.
    pub fn page_size(mut self, items: u32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// How many times a `BatchWriteItem` is sent while DynamoDB keeps returning
    /// `UnprocessedItems` (default 8; at least 1).
    pub fn max_batch_attempts(mut self, attempts: u32) -> Self {
        self.max_batch_attempts = Some(attempts);
        self
    }

    /// The clock for "now" in expiry filters and TTLs (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the store. Makes no network call.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client or table name is missing, or a name is not a valid
    /// DynamoDB table or index name (3–255 characters of `a-z A-Z 0-9 _ - .`), or the page size
    /// is 0 or exceeds `i32::MAX`.
    pub fn build(self) -> Result<DynamoDbStore> {
        let client = self
            .client
            .ok_or_else(|| Error::config("DynamoDbStore needs a client: call .client(...)"))?;
        let table = self.table.ok_or_else(|| {
            Error::config("DynamoDbStore needs a table name: call .table_name(...)")
        })?;
        validate_name("table name", &table)?;
        let room_index = self
            .room_index
            .unwrap_or_else(|| DEFAULT_ROOM_INDEX.to_owned());
        validate_name("room index name", &room_index)?;
        let user_index = self
            .user_index
            .unwrap_or_else(|| DEFAULT_USER_INDEX.to_owned());
        validate_name("user index name", &user_index)?;
        let page_size = match self.page_size {
            None => None,
            Some(n) => Some(i32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::config(format!("page size must be 1..=2147483647, got {n}"))
            })?),
        };
        Ok(DynamoDbStore {
            client,
            table: table.into(),
            room_index: room_index.into(),
            user_index: user_index.into(),
            ttl: self.ttl.unwrap_or(DEFAULT_TTL),
            page_size,
            max_batch_attempts: self.max_batch_attempts.unwrap_or(8).max(1),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
        })
    }
}

/// Checks a DynamoDB table or index name (3–255 characters of `a-z A-Z 0-9 _ - .`); shared by
/// the store's and the message log's builders.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if (3..=255).contains(&name.len()) && ok_chars {
        Ok(())
    } else {
        Err(Error::config(format!(
            "DynamoDB {what} {name:?} is invalid: it must be 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates() {
        let client = || {
            Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                    .build(),
            )
        };
        let err = DynamoDbStore::builder()
            .table_name("t-ok")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(".client("), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(".table_name("), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .table_name("ab")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("\"ab\""), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .table_name("conns")
            .room_index("bad index")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("room index name"), "{err}");
        let err = DynamoDbStore::builder()
            .client(client())
            .table_name("conns")
            .page_size(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("page size"), "{err}");
        let store = DynamoDbStore::builder()
            .client(client())
            .table_name("conns")
            .build()
            .unwrap();
        assert_eq!(store.to_string(), "DynamoDbStore(conns)");
        assert_eq!(&*store.room_index, DEFAULT_ROOM_INDEX);
        assert_eq!(store.ttl, DEFAULT_TTL);
    }
}
