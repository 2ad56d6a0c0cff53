//! Reading templates: the chat's (authorizer on and off, both namings) and the edge cases a
//! developer hits — each error names the resource and property at fault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use stateless_ws_local::{LocalApi, Naming, Settings, StandIn, TemplateError};

const CHAT: &str = include_str!("../../../examples/chat/template.yaml");

fn with(parameters: &[(&str, &str)]) -> Settings {
    Settings {
        parameter_overrides: parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Settings::default()
    }
}

fn error(text: &str) -> String {
    LocalApi::from_template(text, Settings::default(), None)
        .expect_err("the template is refused")
        .to_string()
}

#[test]
fn the_chat_template_without_its_authorizer() {
    let api = LocalApi::from_template(CHAT, Settings::default(), None).unwrap();
    let spec = api.api();
    assert_eq!(spec.logical_id, "WebSocketApi");
    assert_eq!(spec.route_selection, "action");
    assert_eq!(spec.stage, "prod");
    assert_eq!(spec.authorizer, None, "EnableAuthorizer defaults to false");
    let routes: Vec<(&str, &str, bool)> = spec
        .routes
        .iter()
        .map(|r| (r.route_key.as_str(), r.function.as_str(), r.two_way))
        .collect();
    assert_eq!(
        routes,
        [
            ("$connect", "ConnectFunction", false),
            ("$default", "MessageFunction", true),
            ("$disconnect", "DisconnectFunction", false),
            ("join", "MessageFunction", true),
            ("leave", "MessageFunction", true),
            ("members", "MessageFunction", true),
            ("ping", "MessageFunction", true),
            ("resume", "MessageFunction", true),
            ("send", "MessageFunction", true),
        ]
    );
    let names = api
        .function_names(Naming::Binary, &BTreeMap::new())
        .unwrap();
    assert_eq!(names["ConnectFunction"], "lambda_connect");
    assert_eq!(names["MessageFunction"], "lambda_message");
    let env = api.environment(
        "MessageFunction",
        "http://127.0.0.1:1/prod",
        &BTreeMap::new(),
    );
    assert_eq!(env["APIGW_MANAGEMENT_URL"], "http://127.0.0.1:1/prod");
    // Issue 18, item 2: a table's Ref is its name — without TableName, {stack}-{LogicalId}
    // (CloudFormation adds a random suffix) — never its logical id.
    assert_eq!(env["CONNECTIONS_TABLE"], "local-ConnectionsTable");
    assert_eq!(env["CONNECTION_TTL_SECONDS"], "7200");
    assert_eq!(env["CHAT_REQUIRE_AUTH"], "false");
    // A queue's Ref is its URL, in account 000000000000 (MiniStack's, LocalStack's).
    assert_eq!(
        env["FANOUT_QUEUE_URL"],
        "https://sqs.us-east-1.amazonaws.com/000000000000/local-FanoutQueue"
    );
    // Neither has anything behind it locally: one note each, naming the variables and what to
    // do (the table's create-table input from the template).
    let stand_ins = api.stand_ins(&BTreeMap::new());
    let notes: Vec<String> = stand_ins.iter().map(StandIn::note).collect();
    assert_eq!(notes.len(), 3, "{notes:#?}");
    assert!(notes[0].starts_with("local-ConnectionsTable (in CONNECTIONS_TABLE) is the name of the DynamoDB table ConnectionsTable"), "{notes:#?}");
    assert!(
        notes[0].contains("aws dynamodb create-table --cli-input-json '{"),
        "{notes:#?}"
    );
    assert!(
        notes[0].contains("update-time-to-live") && notes[0].contains("AttributeName=ttl"),
        "{notes:#?}"
    );
    let input = stand_ins[0].create_table.as_ref().unwrap();
    assert_eq!(input["TableName"], "local-ConnectionsTable");
    assert_eq!(
        input["GlobalSecondaryIndexes"][0]["IndexName"],
        "roomId-index"
    );
    assert_eq!(input["BillingMode"], "PAY_PER_REQUEST");
    assert!(notes[1].starts_with("https://sqs.us-east-1.amazonaws.com/000000000000/local-FanoutQueue (in FANOUT_QUEUE_URL) is queue FanoutQueue"), "{notes:#?}");
    assert!(notes[1].contains("--aws-endpoint"), "{notes:#?}");
    // The message history (issue 19): the log's layout, with its TTL.
    assert!(notes[2].starts_with("local-MessagesTable (in MESSAGES_TABLE) is the name of the DynamoDB table MessagesTable"), "{notes:#?}");
    let input = stand_ins[2].create_table.as_ref().unwrap();
    assert_eq!(
        input["KeySchema"],
        serde_json::json!([{"AttributeName": "roomId", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}])
    );
    assert!(notes[2].contains("AttributeName=ttl"), "{notes:#?}");
    // A variable given with --env is the developer's: no note.
    let extra = [("CONNECTIONS_TABLE".to_owned(), "mine".to_owned())].into();
    assert_eq!(api.stand_ins(&extra).len(), 2);
}

