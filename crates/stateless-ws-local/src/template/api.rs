//! The WebSocket API a template describes: routes, the function behind each, route responses,
//! the `$connect` authorizer, the stage, and each function's environment.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::TemplateError;
use crate::template::resources::{API, LAMBDA_FUNCTION, SAM_FUNCTION, STAGE, TABLE};
use crate::template::stand_in::{self, Recorded, Source, StandIn};
use crate::template::{Location, Template, scalar_text};

const ROUTE: &str = "AWS::ApiGatewayV2::Route";
const INTEGRATION: &str = "AWS::ApiGatewayV2::Integration";
const ROUTE_RESPONSE: &str = "AWS::ApiGatewayV2::RouteResponse";
const AUTHORIZER: &str = "AWS::ApiGatewayV2::Authorizer";

/// One route and the function that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `$connect`, `$disconnect`, `$default` or a value of the selection field.
    pub route_key: String,
    /// The route's logical id.
    pub logical_id: String,
    /// The function's logical id.
    pub function: String,
    /// Whether a route response exists: the function's body goes back to the caller.
    pub two_way: bool,
}

/// The REQUEST authorizer in front of `$connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerSpec {
    /// The authorizer's logical id.
    pub logical_id: String,
    /// The function's logical id.
    pub function: String,
    /// `route.request.querystring.token`, …
    pub identity_sources: Vec<String>,
}

/// A function a route or the authorizer invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The logical id (the name `sam local start-lambda` serves it under).
    pub logical_id: String,
    /// The binary name from a `CodeUri` ending in `target/lambda/<bin>/` (cargo-lambda's
    /// output directory; the name `cargo lambda watch` serves it under).
    pub binary: Option<String>,
    /// Its environment (SAM `Globals` merged with its own), resolved.
    pub environment: BTreeMap<String, String>,
    /// The stand-ins each variable's value holds (variable → values made up for resources
    /// with no local counterpart): see [`WebSocketApi::stand_ins`].
    stand_ins: BTreeMap<String, Vec<Recorded>>,
}

/// The WebSocket API of a template, ready to be served.
#[derive(Debug, Clone)]
pub struct WebSocketApi {
    /// The API's logical id (also the `apiId` put in events).
    pub logical_id: String,
    /// The field of `RouteSelectionExpression` `$request.body.<field>` (dots for nesting).
    pub route_selection: String,
    /// The stage's name ([`Settings::stage`](crate::Settings::stage), else the `StageName` of an
    /// `AWS::ApiGatewayV2::Stage` of the API, else `local`).
    pub stage: String,
    /// The routes, by route key.
    pub routes: Vec<RouteSpec>,
    /// The `$connect` authorizer, when the route uses one (`AuthorizationType: CUSTOM`).
    pub authorizer: Option<AuthorizerSpec>,
    /// The functions the routes and the authorizer invoke, by logical id.
    pub functions: BTreeMap<String, FunctionSpec>,
    /// What of the template is not emulated, one sentence each.
    pub notes: Vec<String>,
    /// The values in the functions' environment that stand in for something with nothing
    /// behind it locally — a table to create, a queue URL, the account id — each once, with
    /// the variables that hold it and what to do ([`StandIn::note`]).
    pub stand_ins: Vec<StandIn>,
}

