//! HMAC-SHA256 keys, shared by the fan-out jobs' [`JobKey`](crate::queue::JobKey) and the room
//! grants' [`GrantKey`](crate::policy::GrantKey): one place that checks the key's length and
//! compares tags in constant time.

use std::sync::Arc;

use crate::error::{Error, Result};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// An HMAC-SHA256 key, initialised once and cloned per use.
#[derive(Clone)]
pub(crate) struct MacKey(Arc<HmacSha256>);

impl MacKey {
    /// The fewest bytes a key may have: 32, HMAC-SHA256's output size.
    pub(crate) const MIN_LEN: usize = 32;

    /// A key of `bytes`; `what` names it in the error ("a fan-out job key").
    pub(crate) fn new(bytes: &[u8], what: &str) -> Result<Self> {
        if bytes.len() < Self::MIN_LEN {
            return Err(Error::config(format!(
                "{what} needs at least {} bytes, got {}",
                Self::MIN_LEN,
                bytes.len()
            )));
        }
        let mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(bytes)
            .map_err(|_| Error::config(format!("HMAC-SHA256 refused {what}")))?;
        Ok(Self(Arc::new(mac)))
    }

    /// The tag of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac = (*self.0).clone();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is the tag of `message`, compared in constant time.
    pub(crate) fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        let mut mac = (*self.0).clone();
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}
