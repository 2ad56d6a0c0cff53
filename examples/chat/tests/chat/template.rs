//! Checks `examples/chat/template.yaml`, the SAM template that deploys the Lambda examples: the
//! WebSocket API and its routes, the routing table's layout (it must match `DynamoDbStore`'s),
//! the functions' runtime, least-privilege IAM and the outputs. No AWS needed.
//!
//! The template uses CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`, `!If`, `!Equals`);
//! [`long_form`] rewrites them to the JSON form (`{"Ref": …}`, `{"Fn::GetAtt": [..]}`, …) so
//! the assertions hold for either spelling.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The route keys and the cargo-lambda binary (example) behind each.
const ROUTES: [(&str, &str); 9] = [
    ("$connect", "lambda_connect"),
    ("$disconnect", "lambda_disconnect"),
    ("$default", "lambda_message"),
    ("join", "lambda_message"),
    ("leave", "lambda_message"),
    ("send", "lambda_message"),
    ("ping", "lambda_message"),
    ("members", "lambda_message"),
    ("resume", "lambda_message"),
];

/// What a template may reference besides its parameters and resources.
const PSEUDO_PARAMETERS: [&str; 8] = [
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// The template as JSON, with every short tag in its long form.
pub(crate) fn template() -> Value {
    let yaml: serde_norway::Value = serde_norway::from_str(TEMPLATE).expect("template.yaml parses");
    serde_json::to_value(long_form(yaml)).expect("template.yaml is JSON-compatible")
}

/// Rewrites CloudFormation's YAML short tags into the long (JSON) form.
fn long_form(value: serde_norway::Value) -> serde_norway::Value {
    use serde_norway::{Mapping, Value as Y};
    match value {
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = long_form(tagged.value);
            let (key, inner) = match (name, inner) {
                ("Ref" | "Condition", inner) => (name.to_owned(), inner),
                // `!GetAtt Resource.Attribute` is the string form of `[Resource, Attribute]`.
                ("GetAtt", Y::String(s)) => {
                    let (resource, attribute) =
                        s.split_once('.').expect("!GetAtt Resource.Attribute");
                    let parts = vec![Y::String(resource.into()), Y::String(attribute.into())];
                    ("Fn::GetAtt".to_owned(), Y::Sequence(parts))
                }
                (other, inner) => (format!("Fn::{other}"), inner),
            };
            let mut map = Mapping::new();
            map.insert(Y::String(key), inner);
            Y::Mapping(map)
        }
        Y::Sequence(items) => Y::Sequence(items.into_iter().map(long_form).collect()),
        Y::Mapping(map) => Y::Mapping(map.into_iter().map(|(k, v)| (k, long_form(v))).collect()),
        other => other,
    }
}

pub(crate) fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().expect("Resources is a mapping")
}

/// The logical ids of the resources of type `ty`.
pub(crate) fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

pub(crate) fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    resources(t)
        .get(id)
        .unwrap_or_else(|| panic!("no resource {id}"))
}

/// The logical id in `{"Ref": id}`.
pub(crate) fn ref_target(v: &Value) -> Option<&str> {
    v.get("Ref")?.as_str()
}

/// The `${Name}` / `${Name.Attr}` variables of a `Fn::Sub` string (`${!Literal}` excluded).
fn sub_variables(s: &str) -> Vec<&str> {
    let mut vars = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("unclosed ${ in Fn::Sub");
        let var = &after[..end];
        if !var.starts_with('!') {
            vars.push(var);
        }
        rest = &after[end + 1..];
    }
    vars
}

/// The `Fn::Sub` string of `v` (either `"..."` or `["...", {vars}]`).
pub(crate) fn sub_string(v: &Value) -> Option<&str> {
    match v.get("Fn::Sub")? {
        Value::String(s) => Some(s),
        Value::Array(parts) => parts.first()?.as_str(),
        _ => None,
    }
}

/// The function an integration invokes: `${Function.Arn}` in its `IntegrationUri`.
fn integration_function(t: &Value, integration: &Value) -> String {
    let uri = sub_string(&integration["Properties"]["IntegrationUri"])
        .expect("IntegrationUri is a Fn::Sub");
    assert!(
        uri.starts_with(
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        ) && uri.ends_with("/invocations"),
        "not a Lambda invoke ARN: {uri}"
    );
    let vars = sub_variables(uri);
    let function = vars
        .iter()
        .find_map(|v| v.strip_suffix(".Arn"))
        .unwrap_or_else(|| panic!("no ${{Function.Arn}} in {uri}"));
    assert_eq!(resource(t, function)["Type"], "AWS::Serverless::Function");
    function.to_owned()
}

