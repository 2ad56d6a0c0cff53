//! What `Ref` and `Fn::GetAtt` return for each resource type: what CloudFormation documents
//! ("Return values" of each resource type's page), with the values a deployment would have
//! formed locally:
//!
//! | type | `Ref` | `Fn::GetAtt` |
//! |---|---|---|
//! | `AWS::DynamoDB::Table` | the table name: `TableName`, else `{stack}-{LogicalId}` | `Arn`, `StreamArn` (needs `StreamSpecification`) |
//! | `AWS::SQS::Queue` | the queue URL (`{endpoint}/{account}/{name}` with an endpoint, else `https://sqs.{region}.amazonaws.com/{account}/{name}`) | `Arn`, `QueueName`, `QueueUrl` |
//! | `AWS::Lambda::Function`, `AWS::Serverless::Function` | the function name: `FunctionName`, else the logical id (the name local runners serve it under) | `Arn` |
//! | `AWS::ApiGatewayV2::Api` | the API id: the logical id, which the local gateway uses as its API id | `ApiId`, `ApiEndpoint` |
//! | `AWS::ApiGatewayV2::Stage` | the stage name (`StageName`, or [`Settings::stage`](super::Settings::stage)) | — |
//! | `AWS::ApiGatewayV2::{Integration, Route, RouteResponse, Authorizer, Deployment, IntegrationResponse, Model}` | the id: the logical id | `IntegrationId`, `RouteId`, … |
//! | `AWS::IAM::Role` | `RoleName`, else `{stack}-{LogicalId}` | `Arn`, `RoleId` |
//! | `AWS::SNS::Topic` | the topic ARN | `TopicArn`, `TopicName` |
//! | `AWS::SSM::Parameter` | `Name`, else `{stack}-{LogicalId}` | `Value`, `Type` |
//! | `AWS::S3::Bucket` | `BucketName`, else `{stack}-{logicalid}` | `Arn`, `DomainName`, `RegionalDomainName` |
//! | `AWS::Lambda::EventSourceMapping` | the mapping id: the logical id | `Id`, `EventSourceMappingArn` |
//!
//! CloudFormation adds a random suffix to the names it generates; here they are
//! `{stack}-{LogicalId}`, stable from run to run. A name given as an intrinsic
//! (`!Sub "${AWS::StackName}-connections"`) resolves through the same resolver. Values with
//! nothing behind them locally are recorded as stand-ins (see `stand_in.rs`); another type's
//! `Ref` is its logical id, another attribute `{LogicalId}.{Attribute}`, both recorded too.

use serde_json::Value;

use super::resolve::Resolver;
use super::scalar_text;
use super::stand_in::Source;
use crate::TemplateError;

pub(crate) const TABLE: &str = "AWS::DynamoDB::Table";
pub(crate) const QUEUE: &str = "AWS::SQS::Queue";
pub(crate) const SAM_FUNCTION: &str = "AWS::Serverless::Function";
pub(crate) const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
pub(crate) const API: &str = "AWS::ApiGatewayV2::Api";
pub(crate) const STAGE: &str = "AWS::ApiGatewayV2::Stage";
const ROLE: &str = "AWS::IAM::Role";
const TOPIC: &str = "AWS::SNS::Topic";
const PARAMETER: &str = "AWS::SSM::Parameter";
const BUCKET: &str = "AWS::S3::Bucket";
const EVENT_SOURCE_MAPPING: &str = "AWS::Lambda::EventSourceMapping";

/// API Gateway v2 resources whose `Ref` is an id, and the attribute that repeats it.
const API_PARTS: [(&str, &str); 7] = [
    ("AWS::ApiGatewayV2::Integration", "IntegrationId"),
    ("AWS::ApiGatewayV2::Route", "RouteId"),
    ("AWS::ApiGatewayV2::RouteResponse", "RouteResponseId"),
    ("AWS::ApiGatewayV2::Authorizer", "AuthorizerId"),
    ("AWS::ApiGatewayV2::Deployment", "DeploymentId"),
    (
        "AWS::ApiGatewayV2::IntegrationResponse",
        "IntegrationResponseId",
    ),
    ("AWS::ApiGatewayV2::Model", "ModelId"),
];

