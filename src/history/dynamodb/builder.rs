//! [`DynamoDbLogBuilder`], and the unit tests of the item format.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;

use super::*;

/// Builds a [`DynamoDbLog`]; see [`DynamoDbLog::builder`].
#[derive(Debug, Default)]
#[must_use]
pub struct DynamoDbLogBuilder {
    client: Option<Client>,
    table: Option<String>,
    config: Option<LogConfig>,
    clock: Option<Arc<dyn Clock>>,
    max_append_attempts: Option<u32>,
}

impl DynamoDbLogBuilder {
    /// A builder with the table named by [`env::MESSAGES_TABLE`] (required), and the retention
    /// of [`env::MESSAGES_TTL_SECONDS`] and [`env::MESSAGES_MAX_PER_ROOM`] when they are set (the
    /// rest of [`LogConfig::default`] otherwise). Add a client and build.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable when one is missing, not UTF-8 or not a whole
    /// number; [`build`](Self::build) checks the ranges. Never panics.
    pub fn from_env_vars() -> Result<Self> {
        let table = env::var(env::MESSAGES_TABLE)?.ok_or_else(|| {
            Error::config(format!(
                "environment variable {} is not set: it must name the message log's table",
                env::MESSAGES_TABLE
            ))
        })?;
        let mut config = LogConfig::default();
        if let Some(secs) =
            env::whole_number(env::MESSAGES_TTL_SECONDS, "a whole number of seconds")?
        {
            config.ttl = Duration::from_secs(secs);
        }
        if let Some(n) =
            env::whole_number(env::MESSAGES_MAX_PER_ROOM, "a whole number of messages")?
        {
            config.max_messages = n;
        }
        Ok(Self::default().table_name(table).config(config))
    }

    /// The DynamoDB client (required).
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The table name (required).
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// What the log keeps (default [`LogConfig::default`]).
    pub fn config(mut self, config: LogConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The clock for `at` and retention (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How many times an append is tried while other appenders take the next offset first
    /// (default 50; at least 1).
    pub fn max_append_attempts(mut self, attempts: u32) -> Self {
        self.max_append_attempts = Some(attempts);
        self
    }

    /// Builds the log. Makes no network call.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client or table name is missing, the table name is not a
    /// valid DynamoDB table name, or the config is out of range.
    pub fn build(self) -> Result<DynamoDbLog> {
        let client = self
            .client
            .ok_or_else(|| Error::config("DynamoDbLog needs a client: call .client(...)"))?;
        let table = self.table.ok_or_else(|| {
            Error::config("DynamoDbLog needs a table name: call .table_name(...)")
        })?;
        crate::store::validate_table_name("table name", &table)?;
        let config = self.config.unwrap_or_default();
        crate::history::validate_config(&config)?;
        Ok(DynamoDbLog {
            client,
            table: table.into(),
            config,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            max_append_attempts: self
                .max_append_attempts
                .unwrap_or(DEFAULT_MAX_APPEND_ATTEMPTS)
                .max(1),
            lost_races: Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        )
    }

    #[test]
    fn builder_validates_and_display_names_the_table() {
        let err = DynamoDbLog::builder()
            .table_name("msgs")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(".client("), "{err}");
        let err = DynamoDbLog::builder().client(client()).build().unwrap_err();
        assert!(err.to_string().contains(".table_name("), "{err}");
        let err = DynamoDbLog::builder()
            .client(client())
            .table_name("ab")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("\"ab\""), "{err}");
        let config = LogConfig {
            max_messages: 0,
            ..LogConfig::default()
        };
        let err = DynamoDbLog::builder()
            .client(client())
            .table_name("msgs")
            .config(config)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("max_messages"), "{err}");
        let log = DynamoDbLog::builder()
            .client(client())
            .table_name("ws-messages")
            .build()
            .unwrap();
        assert_eq!(log.to_string(), "DynamoDbLog(ws-messages)");
        assert_eq!(log.max_append_attempts, DEFAULT_MAX_APPEND_ATTEMPTS);
    }

    #[test]
    fn items_that_do_not_parse_name_the_attribute() {
        let log = DynamoDbLog::builder()
            .client(client())
            .table_name("ws-messages")
            .build()
            .unwrap();
        let item: Item = [
            ("seq", AttributeValue::N("3".into())),
            ("offset", AttributeValue::N("4".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let err = log.parse("room#x", &item).unwrap_err();
        assert!(
            err.chain().to_string().contains("offset"),
            "{}",
            err.chain()
        );
        let mut item = item;
        item.insert("offset".into(), AttributeValue::N("3".into()));
        item.insert("data".into(), AttributeValue::S("{}".into()));
        let err = log.parse("room#x", &item).unwrap_err();
        assert!(
            err.chain().to_string().contains("epoch is missing"),
            "{}",
            err.chain()
        );
    }
}
