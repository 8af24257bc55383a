//! Rich Authorization Requests (RFC 9396) on the emulated `/bc-authorize`: which
//! `authorization_details` types the API accepts, what the phone shows, and what the
//! issued token carries back. Auth0 checks only that each entry has a `type` registered
//! on the resource server; the phone shows the entries and the token echoes the ones
//! approved.

use super::model::{OAuthError, err};
use serde_json::Value;

/// How this tenant treats `authorization_details`.
#[derive(Debug, Clone, PartialEq)]
pub enum RarSupport {
    /// The API has these types registered; others are refused.
    Types(Vec<String>),
    /// An older tenant or another OP: the parameter is ignored, tokens carry nothing.
    Ignored,
}

impl Default for RarSupport {
    fn default() -> Self {
        RarSupport::Types(vec![crate::runtime::rar::RAR_TYPE.to_string()])
    }
}

/// Parses and checks the form parameter: a JSON array (string-encoded) of objects, each
/// with a registered `type`. `None` when absent or ignored.
pub fn parse(raw: Option<&str>, support: &RarSupport) -> Result<Option<Vec<Value>>, OAuthError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let RarSupport::Types(types) = support else {
        return Ok(None);
    };
    let entries: Vec<Value> = match serde_json::from_str(raw) {
        Ok(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            return Err(err(
                400,
                "invalid_request",
                "authorization_details must be a non-empty JSON array of objects.",
            ));
        }
    };
    for e in &entries {
        let Some(t) = e.get("type").and_then(Value::as_str) else {
            return Err(err(
                400,
                "invalid_request",
                "authorization_details: every entry needs a type.",
            ));
        };
        if !types.iter().any(|x| x == t) {
            return Err(err(
                400,
                "invalid_request",
                format!(
                    "authorization_details: type {t} is not registered on the resource server."
                ),
            ));
        }
    }
    Ok(Some(entries))
}
