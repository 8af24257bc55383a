//! Salesforce's wire shapes as ours: SOQL literals, error arrays, datetimes, records.

use crate::connectors::ConnectorError;
use crate::core::domain::{Contact, Deal, Millis};
use serde_json::Value;

/// A SOQL string literal's body: quotes and backslashes escaped, and (for LIKE) the
/// wildcards, so a search for `50%_off` matches that text and nothing else.
pub fn soql_escape(s: &str, like: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '%' | '_' if like => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Salesforce's `[{"message","errorCode","fields"}]` (or an OAuth-style object) as ours.
pub fn sf_error(endpoint: &str, status: u16, body: &Value) -> ConnectorError {
    let first = body.get(0).unwrap_or(body);
    let code = first
        .get("errorCode")
        .or_else(|| first.get("error"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = first
        .get("message")
        .or_else(|| first.get("error_description"))
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    let fields: Vec<&str> = first
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let named = if code.is_empty() {
        message.clone()
    } else if fields.is_empty() {
        format!("{code}: {message}")
    } else {
        format!("{code} on {}: {message}", fields.join(", "))
    };
    let endpoint = endpoint.to_string();
    match (status, code.as_str()) {
        // A token without the `api` scope is refused as an invalid session "for use with
        // the REST API": an incremental connect adding `api` is the fix, not a retry.
        (401 | 403, "INVALID_SESSION_ID") if message.contains("REST API") => {
            ConnectorError::NeedsScopes {
                endpoint,
                scopes: vec!["api".into()],
                detail: named,
            }
        }
        (401, _) | (_, "INVALID_SESSION_ID") => ConnectorError::Unauthorized {
            endpoint,
            detail: named,
        },
        (_, "REQUEST_LIMIT_EXCEEDED") | (429, _) => ConnectorError::RateLimited {
            endpoint,
            retry_after: None,
            detail: named,
        },
        (412, _) | (_, "PRECONDITION_FAILED") => ConnectorError::Conflict {
            endpoint,
            detail: named,
        },
        (s, _) if s >= 500 => ConnectorError::Unavailable {
            endpoint,
            status: s,
            detail: named,
        },
        (s, _) => ConnectorError::Rejected {
            endpoint,
            status: s,
            detail: named,
        },
    }
}

pub(super) fn malformed(endpoint: &str, status: u16, what: &str) -> ConnectorError {
    ConnectorError::Malformed {
        endpoint: endpoint.into(),
        status,
        detail: what.into(),
    }
}

/// `2026-12-01T06:00:00.000+0000` (Salesforce's datetime) as ms since the epoch.
pub fn parse_datetime(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.timestamp_millis())
}

pub(super) fn parse_date(s: &str) -> Option<Millis> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// The revision as an HTTP date, for `If-Unmodified-Since` (second precision).
pub(super) fn http_date(revision: &str) -> Option<String> {
    let ms = parse_datetime(revision)?;
    let dt = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

pub(super) fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

pub(super) fn contact_of(rec: &Value) -> Contact {
    Contact {
        id: str_at(rec, "/Id").unwrap_or_default().to_string(),
        name: str_at(rec, "/Name").unwrap_or_default().to_string(),
        email: str_at(rec, "/Email").unwrap_or_default().to_string(),
        account: str_at(rec, "/Account/Name").unwrap_or_default().to_string(),
        title: str_at(rec, "/Title").unwrap_or_default().to_string(),
    }
}

/// What differs between the deal the rep saw and the record now, in words.
pub(super) fn describe_change(id: &str, seen: Option<&Deal>, now: &Deal) -> String {
    let mut parts = Vec::new();
    if let Some(s) = seen {
        if s.stage != now.stage {
            parts.push(format!(
                "stage {} → {}",
                s.stage.as_str(),
                now.stage.as_str()
            ));
        }
        if s.amount_cents != now.amount_cents {
            parts.push(format!(
                "amount {} → {}",
                crate::core::domain::format_money(s.amount_cents),
                crate::core::domain::format_money(now.amount_cents)
            ));
        }
        if s.name != now.name {
            parts.push(format!("name {:?} → {:?}", s.name, now.name));
        }
    }
    let when = now
        .crm
        .as_ref()
        .map(|c| format!(" (modified {})", c.revision))
        .unwrap_or_default();
    if parts.is_empty() {
        format!(
            "Opportunity {id} ({}) was modified in Salesforce{when}",
            now.name
        )
    } else {
        format!(
            "Opportunity {id} ({}) changed in Salesforce: {}{when}",
            now.name,
            parts.join(", ")
        )
    }
}

pub(super) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::StageMap;
    use super::*;
    use crate::core::domain::Stage;
    use serde_json::json;

    #[test]
    fn stages_map_both_ways_and_overrides_come_first() {
        let m = StageMap::standard();
        assert_eq!(
            m.to_dealflow("negotiation/review"),
            Some(Stage::Negotiation)
        );
        assert_eq!(m.to_salesforce(Stage::ClosedWon), "Closed Won");
        assert_eq!(m.to_dealflow("Discovery"), None);
        let o = StageMap::with_overrides(&[("Discovery".into(), Stage::Qualified)]);
        assert_eq!(o.to_dealflow("Discovery"), Some(Stage::Qualified));
        assert_eq!(o.to_salesforce(Stage::Qualified), "Discovery");
        assert_eq!(o.to_dealflow("Qualification"), Some(Stage::Qualified));
    }

    #[test]
    fn soql_literals_cannot_be_broken_out_of() {
        assert_eq!(soql_escape("O'Brien", false), "O\\'Brien");
        assert_eq!(
            soql_escape("a\\' OR Name != '", false),
            "a\\\\\\' OR Name != \\'"
        );
        assert_eq!(soql_escape("50%_off", true), "50\\%\\_off");
        assert_eq!(soql_escape("50%_off", false), "50%_off");
    }

    #[test]
    fn error_arrays_are_named() {
        let e = sf_error(
            "salesforce.update",
            400,
            &json!([{"message": "Amount must be positive", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Amount"]}]),
        );
        assert_eq!(
            e.to_string(),
            "salesforce.update: rejected with 400: FIELD_CUSTOM_VALIDATION_EXCEPTION on Amount: Amount must be positive"
        );
        let e = sf_error(
            "salesforce.query",
            403,
            &json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        );
        assert!(matches!(e, ConnectorError::RateLimited { .. }), "{e:?}");
        assert!(e.to_string().contains("REQUEST_LIMIT_EXCEEDED"), "{e}");
        let e = sf_error(
            "salesforce.query",
            401,
            &json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
        );
        assert!(matches!(e, ConnectorError::Unauthorized { .. }), "{e:?}");
        let e = sf_error(
            "salesforce.query",
            403,
            &json!([{"message": "This session is not valid for use with the REST API", "errorCode": "INVALID_SESSION_ID"}]),
        );
        assert!(
            matches!(&e, ConnectorError::NeedsScopes { scopes, .. } if scopes == &["api"]),
            "{e:?}"
        );
    }

    #[test]
    fn revisions_become_http_dates() {
        assert_eq!(
            http_date("2026-12-01T06:05:09.000+0000").as_deref(),
            Some("Tue, 01 Dec 2026 06:05:09 GMT")
        );
        assert_eq!(parse_date("2026-12-01"), Some(1_796_083_200_000));
    }
}