impl WebSocketApi {
    /// The WebSocket API of `template`: the only `WEBSOCKET` API, or the one named `api`.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] naming the resource at fault: no (or several) WebSocket APIs, a route
    /// without an integration, an integration that is not a Lambda proxy, a URI that names no
    /// function of the template, an authorizer that is not REQUEST, ...
    pub fn from_template(template: &Template, api: Option<&str>) -> Result<Self, TemplateError> {
        let logical_id = pick_api(template, api)?;
        let at = |p: &str| Location::new(&logical_id, p);
        let expression = template
            .string_property(&logical_id, "RouteSelectionExpression")?
            .ok_or_else(|| {
                TemplateError::at(
                    &at("RouteSelectionExpression"),
                    "is required for a WebSocket API",
                )
            })?;
        let route_selection = expression
            .strip_prefix("$request.body.")
            .or_else(|| {
                expression
                    .strip_prefix("${request.body.")
                    .and_then(|s| s.strip_suffix('}'))
            })
            .filter(|f| !f.is_empty())
            .ok_or_else(|| {
                TemplateError::at(
                    &at("RouteSelectionExpression"),
                    format!("{expression:?} is not supported: only $request.body.<field>"),
                )
            })?
            .to_owned();
        let mut api = Self {
            stage: stage_of(template, &logical_id)?,
            logical_id,
            route_selection,
            routes: Vec::new(),
            authorizer: None,
            functions: BTreeMap::new(),
            notes: Vec::new(),
            stand_ins: Vec::new(),
        };
        api.read_routes(template)?;
        for function in api.function_ids() {
            let spec = function_spec(template, &function)?;
            api.functions.insert(function, spec);
        }
        api.stand_ins = api.collect_stand_ins(template);
        Ok(api)
    }

    fn function_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.routes.iter().map(|r| r.function.clone()).collect();
        ids.extend(self.authorizer.iter().map(|a| a.function.clone()));
        ids.sort();
        ids.dedup();
        ids
    }

    /// Every stand-in the functions' variables hold, once per thing it stands for (a queue's
    /// URL, name and ARN make one note, with the value met first), with the variables that
    /// hold it. A variable whose value is a table's name without naming the table (`!Ref
    /// TableName`, a parameter the table's `TableName` uses too) counts as holding it.
    fn collect_stand_ins(&self, template: &Template) -> Vec<StandIn> {
        let tables: Vec<(String, String)> = template
            .resources()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(TABLE))
            .filter_map(|(id, _)| Some((stand_in::table_name(template, id)?, id.to_owned())))
            .collect();
        let mut found: Vec<(Recorded, std::collections::BTreeSet<String>)> = Vec::new();
        let mut add = |recorded: &Recorded, variable: &str| match found
            .iter_mut()
            .find(|(r, _)| r.source == recorded.source)
        {
            Some((_, variables)) => {
                variables.insert(variable.to_owned());
            }
            None => found.push((recorded.clone(), [variable.to_owned()].into())),
        };
        for spec in self.functions.values() {
            for (variable, recorded) in &spec.stand_ins {
                for r in recorded {
                    add(r, variable);
                }
            }
            for (variable, value) in &spec.environment {
                if let Some((name, id)) = tables.iter().find(|(name, _)| name == value) {
                    let recorded = Recorded {
                        value: name.clone(),
                        source: Source::Table(id.clone()),
                    };
                    add(&recorded, variable);
                }
            }
        }
        found
            .into_iter()
            .map(|(recorded, variables)| {
                StandIn::describe(template, &recorded, variables.into_iter().collect())
            })
            .collect()
    }

    fn read_routes(&mut self, template: &Template) -> Result<(), TemplateError> {
        let of_api = |kind: &str| -> Result<Vec<String>, TemplateError> {
            let mut ids = Vec::new();
            for (id, resource) in template.resources() {
                if resource.get("Type").and_then(Value::as_str) == Some(kind)
                    && template.string_property(id, "ApiId")?.as_deref() == Some(&self.logical_id)
                {
                    ids.push(id.to_owned());
                }
            }
            Ok(ids)
        };
        let mut two_way = std::collections::BTreeSet::new();
        for id in of_api(ROUTE_RESPONSE)? {
            let route = template
                .string_property(&id, "RouteId")?
                .ok_or_else(|| TemplateError::at(&Location::new(&id, "RouteId"), "is required"))?;
            let key = template.string_property(&id, "RouteResponseKey")?;
            if key.as_deref() != Some("$default") {
                self.notes.push(format!(
                    "{id}: route response key {key:?} is treated as $default (response selection is not emulated)"
                ));
            }
            two_way.insert(route);
        }
        for id in of_api(ROUTE)? {
            let at = |p: &str| Location::new(&id, p);
            let route_key = template
                .string_property(&id, "RouteKey")?
                .ok_or_else(|| TemplateError::at(&at("RouteKey"), "is required"))?;
            let target = template.string_property(&id, "Target")?.ok_or_else(|| {
                TemplateError::at(
                    &at("Target"),
                    "is required here: a route without an integration cannot be served",
                )
            })?;
            let integration = target.strip_prefix("integrations/").ok_or_else(|| {
                TemplateError::at(
                    &at("Target"),
                    format!("{target:?} is not integrations/<IntegrationId>"),
                )
            })?;
            if template.resource_type(integration) != Some(INTEGRATION) {
                return Err(TemplateError::at(
                    &at("Target"),
                    format!("{integration} is not an {INTEGRATION} of this template"),
                ));
            }
            let function = integration_function(template, integration)?;
            let authorization = template
                .string_property(&id, "AuthorizationType")?
                .unwrap_or_else(|| "NONE".to_owned());
            match authorization.as_str() {
                "NONE" => {}
                "CUSTOM" if route_key == "$connect" => {
                    self.authorizer = Some(authorizer_spec(template, &id)?);
                }
                "CUSTOM" => {
                    return Err(TemplateError::at(
                        &at("AuthorizationType"),
                        "CUSTOM is only valid on $connect",
                    ));
                }
                other => self.notes.push(format!(
                    "{id}: AuthorizationType {other} is not emulated (no IAM checks locally)"
                )),
            }
            if route_key != "$connect" && route_key != "$disconnect" {
                let selection =
                    template.string_property(&id, "RouteResponseSelectionExpression")?;
                if two_way.contains(&id) && selection.is_none() {
                    self.notes.push(format!("{id}: has a route response but no RouteResponseSelectionExpression; treated as two-way"));
                }
            }
            self.routes.push(RouteSpec {
                two_way: two_way.contains(&id),
                route_key,
                logical_id: id,
                function,
            });
        }
        if self.routes.is_empty() {
            return Err(TemplateError::at(
                &Location::new(&self.logical_id, "routes"),
                "the API has no routes",
            ));
        }
        self.routes.sort_by(|a, b| a.route_key.cmp(&b.route_key));
        if let Some(pair) = self
            .routes
            .windows(2)
            .find(|w| w[0].route_key == w[1].route_key)
        {
            return Err(TemplateError::at(
                &Location::new(&pair[1].logical_id, "RouteKey"),
                format!(
                    "route key {} is also used by {}",
                    pair[1].route_key, pair[0].logical_id
                ),
            ));
        }
        Ok(())
    }
}

