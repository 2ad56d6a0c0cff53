//! A Lambda REQUEST authorizer in front of `$connect`, as API Gateway runs it: identity sources
//! checked first (401 without invoking when one is missing), then the function invoked with the
//! REQUEST-authorizer event, its IAM policy evaluated against the `methodArn` (403 unless an
//! `Allow` on `execute-api:Invoke` matches and no `Deny` does), and its `principalId` and
//! `context` handed to every event of the connection as `requestContext.authorizer`.

use std::time::Instant;

use serde_json::{Map, Value};

use super::config_error;
use super::invoke::{FunctionTarget, Invocation, InvokeEndpoint, validate_function_name};
use stateless_ws::Result;
use stateless_ws::event::{Authorizer, ConnectEvent, WebSocketEvent};

/// Where API Gateway reads one identity of a `$connect` request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum IdentitySource {
    /// `route.request.header.{name}` (compared without regard to case).
    Header(String),
    /// `route.request.querystring.{name}`.
    QueryString(String),
}

impl IdentitySource {
    /// Parses API Gateway's WebSocket syntax: `route.request.header.Auth` or
    /// `route.request.querystring.token`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](stateless_ws::Error::Config) for anything else (context variables and stage variables are not
    /// emulated).
    pub(crate) fn parse(expression: &str) -> Result<Self> {
        let trimmed = expression.trim();
        let source = if let Some(name) = trimmed.strip_prefix("route.request.header.") {
            Self::Header(name.to_owned())
        } else if let Some(name) = trimmed.strip_prefix("route.request.querystring.") {
            Self::QueryString(name.to_owned())
        } else {
            return Err(config_error(format!(
                "identity source {expression:?} is not supported: use route.request.header.NAME or route.request.querystring.NAME"
            )));
        };
        match &source {
            Self::Header(name) | Self::QueryString(name) if name.is_empty() => Err(config_error(
                format!("identity source {expression:?} names no header or parameter"),
            )),
            _ => Ok(source),
        }
    }

    /// The request's non-empty value for this source.
    fn present(&self, connect: &ConnectEvent) -> bool {
        let value = match self {
            Self::Header(name) => connect.header(name),
            Self::QueryString(name) => connect.query(name),
        };
        value.is_some_and(|v| !v.is_empty())
    }
}

/// A Lambda REQUEST authorizer for `$connect`; see
/// [`LocalGateway::authorizer`](super::LocalGateway::authorizer).
#[derive(Debug, Clone)]
pub(crate) struct RequestAuthorizer {
    function: FunctionTarget,
    identity_sources: Vec<IdentitySource>,
    region: String,
    account_id: String,
}

impl RequestAuthorizer {
    /// The authorizer function `function` on `endpoint`, with no identity sources (every
    /// `$connect` invokes it), in region `us-east-1` of account `123456789012` (they appear in
    /// the `methodArn`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](stateless_ws::Error::Config) when `function` is not a Lambda function name.
    pub(crate) fn new(endpoint: InvokeEndpoint, function: impl Into<String>) -> Result<Self> {
        Ok(Self {
            function: FunctionTarget::new(endpoint, function)?,
            identity_sources: Vec::new(),
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
        })
    }

    /// Adds an identity source (`route.request.querystring.token`, `route.request.header.Auth`):
    /// a `$connect` without it, or with it empty, is refused with 401 without invoking the
    /// function.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](stateless_ws::Error::Config) when the expression is not one of those two forms.
    pub(crate) fn identity_source(mut self, expression: &str) -> Result<Self> {
        self.identity_sources
            .push(IdentitySource::parse(expression)?);
        Ok(self)
    }

    /// The region and account put in the `methodArn`
    /// (`arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](stateless_ws::Error::Config) when either holds characters an ARN part cannot (`:`, `/`, space).
    pub(crate) fn arn_parts(mut self, region: &str, account_id: &str) -> Result<Self> {
        for (what, part) in [("region", region), ("account id", account_id)] {
            if part.is_empty() || validate_function_name(part).is_err() || part.contains(':') {
                return Err(config_error(format!(
                    "authorizer {what} {part:?} is not an ARN part"
                )));
            }
        }
        region.clone_into(&mut self.region);
        account_id.clone_into(&mut self.account_id);
        Ok(self)
    }

