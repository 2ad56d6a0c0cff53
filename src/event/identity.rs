//! `requestContext.identity`: [`Identity`].

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `requestContext.identity`: who is on the other end of the connection.
///
/// API Gateway always fills `sourceIp`; `userAgent` comes with `$connect` events. Other keys it
/// may send (`apiKey`, `apiKeyId`, the Cognito and IAM keys of REST APIs, usually `null`) are kept
/// in [`extra`](Identity::extra); keys whose value is `null` are dropped, as if absent.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Identity {
    /// `sourceIp`: the client's IP address as API Gateway saw it.
    pub source_ip: Option<String>,
    /// `userAgent`: the client's `User-Agent`, when API Gateway passes it.
    pub user_agent: Option<String>,
    /// Every other non-null key of `identity`. Never holds `sourceIp` or `userAgent`.
    pub extra: Map<String, Value>,
}

impl Identity {
    /// An identity with nothing known.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(ip) = &self.source_ip {
            map.serialize_entry("sourceIp", ip)?;
        }
        if let Some(agent) = &self.user_agent {
            map.serialize_entry("userAgent", agent)?;
        }
        for (k, v) in &self.extra {
            if k != "sourceIp" && k != "userAgent" && !v.is_null() {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct IdentityVisitor;

        impl<'de> Visitor<'de> for IdentityVisitor {
            type Value = Identity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Identity, A::Error> {
                let mut identity = Identity::default();
                let (mut source_ip_seen, mut user_agent_seen) = (false, false);
                while let Some(key) = map.next_key::<IdentityKey>()? {
                    match key {
                        // Named fields given twice are refused, as the derived structs of
                        // the rest of the event refuse theirs (see `crate::event`).
                        IdentityKey::SourceIp if source_ip_seen => {
                            return Err(de::Error::duplicate_field("sourceIp"));
                        }
                        IdentityKey::UserAgent if user_agent_seen => {
                            return Err(de::Error::duplicate_field("userAgent"));
                        }
                        IdentityKey::SourceIp => {
                            source_ip_seen = true;
                            identity.source_ip = map.next_value()?;
                        }
                        IdentityKey::UserAgent => {
                            user_agent_seen = true;
                            identity.user_agent = map.next_value()?;
                        }
                        IdentityKey::Other(key) => {
                            let value: Value = map.next_value()?;
                            if !value.is_null() {
                                identity.extra.insert(key, value);
                            }
                        }
                    }
                }
                Ok(identity)
            }
        }

        d.deserialize_map(IdentityVisitor)
    }
}

/// A key of `identity`, allocated only when it goes to [`Identity::extra`].
enum IdentityKey {
    SourceIp,
    UserAgent,
    Other(String),
}

impl<'de> Deserialize<'de> for IdentityKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = IdentityKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity key")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<IdentityKey, E> {
                Ok(match s {
                    "sourceIp" => IdentityKey::SourceIp,
                    "userAgent" => IdentityKey::UserAgent,
                    other => IdentityKey::Other(other.to_owned()),
                })
            }
        }

        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_drops_nulls_and_keeps_other_keys() {
        let id: Identity = serde_json::from_str(
            r#"{"cognitoIdentityPoolId":null,"accountId":null,"sourceIp":"203.0.113.0",
                "userAgent":null,"apiKeyId":"k1","accessKey":null}"#,
        )
        .unwrap();
        assert_eq!(id.source_ip.as_deref(), Some("203.0.113.0"));
        assert_eq!(id.user_agent, None);
        assert_eq!(id.extra.len(), 1);
        assert_eq!(id.extra["apiKeyId"], "k1");
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sourceIp": "203.0.113.0", "apiKeyId": "k1"})
        );
        assert_eq!(serde_json::to_string(&Identity::new()).unwrap(), "{}");
    }
}