/// With an issuer, the chat's authorizer is the JWT one (`Fn::If` in the authorizer's URI, the
/// demo function's condition false), with its environment from the parameters.
#[test]
fn the_chat_template_with_its_jwt_authorizer() {
    let settings = with(&[
        ("EnableAuthorizer", "true"),
        ("JwtIssuer", "https://issuer.example"),
        ("JwtAudience", "client-1"),
    ]);
    let api = LocalApi::from_template(CHAT, settings, None).unwrap();
    let auth = api
        .api()
        .authorizer
        .clone()
        .expect("the condition puts it in");
    assert_eq!(auth.function, "JwtAuthorizerFunction");
    assert_eq!(auth.identity_sources, ["route.request.querystring.token"]);
    let names = api
        .function_names(Naming::LogicalId, &BTreeMap::new())
        .unwrap();
    assert!(names.contains_key("JwtAuthorizerFunction"), "{names:?}");
    assert!(!names.contains_key("AuthorizerFunction"), "{names:?}");
    let env = api.environment(
        "JwtAuthorizerFunction",
        "http://127.0.0.1:1/prod",
        &BTreeMap::new(),
    );
    assert_eq!(env["JWT_ISSUER"], "https://issuer.example");
    assert_eq!(env["JWT_AUDIENCE"], "client-1");
    assert_eq!(env["JWT_ACCEPT_CLIENT_ID"], "false");
}

#[test]
fn the_chat_template_with_its_authorizer() {
    let settings = with(&[
        ("EnableAuthorizer", "true"),
        ("AuthorizerTokens", "t:alice"),
        ("StageName", "dev"),
    ]);
    let api = LocalApi::from_template(CHAT, settings, None).unwrap();
    let auth = api
        .api()
        .authorizer
        .clone()
        .expect("the condition puts it in");
    assert_eq!(auth.function, "AuthorizerFunction");
    assert_eq!(auth.identity_sources, ["route.request.querystring.token"]);
    assert_eq!(api.api().stage, "dev");
    let names = api
        .function_names(Naming::LogicalId, &BTreeMap::new())
        .unwrap();
    assert_eq!(names.len(), 4);
    let env = api.env_file(
        "http://127.0.0.1:1/dev",
        &[("EXTRA".to_owned(), "a b".to_owned())].into(),
    );
    assert!(env.contains("AUTHORIZER_TOKENS=t:alice\n"), "{env}");
    assert!(env.contains("CHAT_REQUIRE_AUTH=true\n"), "{env}");
    assert!(env.contains("EXTRA='a b'\n"), "{env}");
    let mapped = api
        .function_names(
            Naming::Binary,
            &[("AuthorizerFunction".to_owned(), "auth".to_owned())].into(),
        )
        .unwrap();
    assert_eq!(mapped["AuthorizerFunction"], "auth");
    let err = api
        .function_names(
            Naming::LogicalId,
            &[("Nope".to_owned(), "x".to_owned())].into(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("Nope"), "{err}");
}

#[test]
fn parameters_are_checked() {
    let err =
        LocalApi::from_template(CHAT, with(&[("EnableAuthorizer", "yes")]), None).unwrap_err();
    assert!(
        matches!(&err, TemplateError::Parameter { name, .. } if name == "EnableAuthorizer"),
        "{err}"
    );
    let err = LocalApi::from_template(CHAT, with(&[("Typo", "1")]), None).unwrap_err();
    assert!(err.to_string().contains("Typo"), "{err}");
}

const MINIMAL: &str = r#"
Parameters:
  Mode: {Type: String}
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.type}
  Integration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !GetAtt Fn.Arn
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Join ["/", [integrations, !Ref Integration]]}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Environment: {Variables: {MODE: !Ref Mode, LITERAL: !Sub "${!Not} ${AWS::Region}"}}
"#;

