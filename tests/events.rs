//! API Gateway WebSocket events: real-shaped fixtures round-trip, dispatch, and every kind of bad
//! input gives a typed error naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::error::Error as _;

use serde_json::{Value, json};
use stateless_ws::{
    ConnectEvent, DisconnectEvent, Error, EventType, MessageEvent, RequestContext, WebSocketEvent,
};

const CONNECT: &str = include_str!("fixtures/connect.json");
const DISCONNECT: &str = include_str!("fixtures/disconnect.json");
const MESSAGE: &str = include_str!("fixtures/message.json");
const MESSAGE_BASE64: &str = include_str!("fixtures/message_base64.json");

const FIXTURES: [(&str, &str); 4] = [
    ("connect", CONNECT),
    ("disconnect", DISCONNECT),
    ("message", MESSAGE),
    ("message_base64", MESSAGE_BASE64),
];

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn tree(fixture: &str) -> Value {
    serde_json::from_str(fixture).unwrap()
}

/// Every `requestContext` field exposed, checked against the fixture's JSON.
fn assert_context_matches(ctx: &RequestContext, json: &Value) {
    let rc = &json["requestContext"];
    let s = |k: &str| rc.get(k).and_then(Value::as_str);
    let n = |k: &str| rc.get(k).and_then(Value::as_i64);
    assert_eq!(ctx.event_type.as_str(), s("eventType").unwrap());
    assert_eq!(ctx.connection_id.as_str(), s("connectionId").unwrap());
    assert_eq!(ctx.route_key.as_deref(), s("routeKey"));
    assert_eq!(ctx.message_id.as_deref(), s("messageId"));
    assert_eq!(ctx.domain_name.as_deref(), s("domainName"));
    assert_eq!(ctx.stage.as_deref(), s("stage"));
    assert_eq!(ctx.api_id.as_deref(), s("apiId"));
    assert_eq!(ctx.request_id.as_deref(), s("requestId"));
    assert_eq!(ctx.extended_request_id.as_deref(), s("extendedRequestId"));
    assert_eq!(ctx.connected_at, n("connectedAt"));
    assert_eq!(ctx.request_time_epoch, n("requestTimeEpoch"));
    assert_eq!(ctx.request_time.as_deref(), s("requestTime"));
    assert_eq!(ctx.message_direction.as_deref(), s("messageDirection"));
    assert_eq!(ctx.disconnect_status_code, n("disconnectStatusCode"));
    assert_eq!(ctx.disconnect_reason.as_deref(), s("disconnectReason"));
    let identity = &rc["identity"];
    assert_eq!(
        ctx.identity.source_ip.as_deref(),
        identity["sourceIp"].as_str()
    );
    assert_eq!(
        ctx.identity.user_agent.as_deref(),
        identity["userAgent"].as_str()
    );
    assert!(ctx.identity.extra.is_empty());
    let authorizer = ctx
        .authorizer
        .as_ref()
        .expect("fixtures carry the authorizer's result");
    assert_eq!(
        &Value::Object(authorizer.as_map().clone()),
        &rc["authorizer"]
    );

    // Values shared by all fixtures, written out once so a typo in a fixture shows up too.
    assert_eq!(ctx.connection_id, "L0SM9cOFvHcCIhw=");
    assert_eq!(ctx.connected_at, Some(1_707_502_282_725));
    assert_eq!(ctx.identity.source_ip.as_deref(), Some("203.0.113.5"));
    assert_eq!(ctx.identity.user_agent.as_deref(), Some(UA));
    assert_eq!(authorizer.principal_id(), Some("user-42"));
    assert_eq!(authorizer.get("integrationLatency"), Some(&json!(37)));
    assert_eq!(authorizer.get_str("plan").as_deref(), Some("pro"));
    assert_eq!(authorizer.get_str("maxRooms").as_deref(), Some("5"));
    assert_eq!(authorizer.get_str("isAdmin").as_deref(), Some("false"));
    assert_eq!(authorizer.iter().count(), 6);
    assert_eq!(
        ctx.management_endpoint().unwrap(),
        "https://abcd1234.execute-api.us-east-1.amazonaws.com/prod"
    );
    assert_eq!(
        ctx.execute_api_endpoint("us-east-1").unwrap(),
        "https://abcd1234.execute-api.us-east-1.amazonaws.com/prod"
    );
}

/// parse → serialize → parse gives the same event, and the serialized JSON has the fixture's
/// keys and values (API Gateway's shape).
fn assert_round_trip(event: &WebSocketEvent, fixture: &str) {
    let written = serde_json::to_value(event).unwrap();
    assert_eq!(
        written,
        tree(fixture),
        "serialized event differs from the fixture"
    );
    let again = WebSocketEvent::try_from(written).unwrap();
    assert_eq!(&again, event);
    let again = WebSocketEvent::from_slice(&serde_json::to_vec(event).unwrap()).unwrap();
    assert_eq!(&again, event);
}