/// The cargo-lambda binary a function deploys: `../../target/lambda/NAME/` → `NAME`.
pub(crate) fn binary_of(function: &Value) -> &str {
    let uri = function["Properties"]["CodeUri"]
        .as_str()
        .expect("CodeUri is a path");
    uri.strip_prefix("../../target/lambda/")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("CodeUri {uri} is not ../../target/lambda/NAME/"))
}

/// The logical id of the WebSocket API (there is exactly one).
pub(crate) fn api_id(t: &Value) -> &str {
    let apis = of_type(t, "AWS::ApiGatewayV2::Api");
    assert_eq!(apis.len(), 1, "exactly one API");
    apis[0].0
}

/// Every IAM statement of a function's inline policies; panics on anything but inline documents.
pub(crate) fn statements(function: &Value) -> Vec<&Value> {
    let policies = function["Properties"]["Policies"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    policies
        .iter()
        .flat_map(|p| {
            let doc = p
                .as_object()
                .unwrap_or_else(|| panic!("not an inline policy document: {p}"));
            doc["Statement"].as_array().expect("Statement is a list")
        })
        // A conditional statement (`Fn::If` [condition, statement, AWS::NoValue]) counts: it
        // may be granted.
        .flat_map(|statement| match statement["Fn::If"].as_array() {
            Some(branches) => branches[1..]
                .iter()
                .filter(|b| **b != json!({"Ref": "AWS::NoValue"}))
                .collect(),
            None => vec![statement],
        })
        .collect()
}

pub(crate) fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string"))
            .collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

/// The actions a function is allowed, over all its statements.
pub(crate) fn actions(function: &Value) -> BTreeSet<&str> {
    statements(function)
        .into_iter()
        .inspect(|s| assert_eq!(s["Effect"], "Allow"))
        .flat_map(|s| strings(&s["Action"]))
        .collect()
}

pub(crate) fn function_by_binary<'a>(t: &'a Value, binary: &str) -> (&'a str, &'a Value) {
    of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| binary_of(f) == binary)
        .unwrap_or_else(|| panic!("no function deploys {binary}"))
}

#[test]
fn is_a_sam_template() {
    let t = template();
    assert_eq!(t["AWSTemplateFormatVersion"], "2010-09-09");
    assert_eq!(t["Transform"], "AWS::Serverless-2016-10-31");
}

#[test]
fn websocket_api_routes_on_the_action_field() {
    let t = template();
    let api = resource(&t, api_id(&t));
    assert_eq!(api["Properties"]["ProtocolType"], "WEBSOCKET");
    assert_eq!(
        api["Properties"]["RouteSelectionExpression"],
        "$request.body.action"
    );
}

