//! A SAM/CloudFormation template: YAML (short tags included) or JSON, turned into the long JSON
//! form, with parameters, conditions and the intrinsic functions this tool needs resolved.
//!
//! Resolution is lazy — only the properties the local API needs are resolved — so a template
//! may use intrinsics this tool does not know (`Fn::ImportValue`, …) in its IAM policies
//! without harm; where one is needed, the error names the resource and property.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::TemplateError;

mod api;
mod resolve;
mod resources;
mod stand_in;
mod yaml;

pub use api::{AuthorizerSpec, FunctionSpec, RouteSpec, WebSocketApi};
pub(crate) use resolve::Resolver;
pub use stand_in::StandIn;

/// Values of the pseudo parameters (`AWS::Region`, …) and of parameters, and what the
/// resources' `Ref` and `Fn::GetAtt` values depend on locally.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `AWS::Region` (default `us-east-1`).
    pub region: String,
    /// `AWS::AccountId` (default `000000000000`: the account MiniStack and LocalStack use for
    /// a non-numeric access key such as `test`, so ARNs and queue URLs match theirs).
    pub account_id: String,
    /// `AWS::StackName` (default `local`); also the first part of the names CloudFormation
    /// would generate for resources without one (`{stack}-{LogicalId}`).
    pub stack_name: String,
    /// `--parameter-overrides`: parameter name → value.
    pub parameter_overrides: BTreeMap<String, String>,
    /// The stage served instead of the template's `StageName` (`--stage`): what the `Ref` of an
    /// `AWS::ApiGatewayV2::Stage` gives too. Default `None`.
    pub stage: Option<String>,
    /// The AWS endpoint the functions use locally (`--aws-endpoint`, e.g. MiniStack's
    /// `http://127.0.0.1:4566`): an SQS queue's URL is then the one that endpoint gives,
    /// `{endpoint}/{account}/{QueueName}`, rather than AWS's
    /// `https://sqs.{region}.amazonaws.com/{account}/{QueueName}`. Default `None`.
    pub endpoint: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: "000000000000".to_owned(),
            stack_name: "local".to_owned(),
            parameter_overrides: BTreeMap::new(),
            stage: None,
            endpoint: None,
        }
    }
}

/// A parsed template with its parameters and conditions evaluated.
#[derive(Debug)]
pub struct Template {
    root: Value,
    settings: Settings,
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

impl Template {
    /// Parses `text` (YAML or JSON, with or without a byte order mark) and evaluates parameters (defaults, then overrides) and
    /// the `Conditions` section.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] when the text is not YAML, has no `Resources`, an override names an
    /// unknown parameter, a parameter has no value or one outside its `AllowedValues`, or a
    /// condition cannot be evaluated.
    pub fn parse(text: &str, settings: Settings) -> Result<Self, TemplateError> {
        // A UTF-8 byte order mark, as some Windows editors write, is not content: left in,
        // the YAML parser takes it for the start of a second document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let yaml: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| TemplateError::Parse(e.to_string()))?;
        let root = yaml::long_form(yaml)?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            return Err(TemplateError::Parse(
                "the template has no Resources mapping".to_owned(),
            ));
        }
        let mut template = Self {
            root,
            settings,
            parameters: BTreeMap::new(),
            conditions: BTreeMap::new(),
        };
        template.parameters = template.evaluate_parameters()?;
        template.conditions = template.evaluate_conditions()?;
        Ok(template)
    }

