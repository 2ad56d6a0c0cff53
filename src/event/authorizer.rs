//! `requestContext.authorizer`: [`Authorizer`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `requestContext.authorizer`: what a Lambda REQUEST authorizer returned for this connection.
///
/// API Gateway flattens it into one object: `principalId`, `integrationLatency` and every key of
/// the authorizer's `context`, whose values may be strings, numbers or booleans. The authorizer
/// runs on `$connect` only; API Gateway repeats its result on the connection's later events.
///
/// ```
/// use stateless_ws::Authorizer;
/// let authorizer = Authorizer::new()
///     .with_principal_id("user-42")
///     .with("maxRooms", 5)
///     .with("isAdmin", false);
/// assert_eq!(authorizer.principal_id(), Some("user-42"));
/// assert_eq!(authorizer.get_str("maxRooms").as_deref(), Some("5"));
/// assert_eq!(authorizer.get_str("isAdmin").as_deref(), Some("false"));
/// assert_eq!(authorizer.get("missing"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Authorizer(Map<String, Value>);

impl Authorizer {
    /// An empty authorizer result.
    pub fn new() -> Self {
        Self::default()
    }

    /// `principalId`: the user the authorizer identified, when it is a string.
    pub fn principal_id(&self) -> Option<&str> {
        self.0.get("principalId").and_then(Value::as_str)
    }

    /// The value of `key` as API Gateway sent it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value of `key` as text: a string as is, a number or boolean rendered (`5`, `true`).
    /// `None` when the key is absent or its value is `null`, an array or an object.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.0.get(key)? {
            Value::String(s) => Some(Cow::Borrowed(s)),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// Every key and value, `principalId` and `integrationLatency` included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value`, returning the value replaced.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// Sets `key` to `value` (builder style).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `principalId` (builder style).
    #[must_use]
    pub fn with_principal_id(self, principal_id: impl Into<String>) -> Self {
        self.with("principalId", principal_id.into())
    }

    /// The keys and values as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Consumes the authorizer, returning its keys and values.
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

impl From<Map<String, Value>> for Authorizer {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

/// Reads `requestContext.authorizer`: an object, or `null` or `""` for none. API Gateway sent
/// `"authorizer": ""` on routes without an authorizer in 2019; accepting it costs nothing.
pub(super) fn deserialize_authorizer<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Authorizer>, D::Error> {
    struct AuthorizerVisitor;

    impl<'de> Visitor<'de> for AuthorizerVisitor {
        type Value = Option<Authorizer>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(
            self,
            d: D2,
        ) -> std::result::Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
            if s.is_empty() {
                Ok(None)
            } else {
                Err(E::invalid_type(Unexpected::Str(s), &self))
            }
        }

        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            // Sized up front: an authorizer's result usually has a handful of keys, and growing
            // the map one step at a time costs more allocations than the keys themselves.
            let mut fields = Map::with_capacity(map.size_hint().unwrap_or(8));
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                fields.insert(key, value);
            }
            Ok(Some(Authorizer(fields)))
        }
    }

    d.deserialize_any(AuthorizerVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::event::ConnectEvent;

    #[test]
    fn authorizer_accepts_object_null_and_empty_string() {
        let read = |authorizer: &str| {
            let json = format!(
                r#"{{"requestContext":{{"eventType":"CONNECT","connectionId":"c=","authorizer":{authorizer}}}}}"#
            );
            json.parse::<ConnectEvent>().map(|e| e.context.authorizer)
        };
        assert_eq!(read("null").unwrap(), None);
        assert_eq!(read(r#""""#).unwrap(), None);
        let a = read(r#"{"principalId":"u1","n":1.5,"b":true,"s":"x","o":{"k":1},"z":null}"#)
            .unwrap()
            .unwrap();
        assert_eq!(a.principal_id(), Some("u1"));
        assert_eq!(a.get_str("n").as_deref(), Some("1.5"));
        assert_eq!(a.get_str("b").as_deref(), Some("true"));
        assert!(matches!(a.get_str("s"), Some(Cow::Borrowed("x"))));
        assert_eq!(a.get_str("o"), None);
        assert_eq!(a.get_str("z"), None);
        assert_eq!(a.get("o"), Some(&serde_json::json!({"k": 1})));
        assert_eq!(a.iter().count(), 6);
        let err = read(r#""allow""#).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent { field, .. } if field == "requestContext.authorizer"),
            "{err}"
        );
    }
}