fn pick_api(template: &Template, wanted: Option<&str>) -> Result<String, TemplateError> {
    let mut apis = Vec::new();
    for (id, resource) in template.resources() {
        if resource.get("Type").and_then(Value::as_str) == Some(API)
            && template.string_property(id, "ProtocolType")?.as_deref() == Some("WEBSOCKET")
        {
            apis.push(id.to_owned());
        }
    }
    match wanted {
        Some(name) if apis.iter().any(|a| a == name) => Ok(name.to_owned()),
        Some(name) => Err(TemplateError::NotFound(format!(
            "--api {name}: no {API} with ProtocolType WEBSOCKET of that name (found: {})",
            list_or_none(&apis)
        ))),
        None => match apis.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(TemplateError::NotFound(format!(
                "the template has no {API} with ProtocolType WEBSOCKET"
            ))),
            many => Err(TemplateError::NotFound(format!(
                "the template has several WebSocket APIs ({}): pick one with --api",
                many.join(", ")
            ))),
        },
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The stage of `api`: [`Settings::stage`](crate::Settings::stage) when set, else the
/// `StageName` of its `AWS::ApiGatewayV2::Stage`, else `local`.
fn stage_of(template: &Template, api: &str) -> Result<String, TemplateError> {
    if let Some(stage) = &template.settings().stage {
        return Ok(stage.clone());
    }
    for (id, resource) in template.resources() {
        if resource.get("Type").and_then(Value::as_str) == Some(STAGE)
            && template.string_property(id, "ApiId")?.as_deref() == Some(api)
            && let Some(name) = template.string_property(id, "StageName")?
        {
            return Ok(name);
        }
    }
    Ok("local".to_owned())
}

/// The function of a Lambda proxy integration.
fn integration_function(template: &Template, integration: &str) -> Result<String, TemplateError> {
    let kind = template
        .string_property(integration, "IntegrationType")?
        .unwrap_or_default();
    if kind != "AWS_PROXY" {
        return Err(TemplateError::at(
            &Location::new(integration, "IntegrationType"),
            format!(
                "{kind:?} is not supported: stateless-ws-local serves Lambda proxy integrations (AWS_PROXY) only"
            ),
        ));
    }
    let uri = template
        .string_property(integration, "IntegrationUri")?
        .ok_or_else(|| {
            TemplateError::at(&Location::new(integration, "IntegrationUri"), "is required")
        })?;
    function_of_uri(template, &uri).ok_or_else(|| {
        TemplateError::at(
            &Location::new(integration, "IntegrationUri"),
            format!("{uri:?} does not name a Lambda function of this template"),
        )
    })
}

/// The logical id of the function an integration or authorizer URI names:
/// `arn:…:apigateway:…:lambda:path/2015-03-31/functions/arn:aws:lambda:…:function:NAME/invocations`
/// or a function ARN; NAME is a logical id or a function's `FunctionName`.
fn function_of_uri(template: &Template, uri: &str) -> Option<String> {
    let (_, after) = uri.rsplit_once(":function:")?;
    let name = after.split(['/', ':']).next()?;
    if matches!(
        template.resource_type(name),
        Some(SAM_FUNCTION | LAMBDA_FUNCTION)
    ) {
        return Some(name.to_owned());
    }
    template
        .resources()
        .filter(|(_, r)| {
            matches!(
                r.get("Type").and_then(Value::as_str),
                Some(SAM_FUNCTION | LAMBDA_FUNCTION)
            )
        })
        .find(|(id, _)| {
            template
                .string_property(id, "FunctionName")
                .ok()
                .flatten()
                .as_deref()
                == Some(name)
        })
        .map(|(id, _)| id.to_owned())
}

/// The `$connect` route's authorizer.
fn authorizer_spec(template: &Template, route: &str) -> Result<AuthorizerSpec, TemplateError> {
    let at = Location::new(route, "AuthorizerId");
    let id = template
        .string_property(route, "AuthorizerId")?
        .ok_or_else(|| TemplateError::at(&at, "is required with AuthorizationType CUSTOM"))?;
    if template.resource_type(&id) != Some(AUTHORIZER) {
        return Err(TemplateError::at(
            &at,
            format!("{id} is not an {AUTHORIZER} of this template (or its Condition is false)"),
        ));
    }
    let kind = template.string_property(&id, "AuthorizerType")?;
    if kind.as_deref() != Some("REQUEST") {
        return Err(TemplateError::at(
            &Location::new(&id, "AuthorizerType"),
            format!("{kind:?} is not supported: WebSocket APIs use REQUEST authorizers"),
        ));
    }
    let uri = template
        .string_property(&id, "AuthorizerUri")?
        .ok_or_else(|| TemplateError::at(&Location::new(&id, "AuthorizerUri"), "is required"))?;
    let function = function_of_uri(template, &uri).ok_or_else(|| {
        TemplateError::at(
            &Location::new(&id, "AuthorizerUri"),
            format!("{uri:?} does not name a Lambda function of this template"),
        )
    })?;
    let identity_sources = match template.property(&id, "IdentitySource")? {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(one) => scalar_text(&one).into_iter().collect(),
    };
    Ok(AuthorizerSpec {
        logical_id: id,
        function,
        identity_sources,
    })
}

fn function_spec(template: &Template, id: &str) -> Result<FunctionSpec, TemplateError> {
    let kind = template.resource_type(id);
    if !matches!(kind, Some(SAM_FUNCTION | LAMBDA_FUNCTION)) {
        return Err(TemplateError::at(
            &Location::new(id, "Type"),
            format!("is {kind:?}, not a Lambda function"),
        ));
    }
    let mut environment = Environment::default();
    if kind == Some(SAM_FUNCTION)
        && let Some(globals) = template
            .globals("Function")
            .and_then(|g| g.get("Environment"))
    {
        environment.merge(template, globals, "Globals", "Function.Environment")?;
    }
    if let Some(own) = template
        .resource(id)
        .and_then(|r| r.get("Properties"))
        .and_then(|p| p.get("Environment"))
    {
        environment.merge(template, own, id, "Environment")?;
    }
    let binary = template
        .string_property(id, "CodeUri")
        .ok()
        .flatten()
        .and_then(|uri| binary_of_code_uri(&uri));
    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        environment: environment.values,
        stand_ins: environment.stand_ins,
    })
}