#[test]
fn plain_lambda_functions_join_and_function_arns() {
    let api = LocalApi::from_template(MINIMAL, with(&[("Mode", "m")]), None).unwrap();
    assert_eq!(api.api().routes[0].function, "Fn");
    assert_eq!(api.api().stage, "local");
    assert_eq!(api.api().route_selection, "type");
    let env = api.environment("Fn", "x", &BTreeMap::new());
    assert_eq!(env["MODE"], "m");
    assert_eq!(env["LITERAL"], "${Not} us-east-1");
    let err = api
        .function_names(Naming::Binary, &BTreeMap::new())
        .unwrap_err();
    assert!(
        err.to_string().contains("--function-name-map Fn=NAME"),
        "{err}"
    );
}

#[test]
fn a_parameter_without_value_is_named() {
    let err = error(MINIMAL);
    assert!(
        err.contains("Mode") && err.contains("--parameter-overrides"),
        "{err}"
    );
}

#[test]
fn errors_name_the_resource_and_property() {
    let cases = [
        // an integration pointing at a function that does not exist
        (
            MINIMAL.replace("!GetAtt Fn.Arn", "!GetAtt Missing.Arn"),
            "resource Integration, IntegrationUri",
        ),
        // an intrinsic function this tool does not evaluate
        (
            MINIMAL.replace("!GetAtt Fn.Arn", "!ImportValue shared-fn"),
            "Fn::ImportValue",
        ),
        // a URI that is no Lambda function
        (
            MINIMAL.replace("!GetAtt Fn.Arn", "https://example.com"),
            "does not name a Lambda function",
        ),
        // a non-proxy integration
        (
            MINIMAL.replace("AWS_PROXY", "HTTP_PROXY"),
            "resource Integration, IntegrationType",
        ),
        // a route without target
        (
            MINIMAL.replace(
                ", Target: !Join [\"/\", [integrations, !Ref Integration]]",
                "",
            ),
            "resource Route, Target",
        ),
        // no WebSocket API
        (
            MINIMAL.replace("WEBSOCKET", "HTTP"),
            "no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET",
        ),
        // a selection expression API Gateway allows but this tool does not evaluate
        (
            MINIMAL.replace("$request.body.type", "\\$default"),
            "RouteSelectionExpression",
        ),
        // an unknown Ref
        (MINIMAL.replace("!Ref Mode", "!Ref Nope"), "Ref Nope"),
    ];
    for (text, expected) in cases {
        let text = text.replace(
            "Parameters:\n  Mode: {Type: String}",
            "Parameters:\n  Mode: {Type: String, Default: x}",
        );
        let err = error(&text);
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    assert!(error("not: [valid").starts_with("template:"));
    assert!(error("Resources: 3").contains("no Resources"));
}

#[test]
fn custom_authorization_needs_a_request_authorizer() {
    let base = MINIMAL.replace("Mode: {Type: String}", "Mode: {Type: String, Default: x}");
    let connect = base.replace(
        "RouteKey: $default",
        "RouteKey: $connect, AuthorizationType: CUSTOM, AuthorizerId: !Ref Auth",
    ) + r#"
  Auth:
    Type: AWS::ApiGatewayV2::Authorizer
    Properties:
      ApiId: !Ref Api
      AuthorizerType: JWT
      AuthorizerUri: !GetAtt Fn.Arn
"#;
    let err = error(&connect);
    assert!(err.contains("resource Auth, AuthorizerType"), "{err}");
    let request = connect.replace("JWT", "REQUEST");
    let api = LocalApi::from_template(&request, Settings::default(), None).unwrap();
    assert_eq!(
        api.api().authorizer.as_ref().map(|a| a.function.as_str()),
        Some("Fn")
    );
    let on_message = connect.replace("$connect", "join");
    assert!(error(&on_message).contains("only valid on $connect"));
}

/// `LocalApi::from_template(text)` on a thread of its own: its outcome as text (the error's, or
/// "ok") and how long it took, or a panic after `limit`.
fn timed(text: String, limit: std::time::Duration) -> (String, std::time::Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let outcome = match LocalApi::from_template(&text, Settings::default(), None) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        let _ = tx.send((outcome, started.elapsed()));
    });
    let (outcome, took) = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("template resolution still running after {limit:?}"));
    eprintln!("{took:?}: {outcome}");
    (outcome, took)
}

