//! Stand-ins: values the functions' environment gets from the template that have nothing real
//! behind them locally until the developer acts — a table name with no table (unless MiniStack
//! has one), a queue URL pointing nowhere, the account id `000000000000`, the region — each
//! with what it stands for and what to do, for the note the CLI prints once at start-up.

use serde_json::{Map, Value};

use super::Template;
use super::resources::QUEUE;

/// What a recorded value stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The name of a DynamoDB table (logical id).
    Table(String),
    /// A queue's URL, name or ARN (logical id).
    Queue(String),
    /// A function's name or ARN (logical id).
    Function(String),
    /// The API id (logical id).
    Api(String),
    /// The API's endpoint on AWS (logical id).
    ApiEndpoint(String),
    AccountId,
    Region,
    /// Another resource's `Ref` or attribute, with nothing local behind it.
    Other {
        id: String,
        kind: String,
        attribute: Option<String>,
    },
}

impl Source {
    pub(crate) fn other(id: &str, kind: &str, attribute: Option<&str>) -> Self {
        Self::Other {
            id: id.to_owned(),
            kind: kind.to_owned(),
            attribute: attribute.map(str::to_owned),
        }
    }
}

/// A value the resolver made up, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) value: String,
    pub(crate) source: Source,
}

/// A value in the functions' environment that stands in for something with no local
/// counterpart until the developer creates it or passes the real value (`--env`). One per thing
/// stood for: a queue's URL, name and ARN make one, whose `value` is the first met.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StandIn {
    /// The value the functions get (or the part of it that stands in: a table's name inside
    /// its ARN, the account id inside an ARN).
    pub value: String,
    /// The environment variables it is in.
    pub variables: Vec<String>,
    /// What it stands for ("the name of the DynamoDB table ConnectionsTable").
    pub stands_for: String,
    /// What to do about it (a command, or which option to pass).
    pub advice: String,
    /// For a DynamoDB table: the `CreateTable` input its template properties describe (what
    /// `aws dynamodb create-table --cli-input-json` takes, and the body of a DynamoDB
    /// `CreateTable` request), when they resolve.
    pub create_table: Option<Value>,
}

impl StandIn {
    /// The note the CLI prints: `VALUE (in VARS) is WHAT; ADVICE`.
    pub fn note(&self) -> String {
        format!(
            "{} (in {}) is {}; {}",
            self.value,
            self.variables.join(", "),
            self.stands_for,
            self.advice
        )
    }

    /// What `recorded` stands for in `template`, found in `variables`.
    pub(crate) fn describe(
        template: &Template,
        recorded: &Recorded,
        variables: Vec<String>,
    ) -> Self {
        let settings = template.settings();
        let endpoint = settings.endpoint.as_deref();
        let first = variables.first().map_or("VAR", String::as_str).to_owned();
        let mut create_table = None;
        let (stands_for, advice) = match &recorded.source {
            Source::Table(id) => {
                let name = table_name(template, id).unwrap_or_else(|| recorded.value.clone());
                create_table = create_table_input(template, id, &name);
                let generated = if has_property(template, id, "TableName") {
                    String::new()
                } else {
                    " (no TableName: CloudFormation would add a random suffix)".to_owned()
                };
                let command = match &create_table {
                    Some(input) => {
                        let mut command = format!(
                            "aws dynamodb create-table{} --cli-input-json {}",
                            endpoint_flag(endpoint),
                            shell_quote(&input.to_string())
                        );
                        if let Some(attribute) = ttl_attribute(template, id) {
                            command.push_str(&format!(
                                " && aws dynamodb update-time-to-live{} --table-name {} --time-to-live-specification Enabled=true,AttributeName={attribute}",
                                endpoint_flag(endpoint),
                                shell_quote(&name)
                            ));
                        }
                        command
                    }
                    None => format!(
                        "aws dynamodb create-table{} --table-name {} ... (its key schema as in the template)",
                        endpoint_flag(endpoint),
                        shell_quote(&name)
                    ),
                };
                let advice = match endpoint {
                    Some(endpoint) => format!(
                        "it exists at {endpoint} only once created there: {command}; or pass an existing table with --env {first}=NAME"
                    ),
                    None => format!(
                        "without --aws-endpoint the functions reach your AWS account, where it exists only once created or deployed: {command}; or point them at MiniStack with --aws-endpoint URL, or pass an existing table with --env {first}=NAME"
                    ),
                };
                (format!("the name of the DynamoDB table {id}{generated}"), advice)
            }
            Source::Queue(id) => {
                let name = queue_name(template, id).unwrap_or_else(|| id.clone());
                let attributes = queue_attributes(template, id, &name);
                match endpoint {
                    Some(endpoint) => (
                        format!("queue {id} ({name}) as {endpoint} names it"),
                        format!(
                            "it exists once created there: aws --endpoint-url {endpoint} sqs create-queue --queue-name {}{attributes}",
                            shell_quote(&name)
                        ),
                    ),
                    None => (
                        format!(
                            "queue {id} ({name}) as SQS would name it in account {}: no queue is behind it",
                            settings.account_id
                        ),
                        format!(
                            "run a local SQS and point the tool at it (--aws-endpoint http://127.0.0.1:4566 for MiniStack or LocalStack, then create the queue there), or pass your queue's URL with --env {first}=URL"
                        ),
                    ),
                }
            }
            Source::Function(id) => (
                format!("the name of function {id} (its FunctionName, else its logical id: the name sam local and --function-names logical-id serve it under)"),
                format!("if your runner serves it under another name (cargo lambda watch: its binary's), pass --env {first}=THAT_NAME"),
            ),
            Source::Api(id) => (
                format!("the API id of {id}, which the local gateway uses as its own (requestContext.apiId)"),
                "an execute-api URL built from it points at AWS, not at this gateway: the gateway's URLs are printed above".to_owned(),
            ),
            Source::ApiEndpoint(id) => (
                format!("the endpoint API Gateway would give {id}"),
                format!("locally the API is at the printed WebSocket URL: pass --env {first}=ws://HOST:PORT if the functions use it"),
            ),
            Source::AccountId => (
                "AWS::AccountId: 000000000000 is the account MiniStack and LocalStack use for a non-numeric access key".to_owned(),
                "pass --account-id if the functions must see your real account id".to_owned(),
            ),
            Source::Region => (
                "AWS::Region (--region)".to_owned(),
                "the functions' AWS_REGION and the local endpoint should use the same region".to_owned(),
            ),
            Source::Other { id, kind, attribute } => (
                match attribute {
                    Some(attribute) => format!("a stand-in for {id}.{attribute} of the {kind} {id}"),
                    None => format!("a stand-in for the {kind} {id}"),
                },
                format!("nothing is behind it locally unless you create it (e.g. in MiniStack); or pass the real value with --env {first}=VALUE"),
            ),
        };
        Self {
            value: recorded.value.clone(),
            variables,
            stands_for,
            advice,
            create_table,
        }
    }
}

