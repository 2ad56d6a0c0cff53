//! A template's WebSocket API served by a [`LocalGateway`]: [`LocalApi`], the function naming
//! on the runner, the functions' environment, and the errors of both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::gateway::{
    FunctionTarget, InvokeEndpoint, LocalGateway, LocalGatewayConfig, RequestAuthorizer,
};
use crate::template::{Location, Settings, StandIn, Template, WebSocketApi};

/// What is wrong with a template (or the options given for it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The text is not a template (YAML syntax, no `Resources`).
    #[error("template: {0}")]
    Parse(String),
    /// A parameter override or value is wrong.
    #[error("parameter {name}: {message}")]
    Parameter {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A resource's property cannot be used.
    #[error("resource {resource}, {property}: {message}")]
    Resource {
        /// The resource's logical id (or section).
        resource: String,
        /// The property.
        property: String,
        /// What is wrong.
        message: String,
    },
    /// Something the template or the options name does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An option (endpoint, function name) is invalid.
    #[error("{0}")]
    Option(String),
}

impl TemplateError {
    pub(crate) fn at(at: &Location, message: impl Into<String>) -> Self {
        Self::Resource {
            resource: at.resource.clone(),
            property: at.property.clone(),
            message: message.into(),
        }
    }
}

/// How functions are named on the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    /// The template's logical id (`ConnectFunction`): `sam local start-lambda`, MiniStack
    /// functions created under that name.
    #[default]
    LogicalId,
    /// The binary name from `CodeUri: …/target/lambda/<bin>/` (`lambda_connect`):
    /// `cargo lambda watch`.
    Binary,
}

/// A template's WebSocket API with the settings it was read with.
#[derive(Debug)]
pub struct LocalApi {
    template: Template,
    api: WebSocketApi,
}

impl LocalApi {
    /// Reads `text` with `settings` and picks its WebSocket API (`api`, or the only one).
    ///
    /// # Errors
    ///
    /// [`TemplateError`] naming what is wrong.
    pub fn from_template(
        text: &str,
        settings: Settings,
        api: Option<&str>,
    ) -> Result<Self, TemplateError> {
        let template = Template::parse(text, settings)?;
        let api = WebSocketApi::from_template(&template, api)?;
        Ok(Self { template, api })
    }

    /// The API as read from the template.
    pub fn api(&self) -> &WebSocketApi {
        &self.api
    }

    /// Serves the API under `stage` instead of the template's. The functions' environment
    /// was resolved with the template's stage: to have `Ref` of the stage (`${Stage}`) give
    /// `stage` too, read the template with [`Settings::stage`] instead.
    pub fn set_stage(&mut self, stage: &str) {
        stage.clone_into(&mut self.api.stage);
    }

    /// The stand-ins in the functions' environment ([`WebSocketApi::stand_ins`]) that reach
    /// them: without the variables `extra` replaces (`--env`), nor `APIGW_MANAGEMENT_URL`,
    /// which the gateway sets. Print each one's [`note`](StandIn::note) once at start-up.
    pub fn stand_ins(&self, extra: &BTreeMap<String, String>) -> Vec<StandIn> {
        self.api
            .stand_ins
            .iter()
            .filter_map(|stand_in| {
                let mut stand_in = stand_in.clone();
                stand_in.variables.retain(|v| {
                    !extra.contains_key(v) && v != stateless_ws::env::APIGW_MANAGEMENT_URL
                });
                (!stand_in.variables.is_empty()).then_some(stand_in)
            })
            .collect()
    }