/// MINIMAL with the API's `RouteSelectionExpression` set to `expression` and `extra` sections.
fn minimal_with(expression: &str, extra: &str) -> String {
    MINIMAL.replace(
        "Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.type}",
        &format!("Properties:\n      ProtocolType: WEBSOCKET\n      RouteSelectionExpression: {expression}"),
    ).replace("Parameters:\n  Mode: {Type: String}", &format!("Parameters:\n  Mode: {{Type: String, Default: m}}\n{extra}"))
}

// Issue 17, item 13: values used twice in nested Fn::Sub double at each level (2^26).
#[test]
fn nested_subs_resolve_each_value_once_and_cap_the_output() {
    let mut value = "!Sub [\"${x}${x}\", {x: a}]".to_owned();
    for _ in 1..26 {
        value = format!("!Sub [\"${{x}}${{x}}\", {{x: {value}}}]");
    }
    let template = minimal_with(&value, "");
    assert!(template.len() < 2_000, "{} bytes", template.len());
    let (outcome, took) = timed(template, std::time::Duration::from_secs(5));
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    assert!(
        outcome.contains("Api") && outcome.contains("RouteSelectionExpression"),
        "{outcome}"
    );
    assert!(outcome.contains("larger than"), "{outcome}");

    // Shallower, the same shape resolves.
    let mut value = "!Sub [\"${x}${x}\", {x: a}]".to_owned();
    for _ in 1..8 {
        value = format!("!Sub [\"${{x}}${{x}}\", {{x: {value}}}]");
    }
    let (outcome, _) = timed(
        minimal_with(
            &format!("!Sub [\"$request.body.${{x}}\", {{x: {value}}}]"),
            "",
        ),
        std::time::Duration::from_secs(5),
    );
    assert_eq!(outcome, "ok");
}

#[test]
fn twenty_thousand_chained_conditions_are_evaluated_quickly() {
    // Each condition depends on the next one, against the order the section is read in.
    let mut conditions = String::from("Conditions:\n");
    let n = 20_000;
    for i in 0..n - 1 {
        conditions.push_str(&format!("  C{i:05}: !Not [!Condition C{:05}]\n", i + 1));
    }
    conditions.push_str(&format!("  C{:05}: !Equals [!Ref Mode, m]\n", n - 1));
    let (outcome, took) = timed(
        minimal_with("$request.body.type", &conditions),
        std::time::Duration::from_secs(10),
    );
    assert_eq!(outcome, "ok");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");

    // A cycle is named.
    let cycle = "Conditions:\n  A: !Not [!Condition B]\n  B: !Not [!Condition A]\n";
    let (outcome, _) = timed(
        minimal_with("$request.body.type", cycle),
        std::time::Duration::from_secs(5),
    );
    assert!(
        outcome.contains("Conditions") && outcome.contains("cycle"),
        "{outcome}"
    );
}