#[test]
fn every_route_invokes_its_function_through_a_proxy_integration() {
    let t = template();
    let api = api_id(&t);
    let routes = of_type(&t, "AWS::ApiGatewayV2::Route");
    let keys: BTreeSet<&str> = routes
        .iter()
        .map(|(_, r)| r["Properties"]["RouteKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ROUTES.iter().map(|(k, _)| *k).collect(),
        "exactly these routes"
    );

    for (key, binary) in ROUTES {
        let (id, route) = routes
            .iter()
            .find(|(_, r)| r["Properties"]["RouteKey"] == key)
            .unwrap();
        let props = &route["Properties"];
        assert_eq!(ref_target(&props["ApiId"]), Some(api), "{id}");
        let target =
            sub_string(&props["Target"]).unwrap_or_else(|| panic!("{id}: Target is a Fn::Sub"));
        let integration_id = target
            .strip_prefix("integrations/${")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or_else(|| {
                panic!("{id}: Target {target} is not integrations/${{Integration}}")
            });
        let integration = resource(&t, integration_id);
        assert_eq!(
            integration["Type"], "AWS::ApiGatewayV2::Integration",
            "{id}"
        );
        assert_eq!(
            integration["Properties"]["IntegrationType"], "AWS_PROXY",
            "{id}"
        );
        assert_eq!(
            ref_target(&integration["Properties"]["ApiId"]),
            Some(api),
            "{id}"
        );
        let function = integration_function(&t, integration);
        assert_eq!(binary_of(resource(&t, &function)), binary, "route {key}");
    }
}

#[test]
fn message_routes_return_the_function_body_to_the_caller() {
    let t = template();
    let responses = of_type(&t, "AWS::ApiGatewayV2::RouteResponse");
    for (id, route) in of_type(&t, "AWS::ApiGatewayV2::Route") {
        let key = route["Properties"]["RouteKey"].as_str().unwrap();
        let two_way = !matches!(key, "$connect" | "$disconnect");
        let response = responses
            .iter()
            .find(|(_, r)| ref_target(&r["Properties"]["RouteId"]) == Some(id));
        if two_way {
            assert_eq!(
                route["Properties"]["RouteResponseSelectionExpression"], "$default",
                "{id}"
            );
            let (_, response) = response.unwrap_or_else(|| panic!("{id} has no route response"));
            assert_eq!(
                response["Properties"]["RouteResponseKey"], "$default",
                "{id}"
            );
            assert_eq!(
                ref_target(&response["Properties"]["ApiId"]),
                Some(api_id(&t))
            );
        } else {
            assert!(response.is_none(), "{id} is one-way");
            assert!(
                route["Properties"]
                    .get("RouteResponseSelectionExpression")
                    .is_none(),
                "{id}"
            );
        }
    }
}

#[test]
fn the_authorizer_guards_connect_only_when_enabled() {
    let t = template();
    let parameter = &t["Parameters"]["EnableAuthorizer"];
    assert_eq!(parameter["Default"], "false");
    assert_eq!(parameter["AllowedValues"], json!(["true", "false"]));
    let conditions = t["Conditions"].as_object().unwrap();
    let (condition, _) = conditions
        .iter()
        .find(|(_, c)| c["Fn::Equals"] == json!([{"Ref": "EnableAuthorizer"}, "true"]))
        .expect("a condition EnableAuthorizer == true");

    let authorizers = of_type(&t, "AWS::ApiGatewayV2::Authorizer");
    assert_eq!(authorizers.len(), 1);
    let (authorizer_id, authorizer) = authorizers[0];
    assert_eq!(authorizer["Condition"], condition.as_str());
    let props = &authorizer["Properties"];
    assert_eq!(props["AuthorizerType"], "REQUEST");
    assert_eq!(
        props["IdentitySource"],
        json!(["route.request.querystring.token"])
    );
    // The JWT authorizer when an issuer is given, else the demo token authorizer: each
    // function exists exactly under its branch (references_resolve checks every combination).
    let choice = props["AuthorizerUri"]["Fn::If"].as_array().unwrap();
    assert_eq!(choice[0], "JwtAuthorizerEnabled");
    for (branch, binary, function_condition) in [
        (&choice[1], "lambda_jwt_authorizer", "JwtAuthorizerEnabled"),
        (&choice[2], "lambda_authorizer", "DemoAuthorizerEnabled"),
    ] {
        let uri = sub_string(branch).unwrap();
        assert!(uri.ends_with("/invocations"), "{uri}");
        let function = sub_variables(uri)
            .iter()
            .find_map(|v| v.strip_suffix(".Arn"))
            .unwrap()
            .to_owned();
        let function = resource(&t, &function);
        assert_eq!(binary_of(function), binary);
        assert_eq!(function["Condition"], function_condition);
    }
    assert_eq!(
        conditions["JwtAuthorizerEnabled"],
        json!({"Fn::And": [{"Condition": condition}, {"Condition": "JwtConfigured"}]})
    );
    assert_eq!(
        conditions["JwtConfigured"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]})
    );

    let (_, connect) = of_type(&t, "AWS::ApiGatewayV2::Route")
        .into_iter()
        .find(|(_, r)| r["Properties"]["RouteKey"] == "$connect")
        .unwrap();
    let props = &connect["Properties"];
    assert_eq!(
        props["AuthorizationType"],
        json!({"Fn::If": [condition, "CUSTOM", "NONE"]})
    );
    assert_eq!(
        props["AuthorizerId"],
        json!({"Fn::If": [condition, {"Ref": authorizer_id}, {"Ref": "AWS::NoValue"}]})
    );
    for (id, route) in of_type(&t, "AWS::ApiGatewayV2::Route") {
        if route["Properties"]["RouteKey"] != "$connect" {
            assert_eq!(
                route["Properties"]["AuthorizationType"], "NONE",
                "{id}: authorizers run on $connect only"
            );
        }
    }
    // The handlers refuse unauthenticated connections exactly when the authorizer is on.
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(env["CHAT_REQUIRE_AUTH"], json!({"Ref": "EnableAuthorizer"}));
    assert_eq!(env["CHAT_USER_CLAIM"], "principalId");
}