    fn evaluate_parameters(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        let declared = self.root.get("Parameters").and_then(Value::as_object);
        let empty = Map::new();
        let declared = declared.unwrap_or(&empty);
        for name in self.settings.parameter_overrides.keys() {
            if !declared.contains_key(name) {
                return Err(TemplateError::Parameter {
                    name: name.clone(),
                    message: "is not a parameter of this template".to_owned(),
                });
            }
        }
        let mut values = BTreeMap::new();
        for (name, spec) in declared {
            let value = match self.settings.parameter_overrides.get(name) {
                Some(value) => value.clone(),
                None => match spec.get("Default") {
                    Some(default) => {
                        scalar_text(default).ok_or_else(|| TemplateError::Parameter {
                            name: name.clone(),
                            message: "has a Default that is not a string or number".to_owned(),
                        })?
                    }
                    None => {
                        return Err(TemplateError::Parameter {
                            name: name.clone(),
                            message: "has no Default: pass it with --parameter-overrides"
                                .to_owned(),
                        });
                    }
                },
            };
            if let Some(allowed) = spec.get("AllowedValues").and_then(Value::as_array) {
                let ok = allowed.iter().filter_map(scalar_text).any(|a| a == value);
                if !ok {
                    return Err(TemplateError::Parameter {
                        name: name.clone(),
                        message: format!("value {value:?} is not one of its AllowedValues"),
                    });
                }
            }
            values.insert(name.clone(), value);
        }
        Ok(values)
    }

    /// Evaluates the `Conditions` section in dependency order (Kahn's algorithm): each
    /// condition once, after the conditions it names — linear in the section's size, whatever
    /// order its entries come in.
    fn evaluate_conditions(&self) -> Result<BTreeMap<String, bool>, TemplateError> {
        let mut values = BTreeMap::new();
        let Some(conditions) = self.root.get("Conditions").and_then(Value::as_object) else {
            return Ok(values);
        };
        let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, body) in conditions {
            let mut named = Vec::new();
            condition_names(body, &mut named);
            named.sort_unstable();
            named.dedup();
            for dependency in &named {
                if !conditions.contains_key(*dependency) {
                    return Err(TemplateError::at(
                        &Location::new("Conditions", name),
                        format!("refers to condition {dependency:?}, which does not exist"),
                    ));
                }
                dependents.entry(dependency).or_default().push(name);
            }
            waiting_on.insert(name, named.len());
        }
        let mut ready: Vec<&str> = waiting_on
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(name, _)| *name)
            .collect();
        while let Some(name) = ready.pop() {
            let at = Location::new("Conditions", name);
            let body = &conditions[name];
            let value = self.condition_value(body, &at, &values).map_err(|_| {
                TemplateError::at(
                    &at,
                    "cannot be evaluated (Fn::Equals, Fn::Not, Fn::And, Fn::Or and Condition are supported)",
                )
            })?;
            values.insert(name.to_owned(), value);
            for dependent in dependents.get(name).into_iter().flatten() {
                if let Some(n) = waiting_on.get_mut(dependent) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(dependent);
                    }
                }
            }
        }
        if let Some(name) = conditions.keys().find(|n| !values.contains_key(*n)) {
            return Err(TemplateError::at(
                &Location::new("Conditions", name),
                "is part of a cycle of conditions",
            ));
        }
        Ok(values)
    }

    fn condition_value(
        &self,
        body: &Value,
        at: &Location,
        known: &BTreeMap<String, bool>,
    ) -> Result<bool, Pending> {
        let (name, args) = intrinsic(body).ok_or(Pending)?;
        let list = || args.as_array().ok_or(Pending);
        match name {
            "Condition" => args
                .as_str()
                .and_then(|n| known.get(n).copied())
                .ok_or(Pending),
            "Fn::Equals" => {
                let items = list()?;
                let [a, b] = items.as_slice() else {
                    return Err(Pending);
                };
                let resolver = self.resolver(at);
                let a = resolver.resolve(a).map_err(|_| Pending)?;
                let b = resolver.resolve(b).map_err(|_| Pending)?;
                Ok(a.as_ref().and_then(scalar_text) == b.as_ref().and_then(scalar_text))
            }
            "Fn::Not" => match list()?.as_slice() {
                [one] => Ok(!self.condition_value(one, at, known)?),
                _ => Err(Pending),
            },
            "Fn::And" => {
                let mut all = true;
                for item in list()? {
                    all &= self.condition_value(item, at, known)?;
                }
                Ok(all)
            }
            "Fn::Or" => {
                let mut any = false;
                for item in list()? {
                    any |= self.condition_value(item, at, known)?;
                }
                Ok(any)
            }
            _ => Err(Pending),
        }
    }

    /// The value of condition `name`.
    pub fn condition(&self, name: &str) -> Option<bool> {
        self.conditions.get(name).copied()
    }

    /// The parameters' values.
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        &self.parameters
    }

    /// The settings the template was read with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every resource whose `Condition` (if any) holds: logical id → its definition.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.root
            .get("Resources")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, r)| self.included(r))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The resource `logical_id`, when it exists and its `Condition` holds.
    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.root
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .filter(|r| self.included(r))
    }

    fn included(&self, resource: &Value) -> bool {
        match resource.get("Condition").and_then(Value::as_str) {
            Some(name) => self.condition(name).unwrap_or(false),
            None => true,
        }
    }

    /// The resource's `Type`.
    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id)?.get("Type")?.as_str()
    }

    /// SAM's `Globals` section for `kind` (`Function`).
    pub fn globals(&self, kind: &str) -> Option<&Value> {
        self.root.get("Globals")?.get(kind)
    }

    /// A resolver for values found at `at`.
    pub fn resolver<'a>(&'a self, at: &'a Location) -> Resolver<'a> {
        Resolver::new(self, at)
    }

    /// Property `property` of resource `logical_id`, resolved; `None` when absent (or
    /// `AWS::NoValue`).
    ///
    /// # Errors
    ///
    /// [`TemplateError`] naming the resource and property when resolution fails.
    pub fn property(
        &self,
        logical_id: &str,
        property: &str,
    ) -> Result<Option<Value>, TemplateError> {
        let Some(raw) = self
            .resource(logical_id)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get(property))
        else {
            return Ok(None);
        };
        let at = Location::new(logical_id, property);
        self.resolver(&at).resolve(raw)
    }

    /// Property `property` of `logical_id` as a string.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] when it resolves to something other than a string or number.
    pub fn string_property(
        &self,
        logical_id: &str,
        property: &str,
    ) -> Result<Option<String>, TemplateError> {
        match self.property(logical_id, property)? {
            None => Ok(None),
            Some(value) => scalar_text(&value).map(Some).ok_or_else(|| {
                TemplateError::at(
                    &Location::new(logical_id, property),
                    format!("must be a string, found {value}"),
                )
            }),
        }
    }
}

