//! [`Payload`]: a message body checked once, before any send.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};

/// A message to push to clients: UTF-8 text (usually JSON) of at most
/// [`Payload::MAX_SIZE`] bytes, checked when it is made so that a broadcast never starts with a
/// body API Gateway would refuse 10,000 times.
///
/// Cheap to clone (the bytes are shared).
///
/// ```
/// use stateless_ws::broadcast::Payload;
/// let a = Payload::text("hello")?;
/// let b = Payload::json(&serde_json::json!({"type": "message", "message": "hi"}))?;
/// assert_eq!(b.as_str(), r#"{"type":"message","message":"hi"}"#);
/// assert!(Payload::text("x".repeat(Payload::MAX_SIZE + 1)).is_err());
/// assert!(Payload::bytes(vec![0xff, 0xfe]).is_err()); // not UTF-8
/// # Ok::<(), stateless_ws::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

impl Payload {
    /// API Gateway's limit on a WebSocket message and on `PostToConnection`'s `Data`:
    /// 128 KB (131,072 bytes).
    pub const MAX_SIZE: usize = 131_072;

    /// A text payload.
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`] above [`Self::MAX_SIZE`] bytes.
    pub fn text(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        check_size(text.len())?;
        Ok(Self(text.into()))
    }

    /// A payload from bytes, which must be UTF-8 (API Gateway delivers text frames).
    ///
    /// # Errors
    ///
    /// [`Error::PayloadTooLarge`] above [`Self::MAX_SIZE`] bytes; [`Error::InvalidPayload`] when
    /// the bytes are not UTF-8.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        check_size(bytes.len())?;
        let text = String::from_utf8(bytes).map_err(|e| Error::InvalidPayload {
            reason: format!(
                "not UTF-8 (invalid byte at offset {}); API Gateway WebSocket messages are text",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Ok(Self(text.into()))
    }

    /// `value` serialized as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPayload`] when serialization fails (e.g. a map with non-string keys);
    /// [`Error::PayloadTooLarge`] above [`Self::MAX_SIZE`] bytes.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let text = serde_json::to_string(value).map_err(|e| Error::InvalidPayload {
            reason: format!("cannot be serialized as JSON: {e}"),
        })?;
        Self::text(text)
    }

    /// The payload as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn check_size(size: usize) -> Result<()> {
    if size > Payload::MAX_SIZE {
        return Err(Error::PayloadTooLarge {
            size,
            limit: Payload::MAX_SIZE,
        });
    }
    Ok(())
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        let cut = (0..=SHOWN.min(self.0.len()))
            .rev()
            .find(|i| self.0.is_char_boundary(*i))
            .unwrap_or(0);
        write!(f, "Payload({} bytes: {:?}", self.0.len(), &self.0[..cut])?;
        if cut < self.0.len() {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

impl TryFrom<&str> for Payload {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::text(s)
    }
}

impl TryFrom<String> for Payload {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::text(s)
    }
}

impl TryFrom<Vec<u8>> for Payload {
    type Error = Error;
    fn try_from(b: Vec<u8>) -> Result<Self> {
        Self::bytes(b)
    }
}

impl TryFrom<&[u8]> for Payload {
    type Error = Error;
    fn try_from(b: &[u8]) -> Result<Self> {
        Self::bytes(b)
    }
}

impl TryFrom<&serde_json::Value> for Payload {
    type Error = Error;
    fn try_from(v: &serde_json::Value) -> Result<Self> {
        Self::json(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_exactly_128_kib() {
        assert!(Payload::text("x".repeat(131_072)).is_ok());
        match Payload::text("x".repeat(131_073)) {
            Err(Error::PayloadTooLarge { size, limit }) => {
                assert_eq!((size, limit), (131_073, 131_072));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Payload::bytes(vec![b'a'; 131_073]),
            Err(Error::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn bytes_must_be_utf8_and_json_must_serialize() {
        let err = Payload::bytes(vec![b'o', b'k', 0xff])
            .unwrap_err()
            .to_string();
        assert!(err.contains("offset 2"), "{err}");
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 1);
        assert!(matches!(
            Payload::json(&bad),
            Err(Error::InvalidPayload { .. })
        ));
        assert_eq!(Payload::try_from("hé").unwrap().len(), 3);
    }

    #[test]
    fn debug_truncates_on_a_char_boundary() {
        let p = Payload::text("é".repeat(100)).unwrap();
        let shown = format!("{p:?}");
        assert!(
            shown.starts_with("Payload(200 bytes: \"") && shown.ends_with("…)"),
            "{shown}"
        );
    }
}