/// The JWT authorizer reads the issuer and audience from parameters (an issuer without an
/// audience is refused by a rule), and the room grant key reaches exactly the functions that
/// admit users to rooms.
#[test]
fn the_jwt_authorizer_and_the_room_grant_key_are_wired() {
    let t = template();
    let (id, jwt) = function_by_binary(&t, "lambda_jwt_authorizer");
    let env = &jwt["Properties"]["Environment"]["Variables"];
    assert_eq!(env["JWT_ISSUER"], json!({"Ref": "JwtIssuer"}), "{id}");
    assert_eq!(env["JWT_AUDIENCE"], json!({"Ref": "JwtAudience"}), "{id}");
    assert_eq!(
        env["JWT_ACCEPT_CLIENT_ID"],
        json!({"Ref": "JwtAcceptClientId"}),
        "{id}"
    );
    assert!(
        jwt["Properties"].get("Policies").is_none(),
        "{id} needs no AWS permission"
    );
    let rule = &t["Rules"]["JwtNeedsAnAudience"];
    assert_eq!(
        rule["RuleCondition"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]})
    );
    assert_eq!(
        rule["Assertions"][0]["Assert"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtAudience"}, ""]}]})
    );

    let key = &t["Parameters"]["RoomGrantKey"];
    assert_eq!(
        (&key["NoEcho"], &key["Default"]),
        (&json!(true), &json!(""))
    );
    assert_eq!(key["AllowedPattern"], "^(|.{32,})$");
    for (id, function) in of_type(&t, "AWS::Serverless::Function") {
        let env = &function["Properties"]["Environment"]["Variables"];
        let admits = matches!(binary_of(function), "lambda_connect" | "lambda_message");
        assert_eq!(
            env.get("ROOM_GRANT_KEY"),
            admits.then_some(&json!({"Ref": "RoomGrantKey"})),
            "{id}"
        );
        assert_eq!(
            env.get("ROOM_GRANT_KEY_SECRET_ARN"),
            admits.then_some(&json!({"Ref": "RoomGrantKeySecretArn"})),
            "{id}"
        );
    }
    // Not both (the functions refuse to start with both).
    assert_eq!(
        t["Rules"]["OneRoomGrantKey"]["Assertions"][0]["Assert"],
        json!({"Fn::Equals": [{"Ref": "RoomGrantKey"}, ""]})
    );
}

#[test]
fn the_stage_is_deployed_after_every_route() {
    let t = template();
    assert_eq!(t["Parameters"]["StageName"]["Default"], "prod");
    let deployments = of_type(&t, "AWS::ApiGatewayV2::Deployment");
    assert_eq!(deployments.len(), 1);
    let (deployment_id, deployment) = deployments[0];
    let depends: BTreeSet<&str> = strings(&deployment["DependsOn"]).into_iter().collect();
    for (id, _) in of_type(&t, "AWS::ApiGatewayV2::Route")
        .into_iter()
        .chain(of_type(&t, "AWS::ApiGatewayV2::RouteResponse"))
    {
        assert!(depends.contains(id), "the deployment must wait for {id}");
    }
    let stages = of_type(&t, "AWS::ApiGatewayV2::Stage");
    assert_eq!(stages.len(), 1);
    let props = &stages[0].1["Properties"];
    assert_eq!(props["StageName"], json!({"Ref": "StageName"}));
    assert_eq!(props["DeploymentId"], json!({"Ref": deployment_id}));
    assert_eq!(ref_target(&props["ApiId"]), Some(api_id(&t)));
}

/// The routing table: the one with the connection key (the template has two tables; the other
/// is the message history).
pub(crate) fn routing_table(t: &Value) -> (&str, &Value) {
    let tables = of_type(t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 2, "the routing table and the message history");
    tables
        .into_iter()
        .find(|(_, table)| table["Properties"]["KeySchema"][0]["AttributeName"] == "connectionId")
        .expect("a table keyed by connectionId")
}