    /// The template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The name each function (by logical id) has on the runner: by `naming`, then `overrides`
    /// (logical id → name) on top.
    ///
    /// # Errors
    ///
    /// [`TemplateError::NotFound`] when an override names no function of the API, or
    /// [`Naming::Binary`] finds no `target/lambda/<bin>/` `CodeUri`.
    pub fn function_names(
        &self,
        naming: Naming,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        for logical in overrides.keys() {
            if !self.api.functions.contains_key(logical) {
                return Err(TemplateError::NotFound(format!(
                    "--function-name-map {logical}=…: the API invokes no function {logical} (it invokes: {})",
                    self.api
                        .functions
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut names = BTreeMap::new();
        for (logical, spec) in &self.api.functions {
            let name = match (overrides.get(logical), naming) {
                (Some(name), _) => name.clone(),
                (None, Naming::LogicalId) => logical.clone(),
                (None, Naming::Binary) => spec.binary.clone().ok_or_else(|| {
                    TemplateError::NotFound(format!(
                        "{logical}: its CodeUri is not a cargo-lambda target/lambda/<bin>/ directory; name it with --function-name-map {logical}=NAME"
                    ))
                })?,
            };
            names.insert(logical.clone(), name);
        }
        Ok(names)
    }

    /// A gateway serving the API: every route's function invoked by its name in `names` on
    /// the Invoke API at `endpoint`, the `$connect` authorizer in front, with the template's
    /// stage and route selection. `timeout` defaults to API Gateway's 29 s.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Option`] for an invalid endpoint or function name, or an identity
    /// source this tool cannot read.
    pub fn gateway(
        &self,
        endpoint: &str,
        names: &BTreeMap<String, String>,
        timeout: Option<Duration>,
    ) -> Result<LocalGateway, TemplateError> {
        let option = |e: stateless_ws::Error| TemplateError::Option(e.to_string());
        let mut endpoint = InvokeEndpoint::new(endpoint).map_err(option)?;
        if let Some(timeout) = timeout {
            endpoint = endpoint.with_timeout(timeout);
        }
        let name_of = |logical: &str| {
            names.get(logical).cloned().ok_or_else(|| {
                TemplateError::NotFound(format!("no runner name for function {logical}"))
            })
        };
        let mut config = LocalGatewayConfig::default();
        if let Some(timeout) = timeout {
            config.integration_timeout = timeout;
        }
        config.stage.clone_from(&self.api.stage);
        config.api_id.clone_from(&self.api.logical_id);
        config.route_selection.clone_from(&self.api.route_selection);
        let mut gateway = LocalGateway::new(config);
        for route in &self.api.routes {
            let target = FunctionTarget::new(endpoint.clone(), name_of(&route.function)?)
                .map_err(option)?
                .two_way(route.two_way);
            gateway = gateway.function(route.route_key.clone(), target);
        }
        if let Some(spec) = &self.api.authorizer {
            let settings = self.template.settings();
            let mut authorizer = RequestAuthorizer::new(endpoint, name_of(&spec.function)?)
                .and_then(|a| a.arn_parts(&settings.region, &settings.account_id))
                .map_err(option)?;
            for source in &spec.identity_sources {
                authorizer =
                    authorizer
                        .identity_source(source)
                        .map_err(|e| TemplateError::Resource {
                            resource: spec.logical_id.clone(),
                            property: "IdentitySource".to_owned(),
                            message: e.to_string(),
                        })?;
            }
            gateway = gateway.authorizer(authorizer);
        }
        Ok(gateway)
    }

    /// The environment of function `logical_id` when served locally: the template's
    /// variables, `APIGW_MANAGEMENT_URL` pointing at `management_endpoint`, then `extra`.
    pub fn environment(
        &self,
        logical_id: &str,
        management_endpoint: &str,
        extra: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut env = self
            .api
            .functions
            .get(logical_id)
            .map(|f| f.environment.clone())
            .unwrap_or_default();
        env.insert(
            stateless_ws::env::APIGW_MANAGEMENT_URL.to_owned(),
            management_endpoint.to_owned(),
        );
        env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Every function's environment in one file (`KEY=VALUE` lines, as `cargo lambda watch
    /// --env-file` and dotenv read them). A variable two functions set differently keeps the
    /// first function's value, with a comment. Values are quoted so that dotenv readers take
    /// them literally: single quotes around a value with spaces, `$`, `"` or newlines;
    /// double quotes with `\\`, `\"`, `\$`, `\n` escapes around one with `'` or `\\`.
    pub fn env_file(&self, management_endpoint: &str, extra: &BTreeMap<String, String>) -> String {
        let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for logical in self.api.functions.keys() {
            for (k, v) in self.environment(logical, management_endpoint, extra) {
                match merged.get(&k) {
                    Some((first, value)) if *value != v => {
                        conflicts.push(format!(
                            "# {k}: {logical} sets {v:?}, {first}'s value is kept"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        merged.insert(k, (logical.clone(), v));
                    }
                }
            }
        }
        let mut out = String::from(
            "# Written by stateless-ws-local: the environment of the template's functions, served locally.\n",
        );
        for line in conflicts {
            out.push_str(&line);
            out.push('\n');
        }
        for (k, (_, v)) in merged {
            let _ = writeln!(out, "{k}={}", quote(&v));
        }
        out
    }

    /// Every function's environment as `sam local start-lambda --env-vars` (and `sam local
    /// invoke`) read it: one object per function, keyed by logical id — SAM's highest-priority
    /// key — so each function gets exactly its own variables.
    ///
    /// SAM sets only the variables a function's `Environment` declares in the template: the
    /// file overrides their values but adds none. Declare the trust variables there (e.g. in
    /// `Globals`) for them to reach a `sam local` function.
    pub fn env_json(&self, management_endpoint: &str, extra: &BTreeMap<String, String>) -> String {
        let functions: BTreeMap<&String, BTreeMap<String, String>> = self
            .api
            .functions
            .keys()
            .map(|logical| {
                (
                    logical,
                    self.environment(logical, management_endpoint, extra),
                )
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&functions).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A dotenv value that dotenv readers read back literally, `$` included — no `${USER}`
/// expanded, no `cost$HOME` refused:
///
/// - bare when it holds only letters, digits and `-_./:,@%+=`;
/// - else in single quotes, which Rust's `dotenvy` and the dotenv format take literally (no
///   `$` expansion, no escapes; a newline stays a newline), when it holds no `'` and no `\`;
/// - else in double quotes, `\` written `\\`, `"` as `\"`, `$` as `\$` and a newline as
///   `\n`, which `dotenvy` reads back exactly.
///
/// python-dotenv (1.2, checked) expands `${NAME}` whatever the quoting: read the file with
/// `interpolate=False` there.
fn quote(value: &str) -> String {
    let safe = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:,@%+=".contains(c));
    if safe && !value.is_empty() {
        value.to_owned()
    } else if !value.contains(['\'', '\\']) {
        format!("'{value}'")
    } else {
        let mut quoted = String::with_capacity(value.len() + 2);
        quoted.push('"');
        for c in value.chars() {
            match c {
                '\\' => quoted.push_str("\\\\"),
                '"' => quoted.push_str("\\\""),
                '$' => quoted.push_str("\\$"),
                '\n' => quoted.push_str("\\n"),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    }
}

/// Parses `Key=Value` pairs (`--parameter-overrides`, `--function-name-map`, `--env`); also
/// accepts SAM's `ParameterKey=K,ParameterValue=V`.
///
/// # Errors
///
/// [`TemplateError::Option`] naming the pair without `=` or with an empty key.
pub fn parse_pairs(
    flag: &str,
    pairs: &[String],
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        let (key, value) = if let Some(rest) = pair.strip_prefix("ParameterKey=") {
            rest.split_once(",ParameterValue=")
        } else {
            pair.split_once('=')
        }
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| TemplateError::Option(format!("{flag} {pair:?}: expected Key=Value")))?;
        map.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_quoted_when_needed() {
        assert_eq!(quote("http://127.0.0.1:1/prod"), "http://127.0.0.1:1/prod");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("x\"y $HOME"), "'x\"y $HOME'");
        assert_eq!(quote("it's $HOME"), "\"it's \\$HOME\"");
        assert_eq!(quote("a\\b\nc"), "\"a\\\\b\\nc\"");
    }

    #[test]
    fn pairs_parse_in_both_spellings() {
        let map = parse_pairs(
            "--parameter-overrides",
            &["A=1".into(), "ParameterKey=B,ParameterValue=x=y".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(map.get("A").map(String::as_str), Some("1"));
        assert_eq!(map.get("B").map(String::as_str), Some("x=y"));
        assert!(parse_pairs("--env", &["novalue".into()]).is_err());
        assert!(parse_pairs("--env", &["=v".into()]).is_err());
    }
}
