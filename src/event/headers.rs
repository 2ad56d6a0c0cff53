//! HTTP headers as API Gateway passes them: [`Headers`] and [`MultiValueHeaders`].

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// HTTP headers as API Gateway sends them (`headers`, or with `V = Vec<String>`,
/// `multiValueHeaders`).
///
/// Names keep the case they arrived in (API Gateway passes the client's, e.g. `Host`,
/// `Sec-WebSocket-Key`), so serializing gives back the same JSON; lookups and equality ignore
/// ASCII case, as HTTP does.
///
/// # One value per name: the last wins
///
/// HTTP header names are case-insensitive, so `Host` and `host` are one header. A `Headers`
/// holds at most one entry per name (ignoring ASCII case): when a name comes again — twice in
/// the JSON, in another case, or through [`insert`](Self::insert) — the later value replaces
/// the earlier one, at the earlier one's position and under the later spelling. This is the
/// rule of JSON objects (`serde_json::Value` keeps the last of duplicate keys) and of API
/// Gateway's own `headers`, which hold one value per name while the developer guide says
/// "API Gateway supports multiple headers and query string parameters that have the same
/// name" through `multiValueHeaders` — read every value there. Because each name is held
/// once, equality, lookups and a serialize → parse round trip all see the same headers.
///
/// "Last" is the order of the input. A `serde_json::Value` (without serde_json's
/// `preserve_order` feature) sorts its keys, so an event read from a `Value` takes the spelling
/// that sorts last: the same headers as the `Value`'s own text gives, not always those of the
/// text the `Value` was made from.
///
/// ```
/// use stateless_ws::event::Headers;
/// let mut headers = Headers::new();
/// headers.insert("X-Forwarded-For", "203.0.113.5".to_owned());
/// assert_eq!(headers.get("x-forwarded-for").map(String::as_str), Some("203.0.113.5"));
/// ```
#[derive(Clone)]
pub struct Headers<V = String> {
    // Well-known names are borrowed from a static list rather than allocated: parsing is
    // allocation-bound, and a `$connect` event carries the same dozen names twice.
    entries: Vec<(Cow<'static, str>, V)>,
}

/// `multiValueHeaders`: every value of each header.
pub type MultiValueHeaders = Headers<Vec<String>>;

impl<V> Headers<V> {
    /// No headers.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// The value of header `name`, compared without regard to ASCII case.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether header `name` is present (ignoring ASCII case).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets header `name` to `value`, replacing (name and value of) any header of that name in
    /// another case. Returns the value replaced.
    pub fn insert(&mut self, name: impl Into<String>, value: V) -> Option<V> {
        let name = Cow::Owned(name.into());
        match self
            .entries
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(&name))
        {
            Some(slot) => {
                slot.0 = name;
                Some(std::mem::replace(&mut slot.1, value))
            }
            None => {
                self.entries.push((name, value));
                None
            }
        }
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The headers in the order they arrived, names in their original case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

/// Header names API Gateway sends on most events, spelled as it sends them.
const KNOWN_HEADER_NAMES: [&str; 24] = [
    "Host",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Version",
    "User-Agent",
    "X-Amzn-Trace-Id",
    "X-Forwarded-For",
    "X-Forwarded-Port",
    "X-Forwarded-Proto",
    "Origin",
    "Cookie",
    "Authorization",
    "Accept-Encoding",
    "Accept-Language",
    "Cache-Control",
    "Pragma",
    "Upgrade",
    "Connection",
    "content-length",
    "x-api-key",
    "x-restapi",
    "Sec-WebSocket-Accept",
    "Content-Type",
];

/// A header name read from JSON: borrowed from [`KNOWN_HEADER_NAMES`] when it is one of them.
struct HeaderName(Cow<'static, str>);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = HeaderName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<HeaderName, E> {
                Ok(HeaderName(
                    match KNOWN_HEADER_NAMES.iter().find(|k| **k == s) {
                        Some(known) => Cow::Borrowed(*known),
                        None => Cow::Owned(s.to_owned()),
                    },
                ))
            }
        }

        d.deserialize_str(NameVisitor)
    }
}