#[test]
fn the_table_has_the_crates_layout() {
    let t = template();
    let props = &routing_table(&t).1["Properties"];
    assert_eq!(props["BillingMode"], "PAY_PER_REQUEST");
    let key = |hash: &str, range: &str| json!([{"AttributeName": hash, "KeyType": "HASH"}, {"AttributeName": range, "KeyType": "RANGE"}]);
    assert_eq!(props["KeySchema"], key("connectionId", "roomId"));
    let attributes: BTreeMap<&str, &str> = props["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap(),
                a["AttributeType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attributes,
        BTreeMap::from([("connectionId", "S"), ("roomId", "S"), ("userId", "S")])
    );

    let indexes = props["GlobalSecondaryIndexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 2);
    for (name, hash) in [("roomId-index", "roomId"), ("userId-index", "userId")] {
        let index = indexes
            .iter()
            .find(|i| i["IndexName"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(index["KeySchema"], key(hash, "connectionId"), "{name}");
        assert_eq!(
            index["Projection"],
            json!({"ProjectionType": "ALL"}),
            "{name}"
        );
    }
    assert_eq!(
        props["TimeToLiveSpecification"],
        json!({"AttributeName": "ttl", "Enabled": true})
    );
}

/// The message history: `DynamoDbLog`'s layout (its `ensure_table` makes the same), TTL on, read
/// and written by the message function only, with its retention from parameters.
#[test]
fn the_message_history_table_has_the_logs_layout_and_only_the_message_function_uses_it() {
    let t = template();
    let (routing, _) = routing_table(&t);
    let (history, table) = of_type(&t, "AWS::DynamoDB::Table")
        .into_iter()
        .find(|(id, _)| *id != routing)
        .unwrap();
    let props = &table["Properties"];
    assert_eq!(props["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        props["KeySchema"],
        json!([{"AttributeName": "roomId", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}])
    );
    assert_eq!(
        props["AttributeDefinitions"],
        json!([{"AttributeName": "roomId", "AttributeType": "S"}, {"AttributeName": "seq", "AttributeType": "N"}])
    );
    assert!(
        props.get("GlobalSecondaryIndexes").is_none(),
        "no index: reads are by room"
    );
    assert_eq!(
        props["TimeToLiveSpecification"],
        json!({"AttributeName": "ttl", "Enabled": true})
    );
    assert_eq!(table["DeletionPolicy"], "Delete");

    for (id, function) in of_type(&t, "AWS::Serverless::Function") {
        let env = &function["Properties"]["Environment"]["Variables"];
        if binary_of(function) == "lambda_message" {
            assert_eq!(env["MESSAGES_TABLE"], json!({"Ref": history}), "{id}");
            assert_eq!(
                env["MESSAGES_TTL_SECONDS"],
                json!({"Ref": "MessageRetentionSeconds"})
            );
            assert_eq!(
                env["MESSAGES_MAX_PER_ROOM"],
                json!({"Ref": "MessagesPerRoom"})
            );
        } else {
            assert!(
                env.get("MESSAGES_TABLE").is_none(),
                "{id} does not log messages"
            );
        }
    }
    assert!(
        t["Globals"]["Function"]["Environment"]["Variables"]
            .get("MESSAGES_TABLE")
            .is_none()
    );
    // The parameters' defaults are the library's.
    let defaults = stateless_ws::history::LogConfig::default();
    assert_eq!(
        t["Parameters"]["MessageRetentionSeconds"]["Default"],
        json!(defaults.ttl.as_secs())
    );
    assert_eq!(
        t["Parameters"]["MessagesPerRoom"]["Default"],
        json!(defaults.max_messages)
    );
}

#[test]
fn the_functions_read_the_table_and_index_names_the_template_creates() {
    let t = template();
    let (table_id, table) = routing_table(&t);
    let index_names: BTreeSet<&str> = table["Properties"]["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["IndexName"].as_str().unwrap())
        .collect();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(env["CONNECTIONS_TABLE"], json!({"Ref": table_id}));
    assert!(index_names.contains(env["CONNECTIONS_ROOM_INDEX"].as_str().unwrap()));
    assert!(index_names.contains(env["CONNECTIONS_USER_INDEX"].as_str().unwrap()));
    assert_eq!(
        env["CONNECTION_TTL_SECONDS"],
        json!({"Ref": "ConnectionTtlSeconds"})
    );
    assert_eq!(env["CHAT_ECHO_TO_SENDER"], json!({"Ref": "EchoToSender"}));
    assert_eq!(
        env["CHAT_MAX_ROOMS"].as_str().map(str::parse::<usize>),
        Some(Ok(chat::DEFAULT_MAX_ROOMS_PER_CONNECTION)),
        "the template states the chat's room cap"
    );
    assert_eq!(
        sub_string(&env["APIGW_MANAGEMENT_URL"]),
        Some("https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}")
    );
    let (_, authorizer) = function_by_binary(&t, "lambda_authorizer");
    assert_eq!(
        authorizer["Properties"]["Environment"]["Variables"]["AUTHORIZER_TOKENS"],
        json!({"Ref": "AuthorizerTokens"})
    );
    assert_eq!(t["Parameters"]["AuthorizerTokens"]["NoEcho"], true);
}

#[test]
fn every_function_is_a_cargo_lambda_binary_on_al2023_arm64() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    let functions = of_type(&t, "AWS::Serverless::Function");
    let binaries: BTreeSet<&str> = functions.iter().map(|(_, f)| binary_of(f)).collect();
    assert_eq!(
        binaries,
        BTreeSet::from([
            "lambda_authorizer",
            "lambda_jwt_authorizer",
            "lambda_connect",
            "lambda_disconnect",
            "lambda_fanout_worker",
            "lambda_message"
        ])
    );
    for (id, function) in functions {
        // A function's own property wins over Globals.
        let effective = |name: &str| {
            let own = &function["Properties"][name];
            if own.is_null() { &globals[name] } else { own }
        };
        assert_eq!(effective("Runtime"), "provided.al2023", "{id}");
        assert_eq!(*effective("Architectures"), json!(["arm64"]), "{id}");
        assert_eq!(effective("Handler"), "bootstrap", "{id}");
        let timeout = effective("Timeout")
            .as_u64()
            .unwrap_or_else(|| panic!("{id} has a Timeout"));
        // The SQS-triggered worker is not behind API Gateway (see template_queue.rs).
        let limit = if binary_of(function) == "lambda_fanout_worker" {
            900
        } else {
            29
        };
        assert!(
            (1..=limit).contains(&timeout),
            "{id}: API Gateway waits 29 s at most (Lambda 900 s), Timeout {timeout}"
        );
        let memory = effective("MemorySize")
            .as_u64()
            .unwrap_or_else(|| panic!("{id} has a MemorySize"));
        assert!((128..=1024).contains(&memory), "{id}: MemorySize {memory}");
        // Each CodeUri is the output of an example that exists.
        let source = format!(
            "{}/src/bin/{}.rs",
            env!("CARGO_MANIFEST_DIR"),
            binary_of(function)
        );
        assert!(std::path::Path::new(&source).is_file(), "{id}: no {source}");
    }
}

#[test]
fn outputs_give_the_urls_and_the_table() {
    let t = template();
    let outputs = t["Outputs"].as_object().unwrap();
    let values: Vec<&Value> = outputs.values().map(|o| &o["Value"]).collect();
    let has_sub = |s: &str| values.iter().any(|v| sub_string(v) == Some(s));
    assert!(has_sub(
        "wss://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
    ));
    assert!(has_sub(
        "https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
    ));
    for (table_id, _) in of_type(&t, "AWS::DynamoDB::Table") {
        assert!(
            values.contains(&&json!({"Ref": table_id})),
            "the name of {table_id} is an output"
        );
    }
}

/// The value of a condition expression (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`,
/// `Condition`) for the parameter values `params`.
fn holds(t: &Value, expr: &Value, params: &BTreeMap<String, String>) -> bool {
    let scalar = |v: &Value| match v {
        Value::Object(map) => {
            let name = map["Ref"].as_str().expect("a Ref in a condition");
            params
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("condition refers to {name}, not a parameter"))
        }
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let (function, args) = expr.as_object().unwrap().iter().next().unwrap();
    match function.as_str() {
        "Condition" => holds(t, &t["Conditions"][args.as_str().unwrap()], params),
        "Fn::Equals" => scalar(&args[0]) == scalar(&args[1]),
        "Fn::Not" => !holds(t, &args[0], params),
        "Fn::And" => args.as_array().unwrap().iter().all(|a| holds(t, a, params)),
        "Fn::Or" => args.as_array().unwrap().iter().any(|a| holds(t, a, params)),
        other => panic!("condition function {other}"),
    }
}

/// Every `Ref`, `GetAtt`, `${…}`, `DependsOn` and `Condition` names something that exists — for
/// every combination of the parameters the conditions read (their allowed values, or their
/// default and another value), following the `Fn::If` branch each combination takes. A
/// conditional resource referenced where its condition may be false fails the deployment.
#[test]
fn references_resolve() {
    let t = template();
    let parameters = t["Parameters"].as_object().unwrap();
    let conditions = t["Conditions"].as_object().unwrap();
    // The parameters conditions read, each with the values worth trying.
    let mut read = BTreeSet::new();
    fn refs<'a>(v: &'a Value, out: &mut BTreeSet<&'a str>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(name)) = map.get("Ref") {
                    out.insert(name);
                }
                map.values().for_each(|c| refs(c, out));
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            _ => {}
        }
    }
    refs(&t["Conditions"], &mut read);
    let choices: Vec<(&str, Vec<String>)> = read
        .into_iter()
        .map(|name| {
            let p = &parameters[name];
            let values = match p["AllowedValues"].as_array() {
                Some(allowed) => allowed
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
                None => vec![
                    p["Default"].as_str().unwrap_or_default().to_owned(),
                    "x".to_owned(),
                ],
            };
            (name, values)
        })
        .collect();
    let combinations = choices.iter().map(|(_, v)| v.len()).product::<usize>();
    assert!(
        combinations >= 4,
        "the authorizer's conditions are exercised"
    );

    for mut n in 0..combinations {
        let mut params = BTreeMap::new();
        for (name, values) in &choices {
            params.insert((*name).to_owned(), values[n % values.len()].clone());
            n /= values.len();
        }
        for (name, c) in conditions {
            holds(&t, c, &params); // every condition evaluates
            let _ = name;
        }
        let exists = |id: &str| {
            resources(&t)[id]["Condition"]
                .as_str()
                .is_none_or(|c| holds(&t, &t["Conditions"][c], &params))
        };
        let check = |name: &str, whence: &str| {
            if PSEUDO_PARAMETERS.contains(&name) || parameters.contains_key(name) {
                return;
            }
            assert!(
                resources(&t).contains_key(name),
                "{whence}: {name} is no parameter or resource"
            );
            assert!(
                exists(name),
                "{whence}: {name} does not exist with {params:?}"
            );
        };
        fn walk(
            t: &Value,
            v: &Value,
            params: &BTreeMap<String, String>,
            visit: &mut dyn FnMut(&str),
        ) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::Array(branches)) = map.get("Fn::If") {
                        let condition = &t["Conditions"][branches[0].as_str().unwrap()];
                        let taken = if holds(t, condition, params) { 1 } else { 2 };
                        return walk(t, &branches[taken], params, visit);
                    }
                    if let Some(Value::String(target)) = map.get("Ref") {
                        visit(target);
                    }
                    if let Some(Value::Array(parts)) = map.get("Fn::GetAtt") {
                        visit(parts[0].as_str().unwrap());
                    }
                    if let Some(sub) = map.get("Fn::Sub") {
                        let (text, local) = match sub {
                            Value::Array(parts) => {
                                (parts[0].as_str().unwrap(), parts[1].as_object().cloned())
                            }
                            other => (other.as_str().unwrap(), None),
                        };
                        for var in sub_variables(text) {
                            let name = var.split('.').next().unwrap();
                            let local = local.as_ref().is_some_and(|l| l.contains_key(name));
                            if !local && !PSEUDO_PARAMETERS.contains(&var) {
                                visit(name);
                            }
                        }
                    }
                    for (key, child) in map {
                        if key != "Fn::Sub" {
                            walk(t, child, params, visit);
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|i| walk(t, i, params, visit)),
                _ => {}
            }
        }
        for (id, r) in resources(&t) {
            if let Some(condition) = r["Condition"].as_str() {
                assert!(
                    conditions.contains_key(condition),
                    "{id}: no condition {condition}"
                );
            }
            if !exists(id) {
                continue;
            }
            walk(&t, &r["Properties"], &params, &mut |name| check(name, id));
            if let Some(depends) = r.get("DependsOn") {
                for name in strings(depends) {
                    check(name, id);
                }
            }
        }
        walk(&t, &t["Globals"], &params, &mut |name| {
            check(name, "Globals")
        });
        walk(&t, &t["Outputs"], &params, &mut |name| {
            check(name, "Outputs")
        });
    }
}
