//! `Ref` and `Fn::GetAtt` of every resource type the templates use (issue 18, item 2), and the
//! stand-ins noted for values with nothing behind them locally.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use stateless_ws_local::{LocalApi, Settings, StandIn};

fn error(text: &str) -> String {
    LocalApi::from_template(text, Settings::default(), None)
        .expect_err("the template is refused")
        .to_string()
}

// Issue 18, item 2: every Ref and Fn::GetAtt the templates use, as CloudFormation documents
// them ("Return values" of each resource type), with the values a deployment would form
// locally.
const RESOURCES: &str = r#"
Parameters:
  StageName: {Type: String, Default: prod}
  Shared: {Type: String, Default: shared-table}
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !Sub "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations"}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Sub "integrations/${Integration}"}
  Stage:
    Type: AWS::ApiGatewayV2::Stage
    Properties: {ApiId: !Ref Api, StageName: !Ref StageName}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-connections"
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      BillingMode: PAY_PER_REQUEST
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Plain:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
  SharedTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Ref Shared
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
  Queue:
    Type: AWS::SQS::Queue
    Properties: {QueueName: jobs, VisibilityTimeout: 60}
  Fifo:
    Type: AWS::SQS::Queue
    Properties: {FifoQueue: true}
  Named:
    Type: AWS::Lambda::Function
    Properties: {FunctionName: named-fn}
  Role: {Type: AWS::IAM::Role}
  Topic: {Type: AWS::SNS::Topic}
  Param:
    Type: AWS::SSM::Parameter
    Properties: {Type: String, Value: !Sub "v-${Stage}"}
  Bucket: {Type: AWS::S3::Bucket}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Queue.Arn, FunctionName: !Ref Named}
  Odd: {Type: Custom::Thing}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Environment:
        Variables:
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          STREAM: !GetAtt Table.StreamArn
          PLAIN: !Ref Plain
          SHARED: !Ref Shared
          QUEUE_URL: !Ref Queue
          QUEUE_URL_ATT: !GetAtt Queue.QueueUrl
          QUEUE_ARN: !GetAtt Queue.Arn
          QUEUE_NAME: !GetAtt Queue.QueueName
          FIFO: !GetAtt Fifo.QueueName
          FN: !Ref Named
          FN_ARN: !GetAtt Named.Arn
          SELF: !Ref Fn
          API: !Ref Api
          API_ID: !GetAtt Api.ApiId
          API_ENDPOINT: !GetAtt Api.ApiEndpoint
          STAGE: !Ref Stage
          URL: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"
          ROLE: !Ref Role
          ROLE_ARN: !GetAtt Role.Arn
          TOPIC: !Ref Topic
          TOPIC_NAME: !GetAtt Topic.TopicName
          PARAM: !Ref Param
          PARAM_VALUE: !GetAtt Param.Value
          BUCKET: !Ref Bucket
          BUCKET_ARN: !GetAtt Bucket.Arn
          MAPPING: !Ref Mapping
          ODD: !Ref Odd
          ODD_ATT: !GetAtt Odd.Whatever
          ROUTE: !Ref Route
          ROUTE_ID: !GetAtt Route.RouteId
          ACCOUNT: !Ref AWS::AccountId
"#;