#[test]
fn a_depth_bomb_is_refused_naming_the_resource() {
    let mut value = "$request.body.type".to_owned();
    for _ in 0..100 {
        value = format!("!If [Yes, {value}, x]");
    }
    let (outcome, took) = timed(
        minimal_with(&value, "Conditions:\n  Yes: !Equals [a, a]\n"),
        std::time::Duration::from_secs(5),
    );
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    assert!(
        outcome.contains("Api") && outcome.contains("RouteSelectionExpression"),
        "{outcome}"
    );
    assert!(outcome.contains("nested"), "{outcome}");
}

// Issue 17, item 14: a UTF-8 byte order mark (as Windows editors write) is not a document.
#[test]
fn a_template_with_a_byte_order_mark_is_read() {
    for text in [
        format!("\u{feff}{MINIMAL}"),
        format!("\u{feff}---{MINIMAL}"),
        format!("\u{feff}# a comment{MINIMAL}"),
        format!("\u{feff}AWSTemplateFormatVersion: '2010-09-09'{MINIMAL}"),
        "\u{feff}{\"Parameters\": {\"Mode\": {\"Type\": \"String\"}}, \"Resources\": {\"Api\": {\"Type\": \"AWS::ApiGatewayV2::Api\", \"Properties\": {\"ProtocolType\": \"WEBSOCKET\", \"RouteSelectionExpression\": \"$request.body.type\"}}}}"
            .to_owned(),
    ] {
        let outcome = LocalApi::from_template(&text, with(&[("Mode", "m")]), None);
        let err = outcome
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            !err.contains("document") && !err.contains("BOM"),
            "{err}: {:?}",
            &text[..40]
        );
    }
}

/// A dotenv reader as `dotenvy` (what `cargo lambda watch --env-file` uses) reads a file:
/// single quotes literal (across lines), double quotes with `\\ \" \$ \n` escapes and
/// `$NAME`/`${NAME}` expanded, bare values expanded. Every expansion is recorded, so a test
/// sees one the file did not mean.
fn read_dotenv(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut expanded = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').unwrap_or(rest.len());
        if rest.starts_with('#') || line_end == 0 {
            rest = &rest[(line_end + 1).min(rest.len())..];
            continue;
        }
        let (key, after) = rest.split_once('=').unwrap();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let consumed;
        match after.chars().next() {
            Some('\'') => {
                chars.next();
                let close = after[1..].find('\'').expect("closing quote") + 1;
                value.push_str(&after[1..close]);
                consumed = close + 1;
            }
            Some('"') => {
                chars.next();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        '$' => expanded.push(format!("{key}: ${}", &after[i + 1..])),
                        c => value.push(c),
                    }
                }
                consumed = end.expect("closing quote");
            }
            _ => {
                let end = after.find('\n').unwrap_or(after.len());
                let bare = &after[..end];
                if bare.contains('$') {
                    expanded.push(format!("{key}: {bare}"));
                }
                assert!(!bare.contains(['"', '\'', ' ', '#']), "{key}={bare}");
                value.push_str(bare);
                consumed = end;
            }
        }
        values.insert(key.to_owned(), value);
        rest = &after[consumed..];
        assert!(
            rest.is_empty() || rest.starts_with('\n'),
            "junk after {key}: {rest:?}"
        );
        rest = rest.get(1..).unwrap_or("");
    }
    (values, expanded)
}

#[test]
fn env_file_values_are_read_back_literally() {
    let api = LocalApi::from_template(MINIMAL, with(&[("Mode", "m")]), None).unwrap();
    let tricky = [
        "cost$HOME",
        "${USER}",
        "a b",
        "it's",
        "say \"hi\"",
        "both ' and \" and $x",
        "back\\slash $y",
        "two\nlines",
        "tab\there # not a comment",
        "",
        "plain-value_1.2:3/4",
    ];
    let extra: BTreeMap<String, String> = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("V{i:02}"), (*v).to_owned()))
        .collect();
    let text = api.env_file("http://127.0.0.1:1/local", &extra);
    let (values, expanded) = read_dotenv(&text);
    assert!(
        expanded.is_empty(),
        "a reader would expand {expanded:?} in\n{text}"
    );
    for (key, value) in &extra {
        assert_eq!(values.get(key), Some(value), "{key} in\n{text}");
    }
}