/// A function's variables as they are merged (`Globals` first), with the stand-ins each
/// value holds.
#[derive(Default)]
struct Environment {
    values: BTreeMap<String, String>,
    stand_ins: BTreeMap<String, Vec<Recorded>>,
}

impl Environment {
    /// Adds the variables of `environment` (an `Environment` property, found at `resource`,
    /// `property`), each resolved on its own so that its stand-ins are its own.
    fn merge(
        &mut self,
        template: &Template,
        environment: &Value,
        resource: &str,
        property: &str,
    ) -> Result<(), TemplateError> {
        let at = Location::new(resource, property);
        let resolver = template.resolver(&at);
        // `Environment` or its `Variables` may be an intrinsic (`!If [...]`): resolved as a
        // whole, then every variable holds every stand-in found.
        let resolved_environment;
        let environment = match environment.get("Variables") {
            Some(_) => environment,
            None => {
                resolved_environment = resolver.resolve(environment)?;
                match &resolved_environment {
                    Some(value) => value,
                    None => return Ok(()),
                }
            }
        };
        let Some(variables) = environment.get("Variables") else {
            return Ok(());
        };
        let variables = match variables.as_object() {
            Some(map) if crate::template::intrinsic(variables).is_none() => map.clone(),
            _ => match resolver.resolve(variables)? {
                None => return Ok(()),
                Some(Value::Object(map)) => map,
                Some(_) => return Err(TemplateError::at(&at, "Variables must be a mapping")),
            },
        };
        let shared = resolver.take_recorded();
        for (name, value) in &variables {
            let variable_at = Location::new(resource, &format!("{property}.Variables.{name}"));
            let resolver = template.resolver(&variable_at);
            let Some(value) = resolver.resolve(value)? else {
                continue; // AWS::NoValue
            };
            let text = scalar_text(&value).ok_or_else(|| {
                TemplateError::at(&variable_at, format!("variable {name} is not a string"))
            })?;
            let mut recorded = resolver.take_recorded();
            recorded.extend(shared.iter().cloned());
            self.values.insert(name.clone(), text);
            self.stand_ins.insert(name.clone(), recorded);
        }
        Ok(())
    }
}

/// `../../target/lambda/lambda_connect/` → `lambda_connect` (cargo-lambda's layout).
fn binary_of_code_uri(uri: &str) -> Option<String> {
    let mut parts = uri.trim_end_matches('/').rsplit('/');
    let binary = parts.next()?;
    (parts.next() == Some("lambda") && !binary.is_empty()).then(|| binary.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_uris_name_cargo_lambda_binaries() {
        assert_eq!(
            binary_of_code_uri("../../target/lambda/lambda_connect/").as_deref(),
            Some("lambda_connect")
        );
        assert_eq!(binary_of_code_uri("target/lambda/x").as_deref(), Some("x"));
        assert_eq!(binary_of_code_uri("src/"), None);
        assert_eq!(binary_of_code_uri("s3://bucket/key.zip"), None);
    }
}