fn endpoint_flag(endpoint: Option<&str>) -> String {
    endpoint.map_or_else(String::new, |e| format!(" --endpoint-url {e}"))
}

/// `text` in single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,".contains(c))
    {
        return text.to_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn has_property(template: &Template, id: &str, property: &str) -> bool {
    template
        .resource(id)
        .and_then(|r| r.get("Properties"))
        .and_then(|p| p.get(property))
        .is_some()
}

/// The name of table `id`, resolved on its own (no stand-ins recorded); `None` when it does
/// not resolve.
pub(crate) fn table_name(template: &Template, id: &str) -> Option<String> {
    let at = super::Location::new(id, "TableName");
    template.resolver(&at).table_name(id).ok()
}

fn queue_name(template: &Template, id: &str) -> Option<String> {
    let at = super::Location::new(id, "QueueName");
    (template.resource_type(id) == Some(QUEUE))
        .then(|| template.resolver(&at).queue_name(id).ok())
        .flatten()
}

/// The `CreateTable` input of table `id` named `name`: the properties CloudFormation passes
/// on, those a local DynamoDB needs — keys, attributes, indexes, billing, stream. `None` when
/// one of them does not resolve.
fn create_table_input(template: &Template, id: &str, name: &str) -> Option<Value> {
    let property = |p: &str| template.property(id, p).ok().flatten();
    let mut input = Map::new();
    input.insert("TableName".to_owned(), Value::String(name.to_owned()));
    for key in [
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "ProvisionedThroughput",
    ] {
        if let Some(value) = property(key) {
            input.insert(key.to_owned(), value);
        }
    }
    for (key, fields) in [
        (
            "GlobalSecondaryIndexes",
            &[
                "IndexName",
                "KeySchema",
                "Projection",
                "ProvisionedThroughput",
            ][..],
        ),
        (
            "LocalSecondaryIndexes",
            &["IndexName", "KeySchema", "Projection"][..],
        ),
    ] {
        if let Some(Value::Array(indexes)) = property(key) {
            let indexes = indexes
                .iter()
                .map(|index| {
                    let kept: Map<String, Value> = fields
                        .iter()
                        .filter_map(|f| index.get(*f).map(|v| ((*f).to_owned(), v.clone())))
                        .collect();
                    Value::Object(kept)
                })
                .collect();
            input.insert(key.to_owned(), Value::Array(indexes));
        }
    }
    if let Some(view) = property("StreamSpecification")
        .as_ref()
        .and_then(|s| s.get("StreamViewType"))
    {
        input.insert(
            "StreamSpecification".to_owned(),
            serde_json::json!({"StreamEnabled": true, "StreamViewType": view}),
        );
    }
    (input.contains_key("KeySchema") && input.contains_key("AttributeDefinitions"))
        .then_some(Value::Object(input))
}

/// ` --attributes K=V,...` for `aws sqs create-queue`: the queue's scalar attributes in the
/// template (a redrive policy, which names another queue's ARN, is left out), `FifoQueue` for a
/// `.fifo` name; empty when there are none.
fn queue_attributes(template: &Template, id: &str, name: &str) -> String {
    let mut pairs = Vec::new();
    for key in [
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "ContentBasedDeduplication",
    ] {
        if let Some(value) = template
            .property(id, key)
            .ok()
            .flatten()
            .as_ref()
            .and_then(super::scalar_text)
        {
            pairs.push(format!("{key}={value}"));
        }
    }
    if name.ends_with(".fifo") {
        pairs.push("FifoQueue=true".to_owned());
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!(" --attributes {}", shell_quote(&pairs.join(",")))
    }
}

/// The TTL attribute of table `id`, when its `TimeToLiveSpecification` enables one.
fn ttl_attribute(template: &Template, id: &str) -> Option<String> {
    let spec = template.property(id, "TimeToLiveSpecification").ok()??;
    let enabled = spec.get("Enabled").and_then(super::scalar_text)? == "true";
    enabled
        .then(|| spec.get("AttributeName").and_then(super::scalar_text))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_is_literal() {
        assert_eq!(shell_quote("local-table"), "local-table");
        assert_eq!(shell_quote(r#"{"a":1}"#), r#"'{"a":1}'"#);
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
