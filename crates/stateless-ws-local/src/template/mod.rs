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
mod yaml;

pub use api::{AuthorizerSpec, FunctionSpec, RouteSpec, WebSocketApi};

/// Values of the pseudo parameters (`AWS::Region`, …) and of parameters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `AWS::Region` (default `us-east-1`).
    pub region: String,
    /// `AWS::AccountId` (default `123456789012`).
    pub account_id: String,
    /// `AWS::StackName` (default `local`).
    pub stack_name: String,
    /// `--parameter-overrides`: parameter name → value.
    pub parameter_overrides: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
            stack_name: "local".to_owned(),
            parameter_overrides: BTreeMap::new(),
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
        Resolver {
            template: self,
            at,
            depth: std::cell::Cell::new(0),
        }
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

/// How deeply intrinsic functions may nest in one value. Real templates nest a handful; the
/// cap keeps a hostile template from costing time or stack.
const MAX_NESTING: usize = 32;

/// The largest string a value may resolve to (1 MiB, the size of the largest template
/// CloudFormation accepts): `Fn::Sub` and `Fn::Join` beyond it are errors, so a template that
/// doubles a string at each level cannot take the process's memory.
const MAX_VALUE_BYTES: usize = 1 << 20;

/// Resolves intrinsic functions in values found at one location.
///
/// Each node is resolved once, and each `Fn::Sub` variable once however often the string
/// names it; nesting is capped at 32 functions and strings at 1 MiB, with an error naming the
/// resource and property.
pub struct Resolver<'a> {
    template: &'a Template,
    at: &'a Location,
    /// Intrinsic functions being resolved, outermost first.
    depth: std::cell::Cell<usize>,
}