impl Resolver<'_> {
    /// `Ref` of resource `id`, of type `kind`.
    pub(super) fn resource_ref(&self, id: &str, kind: &str) -> Result<String, TemplateError> {
        Ok(match kind {
            TABLE => {
                let name = self.table_name(id)?;
                self.record(name.clone(), Source::Table(id.to_owned()));
                name
            }
            QUEUE => self.queue_url(id)?,
            SAM_FUNCTION | LAMBDA_FUNCTION => {
                let name = self.function_name(id)?;
                self.record(name.clone(), Source::Function(id.to_owned()));
                name
            }
            API => {
                self.record(id.to_owned(), Source::Api(id.to_owned()));
                id.to_owned()
            }
            STAGE => self.stage_name(id)?,
            ROLE => self.owned_name(id, "RoleName", 64)?,
            TOPIC => self.topic_arn(id)?,
            PARAMETER => self.owned_name(id, "Name", 2048)?,
            BUCKET => self.bucket_name(id)?,
            _ if API_PARTS.iter().any(|(part, _)| *part == kind) => id.to_owned(),
            _ => {
                self.record(id.to_owned(), Source::other(id, kind, None));
                id.to_owned()
            }
        })
    }

    /// `Fn::GetAtt` `attribute` of resource `id`, of type `kind`.
    pub(super) fn resource_att(
        &self,
        id: &str,
        kind: &str,
        attribute: &str,
    ) -> Result<Value, TemplateError> {
        let text = match (kind, attribute) {
            (TABLE, "Arn") => {
                let name = self.table_name(id)?;
                self.record(name.clone(), Source::Table(id.to_owned()));
                self.arn("dynamodb", true, &format!("table/{name}"))
            }
            (TABLE, "StreamArn") => {
                if self.property(id, "StreamSpecification")?.is_none() {
                    return Err(self.error(format!(
                        "Fn::GetAtt {id}.StreamArn: the table has no StreamSpecification (CloudFormation refuses this too)"
                    )));
                }
                let name = self.table_name(id)?;
                self.record(name.clone(), Source::Table(id.to_owned()));
                let arn = self.arn("dynamodb", true, &format!("table/{name}/stream/local"));
                self.record(arn.clone(), Source::other(id, kind, Some("StreamArn")));
                arn
            }
            (QUEUE, "Arn") => {
                let name = self.queue_name(id)?;
                self.record(name.clone(), Source::Queue(id.to_owned()));
                self.arn("sqs", true, &name)
            }
            (QUEUE, "QueueName") => {
                let name = self.queue_name(id)?;
                self.record(name.clone(), Source::Queue(id.to_owned()));
                name
            }
            (QUEUE, "QueueUrl") => self.queue_url(id)?,
            (SAM_FUNCTION | LAMBDA_FUNCTION, "Arn") => {
                let name = self.function_name(id)?;
                self.record(name.clone(), Source::Function(id.to_owned()));
                self.arn("lambda", true, &format!("function:{name}"))
            }
            (API, "ApiId") => self.resource_ref(id, kind)?,
            (API, "ApiEndpoint") => {
                let region = &self.template().settings.region;
                let endpoint = format!("wss://{id}.execute-api.{region}.amazonaws.com");
                self.record(endpoint.clone(), Source::ApiEndpoint(id.to_owned()));
                endpoint
            }
            (ROLE, "Arn") => {
                let name = self.owned_name(id, "RoleName", 64)?;
                self.arn("iam", false, &format!("role/{name}"))
            }
            (TOPIC, "TopicArn") => self.topic_arn(id)?,
            (TOPIC, "TopicName") => self.owned_name(id, "TopicName", 256)?,
            (PARAMETER, "Value") => self.string_property(id, "Value")?.unwrap_or_default(),
            (PARAMETER, "Type") => self
                .string_property(id, "Type")?
                .unwrap_or_else(|| "String".to_owned()),
            (BUCKET, "Arn") => format!("arn:aws:s3:::{}", self.bucket_name(id)?),
            (BUCKET, "DomainName") => format!("{}.s3.amazonaws.com", self.bucket_name(id)?),
            (BUCKET, "RegionalDomainName") => format!(
                "{}.s3.{}.amazonaws.com",
                self.bucket_name(id)?,
                self.template().settings.region
            ),
            (EVENT_SOURCE_MAPPING, "Id") => id.to_owned(),
            (EVENT_SOURCE_MAPPING, "EventSourceMappingArn") => {
                self.arn("lambda", true, &format!("event-source-mapping:{id}"))
            }
            _ if API_PARTS
                .iter()
                .any(|(part, att)| *part == kind && *att == attribute) =>
            {
                id.to_owned()
            }
            _ => {
                let text = format!("{id}.{attribute}");
                self.record(text.clone(), Source::other(id, kind, Some(attribute)));
                text
            }
        };
        Ok(Value::String(text))
    }

    /// Property `property` of resource `id`, resolved by this resolver (so that a name that
    /// refers back to its own resource ends at the nesting cap, not in a stack overflow).
    fn property(&self, id: &str, property: &str) -> Result<Option<Value>, TemplateError> {
        match self
            .template()
            .resource(id)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get(property))
        {
            Some(raw) => self.resolve(raw),
            None => Ok(None),
        }
    }

    fn string_property(&self, id: &str, property: &str) -> Result<Option<String>, TemplateError> {
        match self.property(id, property)? {
            None => Ok(None),
            Some(value) => scalar_text(&value).map(Some).ok_or_else(|| {
                self.error(format!("{id}.{property} must be a string, found {value}"))
            }),
        }
    }

    /// Property `property` of `id` when set, else the name CloudFormation would generate —
    /// `{stack}-{id}` here, at most `max` characters (CloudFormation adds a random suffix).
    fn owned_name(&self, id: &str, property: &str, max: usize) -> Result<String, TemplateError> {
        if let Some(name) = self.string_property(id, property)? {
            return Ok(name);
        }
        Ok(self.generated_name(id, max))
    }

    fn generated_name(&self, id: &str, max: usize) -> String {
        let mut name = format!("{}-{id}", self.template().settings.stack_name);
        if name.len() > max {
            let mut end = max;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
        }
        name
    }

    /// The DynamoDB table's name: `TableName`, else `{stack}-{id}`.
    pub(super) fn table_name(&self, id: &str) -> Result<String, TemplateError> {
        self.owned_name(id, "TableName", 255)
    }

    /// The queue's name: `QueueName`, else `{stack}-{id}` (`.fifo` added for a FIFO queue, as
    /// SQS requires).
    pub(super) fn queue_name(&self, id: &str) -> Result<String, TemplateError> {
        if let Some(name) = self.string_property(id, "QueueName")? {
            return Ok(name);
        }
        let fifo = self
            .property(id, "FifoQueue")?
            .as_ref()
            .and_then(scalar_text)
            .is_some_and(|f| f == "true");
        Ok(if fifo {
            format!("{}.fifo", self.generated_name(id, 75))
        } else {
            self.generated_name(id, 80)
        })
    }

    /// The queue's URL, as the configured endpoint (MiniStack, LocalStack) forms it —
    /// `{endpoint}/{account}/{name}` — or else as SQS does.
    fn queue_url(&self, id: &str) -> Result<String, TemplateError> {
        let name = self.queue_name(id)?;
        let settings = &self.template().settings;
        let url = match &settings.endpoint {
            Some(endpoint) => format!(
                "{}/{}/{name}",
                endpoint.trim_end_matches('/'),
                settings.account_id
            ),
            None => format!(
                "https://sqs.{}.amazonaws.com/{}/{name}",
                settings.region, settings.account_id
            ),
        };
        self.record(url.clone(), Source::Queue(id.to_owned()));
        Ok(url)
    }

    /// The function's name: `FunctionName`, else its logical id — the name `sam local
    /// start-lambda` serves it under, and this tool's default (`--function-names logical-id`).
    pub(super) fn function_name(&self, id: &str) -> Result<String, TemplateError> {
        Ok(self
            .string_property(id, "FunctionName")?
            .unwrap_or_else(|| id.to_owned()))
    }

    /// The stage's name: the served stage when one is set (`--stage`), else `StageName`.
    fn stage_name(&self, id: &str) -> Result<String, TemplateError> {
        if let Some(stage) = &self.template().settings.stage {
            return Ok(stage.clone());
        }
        self.string_property(id, "StageName")?
            .ok_or_else(|| self.error(format!("Ref {id}: the stage has no StageName")))
    }

    fn topic_arn(&self, id: &str) -> Result<String, TemplateError> {
        let name = self.owned_name(id, "TopicName", 256)?;
        let arn = self.arn("sns", true, &name);
        self.record(arn.clone(), Source::other(id, TOPIC, None));
        Ok(arn)
    }

    /// S3 bucket names are lower case: a generated one is lowered.
    fn bucket_name(&self, id: &str) -> Result<String, TemplateError> {
        if let Some(name) = self.string_property(id, "BucketName")? {
            return Ok(name);
        }
        let name = self.generated_name(id, 63).to_ascii_lowercase();
        self.record(name.clone(), Source::other(id, BUCKET, None));
        Ok(name)
    }

    /// `arn:aws:{service}:{region}:{account}:{resource}` (no region for IAM), with the account
    /// (and region) recorded as stand-ins.
    fn arn(&self, service: &str, regional: bool, resource: &str) -> String {
        let settings = &self.template().settings;
        self.record(settings.account_id.clone(), Source::AccountId);
        let region = if regional {
            self.record(settings.region.clone(), Source::Region);
            settings.region.as_str()
        } else {
            ""
        };
        format!(
            "arn:aws:{service}:{region}:{}:{resource}",
            settings.account_id
        )
    }
}
