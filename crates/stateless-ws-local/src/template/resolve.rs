//! The resolver of intrinsic functions: `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`, `Fn::Join`,
//! `Fn::Select`, `Fn::FindInMap`. What a resource's `Ref` and attributes return is in
//! `resources.rs`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::stand_in::{Recorded, Source};
use super::{Location, Template, intrinsic, scalar_text};
use crate::TemplateError;

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
    depth: Cell<usize>,
    /// Values made up for resources and pseudo parameters with no local twin.
    recorded: RefCell<Vec<Recorded>>,
}

impl<'a> Resolver<'a> {
    /// A resolver for values found at `at` in `template`.
    pub(super) fn new(template: &'a Template, at: &'a Location) -> Self {
        Self {
            template,
            at,
            depth: Cell::new(0),
            recorded: RefCell::new(Vec::new()),
        }
    }
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
            "AWS::Region" => {
                self.record(settings.region.clone(), Source::Region);
                settings.region.clone()
            }
            "AWS::AccountId" => {
                self.record(settings.account_id.clone(), Source::AccountId);
                settings.account_id.clone()
            }
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
                } else if let Some(kind) = self.template.resource_type(name) {
                    self.resource_ref(name, kind)?
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
        self.resource_att(resource, kind, attribute)
    }

    /// Notes that `value`, produced here, stands for `source` (see [`StandIn`](super::StandIn)).
    pub(super) fn record(&self, value: String, source: Source) {
        self.recorded.borrow_mut().push(Recorded { value, source });
    }

    /// The stand-ins this resolver produced so far, in order, each value once.
    pub(crate) fn take_recorded(&self) -> Vec<Recorded> {
        let mut seen = std::collections::BTreeSet::new();
        self.recorded
            .take()
            .into_iter()
            .filter(|r| seen.insert(r.value.clone()))
            .collect()
    }

    /// The template.
    pub(super) fn template(&self) -> &Template {
        self.template
    }

    /// A resolver error at this location.
    pub(super) fn error(&self, message: impl Into<String>) -> TemplateError {
        self.fail(message)
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