/// A condition that cannot be evaluated yet.
struct Pending;

/// Where a value sits, for error messages: a resource (or section) and a property.
#[derive(Debug, Clone)]
pub struct Location {
    /// The resource's logical id (or a section such as `Conditions`, `Globals`).
    pub resource: String,
    /// The property.
    pub property: String,
}

impl Location {
    /// `resource`, `property`.
    pub fn new(resource: &str, property: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            property: property.to_owned(),
        }
    }
}

/// Collects the condition names `{"Condition": name}` in `body` refers to.
fn condition_names<'a>(body: &'a Value, into: &mut Vec<&'a str>) {
    match body {
        Value::Object(map) => {
            if let (1, Some(Value::String(name))) = (map.len(), map.get("Condition")) {
                into.push(name);
                return;
            }
            for value in map.values() {
                condition_names(value, into);
            }
        }
        Value::Array(items) => {
            for item in items {
                condition_names(item, into);
            }
        }
        _ => {}
    }
}

/// A string, number or boolean as text.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{"Ref": …}` or `{"Fn::…": …}` (or `{"Condition": …}`): the function's name and arguments.
pub(crate) fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (name, args) = map.iter().next()?;
    (name == "Ref" || name == "Condition" || name.starts_with("Fn::")).then_some((name, args))
}