impl Resolver<'_> {
    fn fail(&self, message: impl Into<String>) -> TemplateError {
        TemplateError::at(self.at, message)
    }

    fn check_size(&self, function: &str, len: usize) -> Result<(), TemplateError> {
        if len > MAX_VALUE_BYTES {
            return Err(self.fail(format!(
                "{function} resolves to a string larger than {MAX_VALUE_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// `value` with every intrinsic function replaced by its value; `None` for `AWS::NoValue`.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] for an unknown name or an intrinsic function this tool does not
    /// support.
    pub fn resolve(&self, value: &Value) -> Result<Option<Value>, TemplateError> {
        if let Some((name, args)) = intrinsic(value) {
            let depth = self.depth.get();
            if depth >= MAX_NESTING {
                return Err(self.fail(format!(
                    "intrinsic functions nested more than {MAX_NESTING} deep"
                )));
            }
            self.depth.set(depth + 1);
            let resolved = self.function(name, args);
            self.depth.set(depth);
            return resolved;
        }
        Ok(Some(match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(self.resolve(item)?);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    if let Some(v) = self.resolve(v)? {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }))
    }

    fn function(&self, name: &str, args: &Value) -> Result<Option<Value>, TemplateError> {
        let list = |n: usize| -> Result<&Vec<Value>, TemplateError> {
            args.as_array()
                .filter(|a| a.len() == n)
                .ok_or_else(|| self.fail(format!("{name} takes a list of {n} items")))
        };
        match name {
            "Ref" => {
                let target = args
                    .as_str()
                    .ok_or_else(|| self.fail("Ref takes a name"))?;
                self.reference(target)
            }
            "Fn::GetAtt" => {
                let (resource, attribute) = match args {
                    Value::Array(parts) => match parts.as_slice() {
                        [Value::String(r), Value::String(a)] => (r.as_str(), a.as_str()),
                        _ => return Err(self.fail("Fn::GetAtt takes [Resource, Attribute]")),
                    },
                    Value::String(s) => s
                        .split_once('.')
                        .ok_or_else(|| self.fail("Fn::GetAtt takes Resource.Attribute"))?,
                    _ => return Err(self.fail("Fn::GetAtt takes [Resource, Attribute]")),
                };
                self.get_att(resource, attribute).map(Some)
            }
            "Fn::Sub" => self.sub(args).map(|s| Some(Value::String(s))),
            "Fn::If" => {
                let items = list(3)?;
                let condition = items[0]
                    .as_str()
                    .ok_or_else(|| self.fail("Fn::If takes a condition name first"))?;
                let holds = self
                    .template
                    .condition(condition)
                    .ok_or_else(|| self.fail(format!("unknown condition {condition:?}")))?;
                self.resolve(&items[if holds { 1 } else { 2 }])
            }
            "Fn::Join" => {
                let items = list(2)?;
                let delimiter = items[0]
                    .as_str()
                    .ok_or_else(|| self.fail("Fn::Join takes a delimiter string"))?;
                let parts = self.resolve(&items[1])?.unwrap_or(Value::Array(Vec::new()));
                let parts = parts
                    .as_array()
                    .ok_or_else(|| self.fail("Fn::Join takes a list to join"))?
                    .iter()
                    .map(|p| scalar_text(p).ok_or_else(|| self.fail("Fn::Join joins strings")))
                    .collect::<Result<Vec<_>, _>>()?;
                let joined = parts.join(delimiter);
                self.check_size("Fn::Join", joined.len())?;
                Ok(Some(Value::String(joined)))
            }
            "Fn::Select" => {
                let items = list(2)?;
                let index = self
                    .resolve(&items[0])?
                    .as_ref()
                    .and_then(scalar_text)
                    .and_then(|i| i.parse::<usize>().ok())
                    .ok_or_else(|| self.fail("Fn::Select takes an index"))?;
                let from = self.resolve(&items[1])?;
                from.as_ref()
                    .and_then(Value::as_array)
                    .and_then(|a| a.get(index))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| self.fail(format!("Fn::Select: no item {index}")))
            }
            "Fn::FindInMap" => {
                let items = list(3)?;
                let mut cursor = self.template.root.get("Mappings");
                for item in items {
                    let key = self
                        .resolve(item)?
                        .as_ref()
                        .and_then(scalar_text)
                        .ok_or_else(|| self.fail("Fn::FindInMap takes three names"))?;
                    cursor = cursor.and_then(|c| c.get(&key));
                }
                cursor
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| self.fail("Fn::FindInMap: no such entry in Mappings"))
            }
            other => Err(self.fail(format!(
                "intrinsic function {other} is not supported by stateless-ws-local (supported: Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Join, Fn::Select, Fn::FindInMap, and in Conditions Fn::Equals/Not/And/Or)"
            ))),
        }
    }

    fn reference(&self, target: &str) -> Result<Option<Value>, TemplateError> {
        let settings = &self.template.settings;
        let value = match target {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => settings.region.clone(),
            "AWS::AccountId" => settings.account_id.clone(),
            "AWS::StackName" => settings.stack_name.clone(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                settings.region, settings.account_id, settings.stack_name
            ),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(Vec::new()))),
            name => {
                if let Some(value) = self.template.parameters.get(name) {
                    value.clone()
                } else if self.template.resource(name).is_some() {
                    // As `sam local` does: a resource's Ref is its logical id.
                    name.to_owned()
                } else {
                    return Err(self.fail(format!(
                        "Ref {name}: no such parameter or resource (or its Condition is false)"
                    )));
                }
            }
        };
        Ok(Some(Value::String(value)))
    }

    fn get_att(&self, resource: &str, attribute: &str) -> Result<Value, TemplateError> {
        let kind = self.template.resource_type(resource).ok_or_else(|| {
            self.fail(format!(
                "Fn::GetAtt {resource}.{attribute}: no such resource (or its Condition is false)"
            ))
        })?;
        let settings = &self.template.settings;
        let value = match (kind, attribute) {
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => format!(
                "arn:aws:lambda:{}:{}:function:{resource}",
                settings.region, settings.account_id
            ),
            (_, "Arn") => format!(
                "arn:aws:local:{}:{}:{resource}",
                settings.region, settings.account_id
            ),
            // Other attributes only matter to AWS; a recognisable placeholder is enough here.
            _ => format!("{resource}.{attribute}"),
        };
        Ok(Value::String(value))
    }

    fn sub(&self, args: &Value) -> Result<String, TemplateError> {
        let (text, vars) = match args {
            Value::String(text) => (text.as_str(), None),
            Value::Array(items) => match items.as_slice() {
                [Value::String(text), Value::Object(vars)] => (text.as_str(), Some(vars)),
                _ => return Err(self.fail("Fn::Sub takes a string or [string, {variables}]")),
            },
            _ => return Err(self.fail("Fn::Sub takes a string or [string, {variables}]")),
        };
        let mut out = String::with_capacity(text.len());
        let mut resolved: BTreeMap<&str, String> = BTreeMap::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.fail("Fn::Sub: unclosed ${"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(text) = resolved.get(name) {
                out.push_str(text);
            } else {
                let value = match vars.and_then(|v| v.get(name)) {
                    Some(v) => self.resolve(v)?,
                    None => match name.split_once('.') {
                        Some((resource, attribute)) if !name.starts_with("AWS::") => {
                            Some(self.get_att(resource, attribute)?)
                        }
                        _ => self.reference(name)?,
                    },
                };
                let text = value
                    .as_ref()
                    .and_then(scalar_text)
                    .ok_or_else(|| self.fail(format!("Fn::Sub: ${{{name}}} is not a string")))?;
                out.push_str(&text);
                resolved.insert(name, text);
            }
            self.check_size("Fn::Sub", out.len())?;
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
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
fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (name, args) = map.iter().next()?;
    (name == "Ref" || name == "Condition" || name.starts_with("Fn::")).then_some((name, args))
}