#[test]
fn refs_and_attributes_mean_what_cloudformation_says() {
    let api = LocalApi::from_template(RESOURCES, Settings::default(), None).unwrap();
    assert_eq!(api.api().routes[0].function, "Fn");
    let env = api.environment("Fn", "x", &BTreeMap::new());
    let expected = [
        ("TABLE", "local-connections"),
        (
            "TABLE_ARN",
            "arn:aws:dynamodb:us-east-1:000000000000:table/local-connections",
        ),
        (
            "STREAM",
            "arn:aws:dynamodb:us-east-1:000000000000:table/local-connections/stream/local",
        ),
        ("PLAIN", "local-Plain"),
        ("SHARED", "shared-table"),
        (
            "QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/000000000000/jobs",
        ),
        (
            "QUEUE_URL_ATT",
            "https://sqs.us-east-1.amazonaws.com/000000000000/jobs",
        ),
        ("QUEUE_ARN", "arn:aws:sqs:us-east-1:000000000000:jobs"),
        ("QUEUE_NAME", "jobs"),
        ("FIFO", "local-Fifo.fifo"),
        ("FN", "named-fn"),
        (
            "FN_ARN",
            "arn:aws:lambda:us-east-1:000000000000:function:named-fn",
        ),
        ("SELF", "Fn"),
        ("API", "Api"),
        ("API_ID", "Api"),
        (
            "API_ENDPOINT",
            "wss://Api.execute-api.us-east-1.amazonaws.com",
        ),
        ("STAGE", "prod"),
        (
            "URL",
            "https://Api.execute-api.us-east-1.amazonaws.com/prod",
        ),
        ("ROLE", "local-Role"),
        ("ROLE_ARN", "arn:aws:iam::000000000000:role/local-Role"),
        ("TOPIC", "arn:aws:sns:us-east-1:000000000000:local-Topic"),
        ("TOPIC_NAME", "local-Topic"),
        ("PARAM", "local-Param"),
        ("PARAM_VALUE", "v-prod"),
        ("BUCKET", "local-bucket"),
        ("BUCKET_ARN", "arn:aws:s3:::local-bucket"),
        ("MAPPING", "Mapping"),
        ("ODD", "Odd"),
        ("ODD_ATT", "Odd.Whatever"),
        ("ROUTE", "Route"),
        ("ROUTE_ID", "Route"),
        ("ACCOUNT", "000000000000"),
    ];
    for (name, value) in expected {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }

    // Stand-ins, each value once, with every variable holding it.
    let notes: Vec<String> = api
        .stand_ins(&BTreeMap::new())
        .iter()
        .map(StandIn::note)
        .collect();
    let note = |start: &str| {
        notes
            .iter()
            .find(|n| n.starts_with(start))
            .unwrap_or_else(|| panic!("no note starting {start:?} in {notes:#?}"))
            .clone()
    };
    let table = note(
        "local-connections (in STREAM, TABLE, TABLE_ARN) is the name of the DynamoDB table Table;",
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("DynamoDB table Table"))
            .count(),
        1
    );
    assert!(
        table.contains(
            r#""StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"}"#
        ),
        "{table}"
    );
    assert!(
        !table.contains("random suffix"),
        "TableName is set: {table}"
    );
    assert!(
        note("local-Plain (in PLAIN) is the name of the DynamoDB table Plain (no TableName")
            .contains("ProvisionedThroughput")
    );
    // A variable holding a table's name through a parameter the table uses too.
    note("shared-table (in SHARED) is the name of the DynamoDB table SharedTable");
    // A queue's URL, ARN and name: one note, with the value met first (variables in order).
    note("jobs (in QUEUE_ARN, QUEUE_NAME, QUEUE_URL, QUEUE_URL_ATT) is queue Queue (jobs)");
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("is queue Queue"))
            .count(),
        1
    );
    note(
        "000000000000 (in ACCOUNT, FN_ARN, QUEUE_ARN, ROLE_ARN, STREAM, TABLE_ARN, TOPIC) is AWS::AccountId",
    );
    note("us-east-1 (in FN_ARN, QUEUE_ARN, STREAM, TABLE_ARN, TOPIC, URL) is AWS::Region");
    note("named-fn (in FN, FN_ARN) is the name of function Named");
    note("Api (in API, API_ID, URL) is the API id of Api");
    note("wss://Api.execute-api.us-east-1.amazonaws.com (in API_ENDPOINT)");
    note("Odd.Whatever (in ODD_ATT) is a stand-in for Odd.Whatever of the Custom::Thing Odd");

    // With an endpoint, a stack name and a stage of the developer's.
    let settings = Settings {
        stack_name: "demo".to_owned(),
        endpoint: Some("http://127.0.0.1:4566/".to_owned()),
        stage: Some("dev".to_owned()),
        ..Settings::default()
    };
    let api = LocalApi::from_template(RESOURCES, settings, None).unwrap();
    assert_eq!(api.api().stage, "dev");
    let env = api.environment("Fn", "x", &BTreeMap::new());
    for (name, value) in [
        ("TABLE", "demo-connections"),
        ("QUEUE_URL", "http://127.0.0.1:4566/000000000000/jobs"),
        ("FIFO", "demo-Fifo.fifo"),
        ("STAGE", "dev"),
        ("URL", "https://Api.execute-api.us-east-1.amazonaws.com/dev"),
        ("PARAM_VALUE", "v-dev"),
    ] {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
    let notes: Vec<String> = api
        .stand_ins(&BTreeMap::new())
        .iter()
        .map(StandIn::note)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains(
            "aws dynamodb create-table --endpoint-url http://127.0.0.1:4566/ --cli-input-json"
        )),
        "{notes:#?}"
    );
    assert!(notes.iter().any(|n| n.contains("aws --endpoint-url http://127.0.0.1:4566/ sqs create-queue --queue-name jobs --attributes VisibilityTimeout=60")), "{notes:#?}");
}

#[test]
fn impossible_attributes_and_self_references_are_named() {
    let no_stream = RESOURCES.replace(
        "      StreamSpecification: {StreamViewType: NEW_IMAGE}\n",
        "",
    );
    let err = error(&no_stream);
    assert!(
        err.contains("StreamArn") && err.contains("StreamSpecification"),
        "{err}"
    );
    let itself = RESOURCES.replace(
        r#"TableName: !Sub "${AWS::StackName}-connections""#,
        r#"TableName: !Sub "${Table}-x""#,
    );
    let err = error(&itself);
    assert!(err.contains("nested more than 32 deep"), "{err}");
}