    fn method_arn(&self, api_id: &str, stage: &str) -> String {
        format!(
            "arn:aws:execute-api:{}:{}:{api_id}/{stage}/$connect",
            self.region, self.account_id
        )
    }

    /// Runs the authorizer for `connect`.
    pub(super) async fn authorize(&self, connect: &ConnectEvent) -> Verdict {
        if !self.identity_sources.iter().all(|s| s.present(connect)) {
            tracing::info!(connection = %connect.connection_id(), "$connect refused: identity source missing");
            return Verdict::Refuse(401, "Unauthorized");
        }
        let api_id = connect.context.api_id.as_deref().unwrap_or("local");
        let stage = connect.context.stage.as_deref().unwrap_or("local");
        let method_arn = self.method_arn(api_id, stage);
        let Some(payload) = request_event(connect, &method_arn) else {
            return Verdict::Refuse(500, "Internal server error");
        };
        let started = Instant::now();
        let invocation = self.function.invoke_json(payload).await;
        let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let Invocation::Result(answer) = invocation else {
            // Already logged by the endpoint.
            return Verdict::Refuse(500, "Internal server error");
        };
        match decide(&answer, &method_arn) {
            Ok(Some(mut authorizer)) => {
                authorizer.insert("integrationLatency", latency);
                Verdict::Allow(authorizer)
            }
            Ok(None) => {
                tracing::info!(connection = %connect.connection_id(), "$connect refused: the authorizer's policy does not allow it");
                Verdict::Refuse(403, "Forbidden")
            }
            Err(why) => {
                tracing::warn!(function = %self.function.function_name(), "invalid authorizer answer: {why}");
                Verdict::Refuse(500, "Internal server error")
            }
        }
    }
}

/// What the authorizer decided.
pub(super) enum Verdict {
    /// `requestContext.authorizer` for the connection's events.
    Allow(Authorizer),
    /// The status and `message` of the refused upgrade.
    Refuse(u16, &'static str),
}

/// The REQUEST-authorizer event: the `$connect` event's fields plus `type` and `methodArn`.
fn request_event(connect: &ConnectEvent, method_arn: &str) -> Option<Vec<u8>> {
    let mut event = serde_json::to_value(WebSocketEvent::Connect(connect.clone())).ok()?;
    let object = event.as_object_mut()?;
    object.insert("type".to_owned(), Value::from("REQUEST"));
    object.insert("methodArn".to_owned(), Value::from(method_arn));
    object
        .entry("stageVariables")
        .or_insert_with(|| Value::Object(Map::new()));
    serde_json::to_vec(&event).ok()
}

/// The authorizer's answer evaluated: `Some` with `principalId` and the `context` keys when the
/// policy allows `execute-api:Invoke` on `method_arn`, `None` when it does not, `Err` when the
/// answer is malformed (API Gateway answers 500 then).
fn decide(answer: &Value, method_arn: &str) -> std::result::Result<Option<Authorizer>, String> {
    let policy = answer
        .get("policyDocument")
        .filter(|p| p.is_object())
        .ok_or("no policyDocument object")?;
    let statements = match policy.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return Err("policyDocument has no Statement".to_owned()),
    };
    let mut allowed = false;
    for statement in statements {
        let effect = statement
            .get("Effect")
            .and_then(Value::as_str)
            .ok_or("a statement has no Effect")?;
        let action = any_matches(statement.get("Action"), "execute-api:Invoke", true)?;
        let resource = any_matches(statement.get("Resource"), method_arn, false)?;
        if action && resource {
            match effect {
                "Deny" => return Ok(None),
                "Allow" => allowed = true,
                other => return Err(format!("unknown Effect {other:?}")),
            }
        }
    }
    if !allowed {
        return Ok(None);
    }
    let mut authorizer = Authorizer::new();
    match answer.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(context)) => {
            for (key, value) in context {
                if !(value.is_string() || value.is_number() || value.is_boolean()) {
                    return Err(format!("context.{key} is not a string, number or boolean"));
                }
                authorizer.insert(key.clone(), value.clone());
            }
        }
        Some(_) => return Err("context is not an object".to_owned()),
    }
    match answer.get("principalId") {
        Some(Value::String(principal)) => {
            authorizer.insert("principalId", principal.clone());
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err("principalId is not a string".to_owned()),
    }
    Ok(Some(authorizer))
}