#[test]
fn connect_fixture() {
    let json = tree(CONNECT);
    let event = WebSocketEvent::from_str_checked(CONNECT);
    assert_eq!(event.event_type(), EventType::Connect);
    assert_eq!(event.route_key(), Some("$connect"));
    assert_eq!(event.connection_id(), "L0SM9cOFvHcCIhw=");
    assert_context_matches(event.context(), &json);
    let WebSocketEvent::Connect(connect) = &event else {
        panic!("not a connect event: {event:?}")
    };
    assert_eq!(connect.query("room"), Some("general"));
    assert_eq!(connect.query("Room"), None);
    assert_eq!(connect.query("missing"), None);
    assert_eq!(
        connect.multi_value_query_string_parameters["room"],
        vec!["general".to_owned()]
    );
    assert_eq!(
        connect.header("host"),
        Some("abcd1234.execute-api.us-east-1.amazonaws.com")
    );
    assert_eq!(
        connect.header("SEC-WEBSOCKET-KEY"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(connect.header("x-forwarded-for"), Some("203.0.113.5"));
    assert_eq!(connect.header("Cookie"), None);
    assert_eq!(
        connect.headers.len(),
        json["headers"].as_object().unwrap().len()
    );
    for (name, value) in json["headers"].as_object().unwrap() {
        assert_eq!(connect.header(name), value.as_str(), "{name}");
        assert_eq!(
            connect.multi_value_headers.get(name).unwrap(),
            &vec![value.as_str().unwrap().to_owned()]
        );
    }
    // Names keep API Gateway's capitalisation.
    assert!(
        connect
            .headers
            .iter()
            .any(|(name, _)| name == "Sec-WebSocket-Key")
    );
    assert!(!connect.is_base64_encoded);
    assert_round_trip(&event, CONNECT);

    let direct = ConnectEvent::from_slice(CONNECT.as_bytes()).unwrap();
    assert_eq!(&direct, connect);
}

#[test]
fn disconnect_fixture() {
    let json = tree(DISCONNECT);
    let event = WebSocketEvent::from_str_checked(DISCONNECT);
    assert_eq!(event.event_type(), EventType::Disconnect);
    assert_eq!(event.route_key(), Some("$disconnect"));
    assert_context_matches(event.context(), &json);
    let WebSocketEvent::Disconnect(disconnect) = &event else {
        panic!("not a disconnect event: {event:?}")
    };
    assert_eq!(disconnect.status_code(), Some(1005));
    assert_eq!(
        disconnect.reason(),
        Some("Client-side close frame status not set")
    );
    assert_eq!(disconnect.connection_id(), "L0SM9cOFvHcCIhw=");
    assert_eq!(
        disconnect.header("HOST"),
        Some("abcd1234.execute-api.us-east-1.amazonaws.com")
    );
    assert_eq!(disconnect.header("X-API-KEY"), Some(""));
    assert_eq!(disconnect.headers.len(), 4);
    assert_eq!(disconnect.multi_value_headers.len(), 4);
    assert!(!disconnect.is_base64_encoded);
    assert_round_trip(&event, DISCONNECT);

    let direct = DisconnectEvent::from_slice(DISCONNECT.as_bytes()).unwrap();
    assert_eq!(&direct, disconnect);
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Send {
    action: String,
    room: String,
    message: String,
}

#[test]
fn message_fixture() {
    let json = tree(MESSAGE);
    let event = WebSocketEvent::from_str_checked(MESSAGE);
    assert_eq!(event.event_type(), EventType::Message);
    assert_context_matches(event.context(), &json);
    let WebSocketEvent::Message(message) = &event else {
        panic!("not a message event: {event:?}")
    };
    assert_eq!(message.message_id(), Some("Tn0ZPdYVIAMCJjQ="));
    assert_eq!(message.context.route_key.as_deref(), Some("send"));
    assert_eq!(message.body.as_deref(), json["body"].as_str());
    assert!(!message.is_base64_encoded);
    let text = message.body_text().unwrap();
    assert!(
        matches!(text, Cow::Borrowed(_)),
        "plain bodies are borrowed"
    );
    assert_eq!(text, r#"{"action":"send","room":"general","message":"hi"}"#);
    assert!(matches!(message.body_bytes().unwrap(), Cow::Borrowed(_)));
    assert_eq!(
        message.json::<Send>().unwrap(),
        Send {
            action: "send".into(),
            room: "general".into(),
            message: "hi".into()
        }
    );
    assert_round_trip(&event, MESSAGE);

    let direct = MessageEvent::from_slice(MESSAGE.as_bytes()).unwrap();
    assert_eq!(&direct, message);
}

#[test]
fn message_base64_fixture() {
    let json = tree(MESSAGE_BASE64);
    let event = WebSocketEvent::from_str_checked(MESSAGE_BASE64);
    assert_context_matches(event.context(), &json);
    let WebSocketEvent::Message(message) = &event else {
        panic!("not a message event: {event:?}")
    };
    assert!(message.is_base64_encoded);
    assert_eq!(message.context.route_key.as_deref(), Some("$default"));
    assert_eq!(message.message_id(), Some("Tn0bJc0tIAMCKbA="));
    assert_eq!(message.body.as_deref(), json["body"].as_str());
    let expected = r#"{"action":"send","room":"general","message":"héllo ☕"}"#;
    assert_eq!(message.body_bytes().unwrap(), expected.as_bytes());
    assert_eq!(message.body_text().unwrap(), expected);
    assert_eq!(message.json::<Send>().unwrap().message, "héllo ☕");
    assert_round_trip(&event, MESSAGE_BASE64);
}

/// `from_slice`, `FromStr`, `TryFrom<Value>` and serde's `Deserialize` (from text and from a
/// tree) agree.
#[test]
fn every_constructor_agrees() {
    for (name, fixture) in FIXTURES {
        let a = WebSocketEvent::from_slice(fixture.as_bytes()).unwrap();
        let b: WebSocketEvent = fixture.parse().unwrap();
        let c = WebSocketEvent::try_from(tree(fixture)).unwrap();
        let d: WebSocketEvent = serde_json::from_str(fixture).unwrap();
        let e: WebSocketEvent = serde_json::from_value(tree(fixture)).unwrap();
        for other in [&b, &c, &d, &e] {
            assert_eq!(&a, other, "{name}");
        }
    }
    let c1 = ConnectEvent::from_slice(CONNECT.as_bytes()).unwrap();
    assert_eq!(c1, CONNECT.parse::<ConnectEvent>().unwrap());
    assert_eq!(c1, ConnectEvent::try_from(tree(CONNECT)).unwrap());
    assert_eq!(c1, serde_json::from_str::<ConnectEvent>(CONNECT).unwrap());
    let d1 = DisconnectEvent::from_slice(DISCONNECT.as_bytes()).unwrap();
    assert_eq!(d1, DISCONNECT.parse::<DisconnectEvent>().unwrap());
    assert_eq!(d1, DisconnectEvent::try_from(tree(DISCONNECT)).unwrap());
    assert_eq!(
        d1,
        serde_json::from_str::<DisconnectEvent>(DISCONNECT).unwrap()
    );
    let m1 = MessageEvent::from_slice(MESSAGE.as_bytes()).unwrap();
    assert_eq!(m1, MESSAGE.parse::<MessageEvent>().unwrap());
    assert_eq!(m1, MessageEvent::try_from(tree(MESSAGE)).unwrap());
    assert_eq!(m1, serde_json::from_str::<MessageEvent>(MESSAGE).unwrap());
}

#[test]
fn dispatch_follows_event_type_not_shape() {
    // A MESSAGE carrying headers and a query string is still a message; a CONNECT with a body
    // is still a connect.
    let mut json = tree(MESSAGE);
    json["headers"] = json!({"Host": "h"});
    json["queryStringParameters"] = json!({"room": "x"});
    assert_eq!(
        WebSocketEvent::try_from(json).unwrap().event_type(),
        EventType::Message
    );
    let mut json = tree(CONNECT);
    json["body"] = json!("ignored");
    assert_eq!(
        WebSocketEvent::try_from(json).unwrap().event_type(),
        EventType::Connect
    );
    for (fixture, expected) in [
        (CONNECT, EventType::Connect),
        (DISCONNECT, EventType::Disconnect),
        (MESSAGE, EventType::Message),
        (MESSAGE_BASE64, EventType::Message),
    ] {
        let event = fixture.parse::<WebSocketEvent>().unwrap();
        assert_eq!(event.event_type(), expected);
        assert_eq!(event.context().event_type, expected);
    }
}

#[test]
fn minimal_event_and_nulls_parse() {
    let event: WebSocketEvent =
        r#"{"requestContext":{"eventType":"CONNECT","connectionId":"abc="}}"#
            .parse()
            .unwrap();
    let WebSocketEvent::Connect(connect) = event else {
        panic!()
    };
    assert!(connect.headers.is_empty());
    assert!(connect.query_string_parameters.is_empty());
    assert_eq!(connect.query("room"), None);
    assert_eq!(connect.context.domain_name, None);
    assert_eq!(connect.context.authorizer, None);

    // What API Gateway sent in 2020: nulls for everything not set.
    let connect = ConnectEvent::try_from(json!({
        "headers": null,
        "multiValueHeaders": null,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "requestContext": {
            "routeKey": "$connect",
            "disconnectStatusCode": null,
            "messageId": null,
            "eventType": "CONNECT",
            "disconnectReason": null,
            "connectedAt": 1607854667185_i64,
            "identity": {
                "cognitoIdentityPoolId": null, "cognitoIdentityId": null, "principalOrgId": null,
                "cognitoAuthenticationType": null, "userArn": null, "userAgent": null,
                "accountId": null, "caller": null, "sourceIp": "203.0.113.0", "accessKey": null,
                "cognitoAuthenticationProvider": null, "user": null
            },
            "connectionId": "XfGLwdYktjMCIyw=",
            "authorizer": null,
            "somethingNew": {"nested": [1, 2]}
        },
        "isBase64Encoded": null,
        "unknownTopLevel": 42
    }))
    .unwrap();
    assert!(connect.headers.is_empty());
    assert_eq!(connect.context.message_id, None);
    assert_eq!(
        connect.context.identity.source_ip.as_deref(),
        Some("203.0.113.0")
    );
    assert!(
        connect.context.identity.extra.is_empty(),
        "nulls are dropped"
    );
    assert!(!connect.is_base64_encoded);
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

/// Asserts `err` is `InvalidEvent` for `field` and returns its reason.
fn invalid_event(err: Error, field: &str) -> String {
    match err {
        Error::InvalidEvent {
            field: f, reason, ..
        } => {
            assert_eq!(f, field, "wrong field; reason: {reason}");
            reason
        }
        other => panic!("expected InvalidEvent for {field}, got {other:?}"),
    }
}

/// The error of every entry point for `json`, checked to be the same: `from_slice`, `FromStr`
/// and `TryFrom<Value>` agree exactly, and serde's `Deserialize` (from text and from a tree)
/// carries the same message.
fn parse_err(json: &Value) -> Error {
    let text = serde_json::to_string(json).unwrap();
    let from_slice = WebSocketEvent::from_slice(text.as_bytes()).unwrap_err();
    let shown = from_slice.to_string();
    let from_str = text.parse::<WebSocketEvent>().unwrap_err();
    assert_eq!(
        from_str.to_string(),
        shown,
        "FromStr and from_slice disagree"
    );
    let try_from = WebSocketEvent::try_from(json.clone()).unwrap_err();
    assert_eq!(
        try_from.to_string(),
        shown,
        "TryFrom<Value> and from_slice disagree"
    );
    for via_serde in [
        serde_json::from_str::<WebSocketEvent>(&text).unwrap_err(),
        serde_json::from_value::<WebSocketEvent>(json.clone()).unwrap_err(),
    ] {
        let via_serde = via_serde.to_string();
        assert!(
            via_serde.contains(&shown),
            "Deserialize says {via_serde}; from_slice says {shown}"
        );
    }
    from_slice
}

fn with(fixture: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut json = tree(fixture);
    edit(&mut json);
    json
}

#[test]
fn not_json() {
    for bad in [
        "",
        "{",
        "not json",
        r#"{"requestContext": }"#,
        "{} trailing",
    ] {
        let err = bad.parse::<WebSocketEvent>().unwrap_err();
        assert!(err.source().is_some(), "the JSON error is kept as source");
        let reason = invalid_event(err, "$");
        assert!(reason.contains("not valid JSON"), "{reason}");
    }
    let err = WebSocketEvent::from_slice(b"\xff\xfe").unwrap_err();
    invalid_event(err, "$");
}

#[test]
fn not_an_object() {
    for (bad, kind) in [
        ("[]", "an array"),
        ("\"CONNECT\"", "a string"),
        ("42", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
    ] {
        let reason = invalid_event(bad.parse::<WebSocketEvent>().unwrap_err(), "$");
        assert!(
            reason.contains("JSON object") && reason.contains(kind),
            "{reason}"
        );
        let reason = invalid_event(bad.parse::<MessageEvent>().unwrap_err(), "$");
        assert!(reason.contains("JSON object"), "{reason}");
    }
    // serde's derive would read an array of the fields in order as the event: not an event.
    let fields_in_order =
        json!([null, null, null, null, {"eventType": "CONNECT", "connectionId": "c="}]);
    invalid_event(parse_err(&fields_in_order), "$");
}

#[test]
fn a_key_given_twice_is_named() {
    // Only text can say it; a `Value` keeps one of the two.
    let json =
        r#"{"requestContext":{"eventType":"MESSAGE","connectionId":"c=","stage":"a","stage":"b"}}"#;
    let reason = invalid_event(
        WebSocketEvent::from_slice(json.as_bytes()).unwrap_err(),
        "requestContext.stage",
    );
    assert!(reason.contains("more than once"), "{reason}");
    invalid_event(
        json.parse::<MessageEvent>().unwrap_err(),
        "requestContext.stage",
    );
    let via_serde = serde_json::from_str::<WebSocketEvent>(json).unwrap_err();
    assert!(
        via_serde.to_string().contains("`requestContext.stage`"),
        "{via_serde}"
    );
}

#[test]
fn missing_request_context() {
    let json = with(MESSAGE, |j| {
        j.as_object_mut().unwrap().remove("requestContext");
    });
    let reason = invalid_event(parse_err(&json), "requestContext");
    assert!(reason.contains("missing"), "{reason}");
    let reason = invalid_event(
        parse_err(&json!({"requestContext": null})),
        "requestContext",
    );
    assert!(reason.contains("missing"), "{reason}");
    let reason = invalid_event(parse_err(&json!({"requestContext": "x"})), "requestContext");
    assert!(reason.contains("object"), "{reason}");
}

#[test]
fn missing_connection_id() {
    let json = with(MESSAGE, |j| {
        j["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("connectionId");
    });
    let reason = invalid_event(parse_err(&json), "requestContext.connectionId");
    assert!(reason.contains("missing"), "{reason}");
    let json = with(MESSAGE, |j| {
        j["requestContext"]["connectionId"] = Value::Null
    });
    invalid_event(parse_err(&json), "requestContext.connectionId");
}

#[test]
fn empty_connection_id() {
    let json = with(CONNECT, |j| j["requestContext"]["connectionId"] = json!(""));
    let reason = invalid_event(parse_err(&json), "requestContext.connectionId");
    assert!(reason.contains("is empty"), "{reason}");
    let json = with(CONNECT, |j| {
        j["requestContext"]["connectionId"] = json!("a/b")
    });
    let reason = invalid_event(parse_err(&json), "requestContext.connectionId");
    assert!(reason.contains("'/'"), "{reason}");
}

#[test]
fn non_string_connection_id() {
    for bad in [
        json!(42),
        json!(["L0SM9cOFvHcCIhw="]),
        json!({"id": 1}),
        json!(true),
    ] {
        let json = with(DISCONNECT, |j| j["requestContext"]["connectionId"] = bad);
        let reason = invalid_event(parse_err(&json), "requestContext.connectionId");
        assert!(reason.contains("expected a string"), "{reason}");
    }
}

#[test]
fn unknown_event_type() {
    let json = with(MESSAGE, |j| {
        j["requestContext"]["eventType"] = json!("PING")
    });
    let reason = invalid_event(parse_err(&json), "requestContext.eventType");
    for expected in ["\"PING\"", "CONNECT", "MESSAGE", "DISCONNECT"] {
        assert!(reason.contains(expected), "{reason}");
    }
    let json = with(MESSAGE, |j| {
        j["requestContext"]["eventType"] = json!("message")
    });
    invalid_event(parse_err(&json), "requestContext.eventType");
    let json = with(MESSAGE, |j| j["requestContext"]["eventType"] = json!(1));
    invalid_event(parse_err(&json), "requestContext.eventType");
    let json = with(MESSAGE, |j| {
        j["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("eventType");
    });
    let reason = invalid_event(parse_err(&json), "requestContext.eventType");
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn wrong_typed_fields_are_named() {
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            CONNECT,
            |j| j["requestContext"]["connectedAt"] = json!("1707502282725"),
            "requestContext.connectedAt",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["requestTimeEpoch"] = json!(1.5),
            "requestContext.requestTimeEpoch",
        ),
        (
            DISCONNECT,
            |j| j["requestContext"]["disconnectStatusCode"] = json!("1005"),
            "requestContext.disconnectStatusCode",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["domainName"] = json!(1),
            "requestContext.domainName",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["stage"] = json!(["prod"]),
            "requestContext.stage",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["messageId"] = json!(false),
            "requestContext.messageId",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["identity"] = json!("203.0.113.5"),
            "requestContext.identity",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["identity"]["sourceIp"] = json!(203),
            "requestContext.identity.sourceIp",
        ),
        (
            MESSAGE,
            |j| j["requestContext"]["authorizer"] = json!(["user-42"]),
            "requestContext.authorizer",
        ),
        (
            MESSAGE,
            |j| j["isBase64Encoded"] = json!("true"),
            "isBase64Encoded",
        ),
        (MESSAGE, |j| j["body"] = json!({"action": "send"}), "body"),
        (CONNECT, |j| j["headers"] = json!(["Host"]), "headers"),
        (
            CONNECT,
            |j| j["headers"]["X-Forwarded-Port"] = json!(443),
            "headers.X-Forwarded-Port",
        ),
        (
            CONNECT,
            |j| j["multiValueHeaders"]["Host"] = json!("h"),
            "multiValueHeaders.Host",
        ),
        (
            CONNECT,
            |j| j["queryStringParameters"]["room"] = json!(["general"]),
            "queryStringParameters.room",
        ),
        (
            CONNECT,
            |j| j["multiValueQueryStringParameters"]["room"] = json!([1]),
            "multiValueQueryStringParameters.room",
        ),
    ];
    for (fixture, edit, field) in cases {
        let json = with(fixture, edit);
        let err = parse_err(&json);
        let shown = err.to_string();
        assert!(shown.contains(field), "{shown}");
        let reason = invalid_event(err, field);
        assert!(reason.starts_with("expected "), "{field}: {reason}");
    }
}

/// A field added to an event is named in errors without being listed anywhere else: for every
/// key of every object in every fixture, a value of the wrong kind there gives an error naming
/// exactly that key's path, whichever entry point reads it. The keys come from the fixtures'
/// JSON, not from a list here.
///
/// Exempt are keys whose value may be any JSON at all. Which those are is found by behaviour
/// (the event parses with every kind of value there), and checked to be only the authorizer's
/// keys: they hold whatever the authorizer returned.
#[test]
fn every_key_of_the_fixtures_is_named_when_wrong() {
    fn keys(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let Value::Object(map) = value {
            for (key, child) in map {
                path.push(key.clone());
                out.push(path.clone());
                keys(child, path, out);
                path.pop();
            }
        }
    }
    fn at<'a>(json: &'a mut Value, path: &[String]) -> &'a mut Value {
        path.iter().fold(json, |v, key| &mut v[key.as_str()])
    }
    let any_json = [
        json!(null),
        json!(true),
        json!(1),
        json!(1.5),
        json!("x"),
        json!([]),
        json!({}),
    ];

    let mut checked = 0;
    let mut exempt = Vec::new();
    for (name, fixture) in FIXTURES {
        let mut paths = Vec::new();
        keys(&tree(fixture), &mut Vec::new(), &mut paths);
        for path in paths {
            let field = path.join(".");
            let accepts = |value: &Value| {
                let json = with(fixture, |j| *at(j, &path) = value.clone());
                WebSocketEvent::try_from(json).is_ok()
            };
            if any_json.iter().all(accepts) {
                exempt.push(field);
                continue;
            }
            // Another kind of value: a string for an object, an object for anything else.
            let json = with(fixture, |j| {
                let slot = at(j, &path);
                *slot = if slot.is_object() {
                    json!("x")
                } else {
                    json!({})
                };
            });
            let err = parse_err(&json);
            let reason = invalid_event(err, &field);
            assert!(reason.starts_with("expected "), "{name}: {field}: {reason}");
            // The parser of the fixture's own type names it too.
            let bytes = serde_json::to_vec(&json).unwrap();
            let typed = match name {
                "connect" => ConnectEvent::from_slice(&bytes).map(drop),
                "disconnect" => DisconnectEvent::from_slice(&bytes).map(drop),
                _ => MessageEvent::from_slice(&bytes).map(drop),
            };
            invalid_event(typed.unwrap_err(), &field);
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} keys checked");
    assert!(!exempt.is_empty());
    for field in &exempt {
        assert!(
            field.starts_with("requestContext.authorizer."),
            "{field} accepts any JSON"
        );
    }
}

#[test]
fn wrong_type_errors_keep_the_serde_error_as_source() {
    let json = with(CONNECT, |j| {
        j["requestContext"]["connectedAt"] = json!("soon")
    });
    let err = parse_err(&json);
    let source = err.source().expect("serde error kept").to_string();
    assert!(
        !err.to_string().contains(&source),
        "cause printed twice: {err}"
    );
    let reason = invalid_event(err, "requestContext.connectedAt");
    assert!(
        reason.contains("integer") && reason.contains("a string"),
        "{reason}"
    );
}

#[test]
fn wrong_event_type_for_a_specific_parser() {
    let reason = invalid_event(
        MESSAGE.parse::<ConnectEvent>().unwrap_err(),
        "requestContext.eventType",
    );
    assert!(
        reason.contains("MESSAGE") && reason.contains("CONNECT"),
        "{reason}"
    );
    invalid_event(
        ConnectEvent::from_slice(DISCONNECT.as_bytes()).unwrap_err(),
        "requestContext.eventType",
    );
    invalid_event(
        DisconnectEvent::try_from(tree(CONNECT)).unwrap_err(),
        "requestContext.eventType",
    );
    invalid_event(
        CONNECT.parse::<MessageEvent>().unwrap_err(),
        "requestContext.eventType",
    );
    // A broken event is reported as broken, whichever parser reads it.
    let json = with(MESSAGE, |j| j["requestContext"]["connectionId"] = json!(""));
    invalid_event(
        ConnectEvent::try_from(json).unwrap_err(),
        "requestContext.connectionId",
    );
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

fn message_with(body: Option<&str>, base64: bool) -> MessageEvent {
    let mut m = MESSAGE.parse::<MessageEvent>().unwrap();
    m.body = body.map(str::to_owned);
    m.is_base64_encoded = base64;
    m
}

fn invalid_body(err: Error) -> String {
    match err {
        Error::InvalidBody { reason, .. } => reason,
        other => panic!("expected InvalidBody, got {other:?}"),
    }
}

#[test]
fn invalid_base64_body() {
    for bad in ["not base64!", "aGk", "aGk=\n", "a"] {
        let m = message_with(Some(bad), true);
        let err = m.body_bytes().unwrap_err();
        assert!(err.source().is_some());
        let reason = invalid_body(err);
        assert!(reason.contains("base64"), "{reason}");
        assert!(
            reason.contains("base64"),
            "{}",
            invalid_body(m.body_text().unwrap_err())
        );
        invalid_body(m.json::<Value>().unwrap_err());
    }
    // The same text is fine when not flagged.
    assert_eq!(message_with(Some("aGk"), false).body_text().unwrap(), "aGk");
    assert_eq!(message_with(Some("aGk="), true).body_text().unwrap(), "hi");
}

#[test]
fn base64_body_not_utf8() {
    let m = message_with(Some("//79"), true); // 0xff 0xfe 0xfd
    assert_eq!(m.body_bytes().unwrap(), &[0xff, 0xfe, 0xfd][..]);
    let err = m.body_text().unwrap_err();
    assert!(err.source().is_some());
    assert!(invalid_body(err).contains("UTF-8"));
}

#[test]
fn body_not_json_when_json_is_asked() {
    let m = message_with(Some("hello there"), false);
    assert_eq!(m.body_text().unwrap(), "hello there");
    let err = m.json::<Value>().unwrap_err();
    let source = err.source().expect("serde error kept").to_string();
    assert!(
        !err.to_string().contains(&source),
        "cause printed twice: {err}"
    );
    let reason = invalid_body(err);
    assert!(reason.contains("not valid JSON"), "{reason}");
}

#[test]
fn body_json_of_the_wrong_shape() {
    let m = message_with(Some(r#"{"action":"send"}"#), false);
    let err = m.json::<Send>().unwrap_err();
    assert!(err.source().is_some());
    let reason = invalid_body(err);
    assert!(
        reason.contains("does not match the expected shape"),
        "{reason}"
    );
    assert!(reason.contains("Send"), "{reason}");
}

#[test]
fn missing_body() {
    let m = message_with(None, false);
    let reason = invalid_body(m.json::<Value>().unwrap_err());
    assert!(reason.contains("missing"), "{reason}");
    assert_eq!(m.body_text().unwrap(), "");
    assert!(m.body_bytes().unwrap().is_empty());
    // Parsed from JSON without a body, or with `"body": null`.
    let json = with(MESSAGE, |j| j["body"] = Value::Null);
    let m = MessageEvent::try_from(json).unwrap();
    assert_eq!(m.body, None);
    invalid_body(m.json::<Value>().unwrap_err());
}

// ---------------------------------------------------------------------------------------------
// aws_lambda_events
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "lambda")]
mod lambda {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    /// aws_lambda_events reads the fixture; converting its request gives what parsing the
    /// fixture directly gives.
    #[test]
    fn converts_like_parsing_the_fixture() {
        for (name, fixture) in FIXTURES {
            let direct = fixture.parse::<WebSocketEvent>().unwrap();
            let request: ApiGatewayWebsocketProxyRequest = serde_json::from_str(fixture).unwrap();
            let converted = WebSocketEvent::try_from(request).unwrap();
            assert_eq!(converted, direct, "{name}");
        }
    }

    /// Each event type converts the request of its own kind, and refuses another kind.
    #[test]
    fn each_event_type_converts_its_own_kind() {
        let request = |fixture: &str| -> ApiGatewayWebsocketProxyRequest {
            serde_json::from_str(fixture).unwrap()
        };
        assert_eq!(
            ConnectEvent::try_from(request(CONNECT)).unwrap(),
            ConnectEvent::from_slice(CONNECT.as_bytes()).unwrap()
        );
        assert_eq!(
            DisconnectEvent::try_from(request(DISCONNECT)).unwrap(),
            DisconnectEvent::from_slice(DISCONNECT.as_bytes()).unwrap()
        );
        assert_eq!(
            MessageEvent::try_from(request(MESSAGE)).unwrap(),
            MessageEvent::from_slice(MESSAGE.as_bytes()).unwrap()
        );
        invalid_event(
            MessageEvent::try_from(request(CONNECT)).unwrap_err(),
            "requestContext.eventType",
        );
    }

    /// The other way: what this crate writes, aws_lambda_events reads, and converting back
    /// gives the same event.
    #[test]
    fn our_json_reads_in_aws_lambda_events() {
        for (name, fixture) in FIXTURES {
            let ours = fixture.parse::<WebSocketEvent>().unwrap();
            let json = serde_json::to_string(&ours).unwrap();
            let request: ApiGatewayWebsocketProxyRequest = serde_json::from_str(&json).unwrap();
            let ctx = &request.request_context;
            assert_eq!(
                ctx.connection_id.as_deref(),
                Some("L0SM9cOFvHcCIhw="),
                "{name}"
            );
            assert_eq!(ctx.event_type.as_deref(), Some(ours.event_type().as_str()));
            assert_eq!(ctx.connected_at, 1_707_502_282_725);
            assert_eq!(
                ctx.authorizer.fields.get("principalId"),
                Some(&json!("user-42"))
            );
            assert_eq!(WebSocketEvent::try_from(request).unwrap(), ours, "{name}");
        }
    }

    #[test]
    fn query_values_with_commas_survive() {
        let json = with(CONNECT, |j| {
            j["queryStringParameters"]["tags"] = json!("a,b,,c");
            j["multiValueQueryStringParameters"]["tags"] = json!(["a,b,,c"]);
        });
        let direct = WebSocketEvent::try_from(json.clone()).unwrap();
        let request: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
        let converted = WebSocketEvent::try_from(request).unwrap();
        assert_eq!(converted, direct);
        let WebSocketEvent::Connect(connect) = converted else {
            panic!()
        };
        assert_eq!(connect.query("tags"), Some("a,b,,c"));
    }
}

/// Shorthand that also checks `FromStr` and `from_slice` agree.
trait FromStrChecked {
    fn from_str_checked(json: &str) -> WebSocketEvent;
}

impl FromStrChecked for WebSocketEvent {
    fn from_str_checked(json: &str) -> WebSocketEvent {
        let a: WebSocketEvent = json.parse().unwrap();
        assert_eq!(a, WebSocketEvent::from_slice(json.as_bytes()).unwrap());
        a
    }
}

// ---------------------------------------------------------------------------------------------
// Edge cases: headers spelled twice, keys given twice, exact floats, out-of-range numbers
// ---------------------------------------------------------------------------------------------

fn connect_with_headers(headers_json: &str) -> String {
    format!(
        r#"{{"headers":{headers_json},"requestContext":{{"eventType":"CONNECT","connectionId":"c="}}}}"#
    )
}

fn headers_of(event: &WebSocketEvent) -> &stateless_ws::event::Headers {
    match event {
        WebSocketEvent::Connect(c) => &c.headers,
        other => panic!("not a CONNECT: {other:?}"),
    }
}

#[test]
fn a_header_spelled_twice_is_one_header_last_wins() {
    let text = connect_with_headers(r#"{"Host":"a.example","X-Other":"x","host":"b.example"}"#);
    let event = WebSocketEvent::from_slice(text.as_bytes()).unwrap();
    assert_eq!(event, event.clone(), "an event equals its clone");
    let headers = headers_of(&event);
    assert_eq!(headers.len(), 2);
    assert_eq!(headers.get("HOST").map(String::as_str), Some("b.example"));
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(WebSocketEvent::from_slice(json.as_bytes()).unwrap(), event);
    assert_eq!(
        WebSocketEvent::try_from(tree(&text)).unwrap(),
        event,
        "a Value of the same text gives the same event"
    );
}

#[test]
fn generated_header_sets_agree_on_equality_lookups_and_round_trips() {
    const NAMES: [&str; 6] = [
        "host",
        "x-forwarded-for",
        "cookie",
        "origin",
        "x-a",
        "sec-websocket-key",
    ];
    let mut rng = fastrand::Rng::with_seed(9);
    for case in 0..2_000 {
        // Names from a small pool, each spelled in a random case, so repeats are common.
        let mut given: Vec<(String, String)> = Vec::new();
        for i in 0..rng.usize(0..12) {
            let base = NAMES[rng.usize(..NAMES.len())];
            let name: String = base
                .chars()
                .map(|c| {
                    if rng.bool() {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            given.push((name, format!("v{case}-{i}")));
        }
        let headers_json = format!(
            "{{{}}}",
            given
                .iter()
                .map(|(k, v)| format!("{k:?}:{v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let text = connect_with_headers(&headers_json);
        let event = WebSocketEvent::from_slice(text.as_bytes()).unwrap();
        assert_eq!(event, event.clone(), "case {case}: {headers_json}");
        let again = WebSocketEvent::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
        assert_eq!(again, event, "case {case}: round trip of {headers_json}");
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&event).unwrap(),
            "case {case}: the round trip serializes the same"
        );
        // A `Value` keeps the last of exact duplicates but sorts its keys, so which of two
        // spellings came last is the `Value`'s order: `TryFrom<Value>` agrees with parsing
        // the `Value`'s own text.
        let value = tree(&text);
        assert_eq!(
            WebSocketEvent::try_from(value.clone()).unwrap(),
            WebSocketEvent::from_slice(&serde_json::to_vec(&value).unwrap()).unwrap(),
            "case {case}: TryFrom<Value> of {headers_json}"
        );
        let headers = headers_of(&event);
        let mut distinct: Vec<String> = given.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(headers.len(), distinct.len(), "case {case}: {headers_json}");
        for name in NAMES {
            let last = given
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v);
            assert_eq!(
                headers.get(name),
                last,
                "case {case}: {name} in {headers_json}"
            );
            assert_eq!(again.clone(), event);
        }
    }
}

#[test]
fn a_named_key_given_twice_is_named_by_every_text_entry_point() {
    let rc = |inner: &str| format!(r#"{{"requestContext":{{{inner}}}}}"#);
    let cases = [
        (
            rc(r#""eventType":"MESSAGE","connectionId":"a=","connectionId":"b=""#),
            "requestContext.connectionId",
        ),
        (
            rc(r#""eventType":"MESSAGE","eventType":"CONNECT","connectionId":"a=""#),
            "requestContext.eventType",
        ),
        (
            rc(
                r#""eventType":"MESSAGE","connectionId":"a=","identity":{"sourceIp":"198.51.100.1","sourceIp":"203.0.113.5"}"#,
            ),
            "requestContext.identity.sourceIp",
        ),
        (
            rc(
                r#""eventType":"MESSAGE","connectionId":"a=","identity":{"userAgent":"a","userAgent":"b"}"#,
            ),
            "requestContext.identity.userAgent",
        ),
        (
            r#"{"body":"a","requestContext":{"eventType":"MESSAGE","connectionId":"a="},"body":"b"}"#
                .to_owned(),
            "body",
        ),
        (
            r#"{"requestContext":{"eventType":"MESSAGE","connectionId":"a="},"requestContext":{"eventType":"MESSAGE","connectionId":"b="}}"#
                .to_owned(),
            "requestContext",
        ),
    ];
    for (text, field) in cases {
        let reason = invalid_event(
            WebSocketEvent::from_slice(text.as_bytes()).unwrap_err(),
            field,
        );
        assert!(reason.contains("more than once"), "{field}: {reason}");
        let from_str = text.parse::<WebSocketEvent>().unwrap_err();
        assert_eq!(
            from_str.to_string(),
            WebSocketEvent::from_slice(text.as_bytes())
                .unwrap_err()
                .to_string(),
            "{field}: FromStr and from_slice agree"
        );
        let via_serde = serde_json::from_str::<WebSocketEvent>(&text).unwrap_err();
        assert!(
            via_serde.to_string().contains(&format!("`{field}`")),
            "{via_serde}"
        );
        // A `Value` cannot hold both: serde_json kept the last when it was built, and that is
        // what `TryFrom<Value>` reads (documented in `stateless_ws::event`).
        let value: Value = serde_json::from_str(&text).unwrap();
        let event = WebSocketEvent::try_from(value.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&event).unwrap()["requestContext"]["connectionId"],
            value["requestContext"]["connectionId"]
        );
    }
}

fn authorizer_number(text: &str) -> Value {
    let event = WebSocketEvent::from_slice(text.as_bytes()).unwrap();
    event
        .context()
        .authorizer
        .as_ref()
        .unwrap()
        .get("n")
        .unwrap()
        .clone()
}

#[test]
fn authorizer_floats_round_trip_exactly() {
    let with_n = |n: &str| {
        format!(
            r#"{{"requestContext":{{"eventType":"CONNECT","connectionId":"c=","authorizer":{{"n":{n}}}}}}}"#
        )
    };
    let mut texts: Vec<String> = [
        "0.1",
        "123456789.12345679",
        "2.2250738585072014e-308",
        "5e-324",
        "1.7976931348623157e308",
        "0.30000000000000004",
        "9007199254740993",
        "-4.35195e-5",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut rng = fastrand::Rng::with_seed(10);
    while texts.len() < 20_000 {
        let f = f64::from_bits(rng.u64(..));
        if f.is_finite() {
            // `{:?}` is Rust's shortest text that reads back as the same f64.
            texts.push(format!("{f:?}"));
        }
    }
    let mut inexact = Vec::new();
    for text in &texts {
        let expected: f64 = text.parse().unwrap();
        let read = authorizer_number(&with_n(text));
        if read.as_f64().map(f64::to_bits) != Some(expected.to_bits()) && !read.is_u64() {
            inexact.push(format!("{text} read as {read}"));
            continue;
        }
        // And the text we write reads back as the same number.
        let written = read.to_string();
        let again = authorizer_number(&with_n(&written));
        assert_eq!(again, read, "{text} → {written}");
    }
    assert!(
        inexact.is_empty(),
        "{} of {} floats read inexactly, e.g. {:?}",
        inexact.len(),
        texts.len(),
        &inexact[..inexact.len().min(3)]
    );
}

#[test]
fn out_of_range_numbers_name_their_field() {
    let connect = |inner: &str| {
        format!(r#"{{"requestContext":{{"eventType":"CONNECT","connectionId":"c="{inner}}}}}"#)
    };
    let cases = [
        (connect(r#","authorizer":{"n":1e999}"#), "requestContext.authorizer.n"),
        (connect(r#","authorizer":{"o":{"deep":-1e999}}"#), "requestContext.authorizer.o.deep"),
        (connect(r#","connectedAt":1e999"#), "requestContext.connectedAt"),
        (connect(r#","identity":{"apiKey":2e400}"#), "requestContext.identity.apiKey"),
        (
            r#"{"headers":{"X-N":1e999},"requestContext":{"eventType":"CONNECT","connectionId":"c="}}"#
                .to_owned(),
            "headers.X-N",
        ),
    ];
    for (text, field) in cases {
        let err = WebSocketEvent::from_slice(text.as_bytes()).unwrap_err();
        assert!(err.source().is_some(), "serde_json's error is the source");
        let reason = invalid_event(err, field);
        assert!(reason.contains("out of range"), "{field}: {reason}");
        invalid_event(text.parse::<WebSocketEvent>().unwrap_err(), field);
        invalid_event(text.parse::<ConnectEvent>().unwrap_err(), field);
        let via_serde = serde_json::from_str::<WebSocketEvent>(&text).unwrap_err();
        assert!(
            via_serde.to_string().contains(field),
            "{field}: {via_serde}"
        );
    }
}
