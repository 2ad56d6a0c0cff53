//! YAML to JSON: CloudFormation's short tags (`!Ref`, `!Sub`, `!GetAtt A.B`, ...) become their
//! long form (`{"Ref": ...}`, `{"Fn::Sub": ...}`, ...), so one resolver serves both spellings.

use serde_json::{Map, Value};

use crate::TemplateError;

/// Rewrites YAML into JSON, CloudFormation's short tags into their long form.
pub(crate) fn long_form(value: serde_norway::Value) -> Result<Value, TemplateError> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(long_form).collect::<Result<_, _>>()?)
        }
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(TemplateError::Parse(format!(
                            "mapping key {other:?} is not a string"
                        )));
                    }
                };
                out.insert(key, long_form(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!').to_owned();
            let inner = long_form(tagged.value)?;
            let key = match name.as_str() {
                "Ref" | "Condition" => name,
                _ => format!("Fn::{name}"),
            };
            let mut map = Map::new();
            map.insert(key, inner);
            Value::Object(map)
        }
    })
}