/// Whether `patterns` (a string or an array of strings, IAM wildcards `*` and `?`) matches
/// `value`; actions compare without regard to case, as IAM does.
fn any_matches(
    patterns: Option<&Value>,
    value: &str,
    ignore_case: bool,
) -> std::result::Result<bool, String> {
    let list = match patterns {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or("Action/Resource entries must be strings"))
            .collect::<std::result::Result<_, _>>()?,
        _ => return Err("a statement needs Action and Resource".to_owned()),
    };
    Ok(list.into_iter().any(|pattern| {
        if ignore_case {
            glob(&pattern.to_ascii_lowercase(), &value.to_ascii_lowercase())
        } else {
            glob(pattern, value)
        }
    }))
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:api/prod/$connect";

    fn answer(effect: &str, resource: Value) -> Value {
        json!({
            "principalId": "alice",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
            ]},
            "context": {"authenticated": true, "tier": 3, "team": "red"}
        })
    }

    #[test]
    fn an_allow_on_the_method_arn_passes_principal_and_context() {
        let authorizer = decide(&answer("Allow", json!(ARN)), ARN)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("denied"));
        assert_eq!(authorizer.principal_id(), Some("alice"));
        assert_eq!(authorizer.get("authenticated"), Some(&json!(true)));
        assert_eq!(authorizer.get_str("tier").as_deref(), Some("3"));
    }

    #[test]
    fn wildcards_deny_and_unrelated_resources() {
        let wild = "arn:aws:execute-api:us-east-1:*:api/*";
        assert!(matches!(
            decide(&answer("Allow", json!([wild])), ARN),
            Ok(Some(_))
        ));
        assert!(matches!(
            decide(&answer("Allow", json!("*")), ARN),
            Ok(Some(_))
        ));
        assert!(matches!(decide(&answer("Deny", json!(ARN)), ARN), Ok(None)));
        let other = "arn:aws:execute-api:us-east-1:123456789012:other/prod/$connect";
        assert!(matches!(
            decide(&answer("Allow", json!(other)), ARN),
            Ok(None)
        ));
        let mut both = answer("Allow", json!("*"));
        both["policyDocument"]["Statement"]
            .as_array_mut()
            .unwrap_or_else(|| panic!("array"))
            .push(json!({"Action": "execute-api:*", "Effect": "Deny", "Resource": ARN}));
        assert!(
            matches!(decide(&both, ARN), Ok(None)),
            "an explicit Deny wins"
        );
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(decide(&json!({"principalId": "a"}), ARN).is_err());
        let mut nested = answer("Allow", json!(ARN));
        nested["context"] = json!({"claims": {"sub": "a"}});
        assert!(decide(&nested, ARN).is_err());
        let mut no_action = answer("Allow", json!(ARN));
        no_action["policyDocument"]["Statement"][0]
            .as_object_mut()
            .map(|s| s.remove("Action"));
        assert!(decide(&no_action, ARN).is_err());
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("abc", "abcd"));
        assert!(glob("*/$connect", "x/prod/$connect"));
    }

    #[test]
    fn identity_sources_parse() {
        assert_eq!(
            IdentitySource::parse("route.request.querystring.token").ok(),
            Some(IdentitySource::QueryString("token".into()))
        );
        assert_eq!(
            IdentitySource::parse("route.request.header.Auth").ok(),
            Some(IdentitySource::Header("Auth".into()))
        );
        for bad in [
            "context.x",
            "stageVariables.y",
            "route.request.header.",
            "$request.x",
        ] {
            assert!(IdentitySource::parse(bad).is_err(), "{bad}");
        }
    }
}