impl<V> Default for Headers<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: PartialEq> PartialEq for Headers<V> {
    /// Equal when every name of each side has the same value on the other, names compared
    /// without regard to ASCII case and order ignored.
    fn eq(&self, other: &Self) -> bool {
        let covers = |a: &Self, b: &Self| a.entries.iter().all(|(k, v)| b.get(k) == Some(v));
        covers(self, other) && covers(other, self)
    }
}

impl<V: fmt::Debug> fmt::Debug for Headers<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V> FromIterator<(K, V)> for Headers<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Self::new();
        for (k, v) in iter {
            headers.insert(k, v);
        }
        headers
    }
}

impl<V: Serialize> Serialize for Headers<V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Headers<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct HeadersVisitor<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for HeadersVisitor<V> {
            type Value = Headers<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                // Same rule as `insert`: one entry per name, the last value wins (see the
                // type's docs). A map from the lowercased name to its slot keeps it linear
                // for a hostile event with thousands of headers; it is built only past a
                // handful, where a scan of the few entries is cheaper.
                const SCAN_UP_TO: usize = 16;
                let mut entries: Vec<(Cow<'static, str>, V)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
                let mut slots: Option<std::collections::HashMap<String, usize>> = None;
                while let Some((HeaderName(name), value)) = map.next_entry::<HeaderName, V>()? {
                    let slot = match &mut slots {
                        Some(slots) => {
                            let next = entries.len();
                            let slot = *slots.entry(name.to_ascii_lowercase()).or_insert(next);
                            (slot < next).then_some(slot)
                        }
                        None => entries
                            .iter()
                            .position(|(k, _)| k.eq_ignore_ascii_case(&name)),
                    };
                    match slot.and_then(|i| entries.get_mut(i)) {
                        Some(entry) => *entry = (name, value),
                        None => entries.push((name, value)),
                    }
                    if slots.is_none() && entries.len() > SCAN_UP_TO {
                        slots = Some(
                            entries
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.to_ascii_lowercase(), i))
                                .collect(),
                        );
                    }
                }
                Ok(Headers { entries })
            }
        }

        d.deserialize_map(HeadersVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_ignore_case_but_keep_it() {
        let mut h: Headers = [("Sec-WebSocket-Key", "k1".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(h.get("sec-websocket-key").map(String::as_str), Some("k1"));
        assert_eq!(h.get("SEC-WEBSOCKET-KEY").map(String::as_str), Some("k1"));
        assert!(h.get("Sec-WebSocket-Version").is_none());
        assert_eq!(
            h.insert("SEC-websocket-KEY", "k2".to_owned()).as_deref(),
            Some("k1")
        );
        assert_eq!(h.len(), 1);
        assert_eq!(
            h.iter().next(),
            Some(("SEC-websocket-KEY", &"k2".to_owned()))
        );

        let lower: Headers = [("sec-websocket-key", "k2".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(h, lower);
        let other: Headers = [("sec-websocket-key", "k3".to_owned())]
            .into_iter()
            .collect();
        assert_ne!(h, other);
        assert_ne!(h, Headers::new());

        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"SEC-websocket-KEY":"k2"}"#);
    }

    #[test]
    fn duplicate_header_names_last_wins() {
        let h: Headers = serde_json::from_str(r#"{"Host":"a","X":"x","host":"b"}"#).unwrap();
        assert_eq!(h.get("HOST").map(String::as_str), Some("b"));
        assert_eq!(h.len(), 2);
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"host":"b","X":"x"}"#
        );
    }

    #[test]
    fn many_duplicate_header_names_last_wins() {
        // Past the scan threshold, where slots are found through the map.
        let mut json = String::from("{");
        for round in 0..3 {
            for i in 0..40 {
                let name = if round == 1 {
                    format!("H{i}")
                } else {
                    format!("h{i}")
                };
                json.push_str(&format!("\"{name}\":\"{round}\","));
            }
        }
        json.push_str("\"Z\":\"z\"}");
        let h: Headers = serde_json::from_str(&json).unwrap();
        assert_eq!(h.len(), 41);
        assert_eq!(h.get("H7").map(String::as_str), Some("2"));
        assert_eq!(h.iter().next(), Some(("h0", &"2".to_owned())));
    }
}
