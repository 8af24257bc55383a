//! Salesforce as the rep's CRM: Opportunities are deals, Contacts are contacts, over the
//! REST API with a Token Vault–issued token of the `salesforce` connection.
//!
//! Token Vault hands out a bare access token: the instance it belongs to
//! (`https://<org>.my.salesforce.com`) is learnt once per connection from the identity
//! service's UserInfo endpoint (`urls.rest`), or taken from `crm.salesforce.instance_url`
//! when set. Creates are upserts on an external-id field carrying the action id, so a
//! retry or a crash between the call and the audit finds the record instead of making a
//! second one; updates carry the revision (`LastModifiedDate`) the rep approved against,
//! checked before the write and sent as `If-Unmodified-Since`, so a change made in
//! Salesforce meanwhile is reported, not overwritten.

use super::ConnectorError;
use super::http::{Request, RetryPolicy, send, send_with};
use crate::core::domain::{Cents, Contact, CrmRecord, Deal, Millis, Stage};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Mutex;

/// The API version every path names (`/services/data/v62.0/…`).
pub const API_VERSION: &str = "62.0";
/// The Opportunity field dealflow keys its creates by (an External ID text field the
/// tenant admin adds; see the README).
pub const EXTERNAL_ID_FIELD: &str = "Dealflow_Action_Id__c";

const OPPORTUNITY_FIELDS: &str = "Id, Name, Amount, StageName, CloseDate, Account.Name, \
     Owner.Name, LastActivityDate, LastModifiedDate, Description";

/// Salesforce stage names and the dealflow stage each means.
#[derive(Debug, Clone, PartialEq)]
pub struct StageMap {
    pairs: Vec<(String, Stage)>,
}

impl StageMap {
    /// The standard sales process's picklist.
    pub fn standard() -> StageMap {
        let p = |sf: &str, s| (sf.to_string(), s);
        StageMap {
            pairs: vec![
                p("Prospecting", Stage::Prospecting),
                p("Qualification", Stage::Qualified),
                p("Needs Analysis", Stage::Qualified),
                p("Value Proposition", Stage::Qualified),
                p("Id. Decision Makers", Stage::Proposal),
                p("Perception Analysis", Stage::Proposal),
                p("Proposal/Price Quote", Stage::Proposal),
                p("Negotiation/Review", Stage::Negotiation),
                p("Closed Won", Stage::ClosedWon),
                p("Closed Lost", Stage::ClosedLost),
            ],
        }
    }

    /// The standard map with `overrides` (Salesforce name → dealflow stage) put first,
    /// so an override also decides which name a dealflow stage is written as.
    pub fn with_overrides(overrides: &[(String, Stage)]) -> StageMap {
        let mut pairs: Vec<(String, Stage)> = overrides.to_vec();
        for (sf, s) in StageMap::standard().pairs {
            if !pairs.iter().any(|(o, _)| o.eq_ignore_ascii_case(&sf)) {
                pairs.push((sf, s));
            }
        }
        StageMap { pairs }
    }

    pub fn to_dealflow(&self, sf: &str) -> Option<Stage> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(sf.trim()))
            .map(|(_, s)| *s)
    }

    /// The first Salesforce name that means `stage`.
    pub fn to_salesforce(&self, stage: Stage) -> &str {
        self.pairs
            .iter()
            .find(|(_, s)| *s == stage)
            .map(|(n, _)| n.as_str())
            .unwrap_or(match stage {
                Stage::Prospecting => "Prospecting",
                Stage::Qualified => "Qualification",
                Stage::Proposal => "Proposal/Price Quote",
                Stage::Negotiation => "Negotiation/Review",
                Stage::ClosedWon => "Closed Won",
                Stage::ClosedLost => "Closed Lost",
            })
    }

    /// Every Salesforce name that means `stage`.
    pub fn names_of(&self, stage: Stage) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(_, s)| *s == stage)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where the identity service lives: `https://login.salesforce.com`
    /// (`https://test.salesforce.com` for a sandbox org).
    pub login_url: String,
    /// The instance to use instead of asking the identity service.
    pub instance_url: Option<String>,
    pub external_id_field: String,
    pub stages: StageMap,
}

impl Settings {
    pub fn new(login_url: &str) -> Settings {
        Settings {
            login_url: login_url.trim_end_matches('/').to_string(),
            instance_url: None,
            external_id_field: EXTERNAL_ID_FIELD.into(),
            stages: StageMap::standard(),
        }
    }
}

/// One rep's Salesforce: settings and the instance learnt for their connection.
#[derive(Debug)]
pub struct Salesforce {
    pub settings: Settings,
    instance: Mutex<Option<String>>,
}

/// What a deal write asks of the Opportunity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Changes {
    pub stage: Option<Stage>,
    pub amount_cents: Option<Cents>,
    pub notes: Option<String>,
}

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

fn malformed(endpoint: &str, status: u16, what: &str) -> ConnectorError {
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

fn parse_date(s: &str) -> Option<Millis> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// The revision as an HTTP date, for `If-Unmodified-Since` (second precision).
fn http_date(revision: &str) -> Option<String> {
    let ms = parse_datetime(revision)?;
    let dt = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

impl Salesforce {
    pub fn new(settings: Settings) -> Salesforce {
        let instance = settings.instance_url.clone();
        Salesforce {
            settings,
            instance: Mutex::new(instance),
        }
    }

    fn cached_instance(&self) -> Option<String> {
        self.instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the instance learnt from the identity service (a new token may belong to
    /// another org). A configured instance stays.
    pub fn forget_instance(&self) {
        *self.instance.lock().unwrap_or_else(|p| p.into_inner()) =
            self.settings.instance_url.clone();
    }

    /// The org's instance URL, asked of the identity service once per connection.
    pub async fn instance(
        &self,
        c: &reqwest::Client,
        token: &str,
        r: &RetryPolicy,
    ) -> Result<String, ConnectorError> {
        if let Some(i) = self.cached_instance() {
            return Ok(i);
        }
        let endpoint = "salesforce.userinfo";
        let req = Request {
            client: c,
            method: Method::GET,
            url: format!("{}/services/oauth2/userinfo", self.settings.login_url),
            endpoint,
            token,
            body: None,
            query: vec![],
        };
        let a = send(&req, r).await?;
        if !a.status.is_success() {
            return Err(sf_error(endpoint, a.status.as_u16(), &a.body));
        }
        // `urls.rest` is `https://<org>.my.salesforce.com/services/data/v{version}/`.
        let rest = str_at(&a.body, "/urls/rest")
            .or_else(|| str_at(&a.body, "/urls/custom_domain"))
            .ok_or_else(|| malformed(endpoint, a.status.as_u16(), "no urls.rest"))?;
        let base = match rest.find("/services/") {
            Some(i) => &rest[..i],
            None => rest.trim_end_matches('/'),
        };
        let parsed = url::Url::parse(base)
            .map_err(|e| malformed(endpoint, a.status.as_u16(), &format!("urls.rest: {e}")))?;
        // A token must never be sent to anything but an https instance (loopback aside,
        // where the sandbox's emulator lives).
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !loopback {
            return Err(malformed(
                endpoint,
                a.status.as_u16(),
                &format!("instance {base:?} is not https"),
            ));
        }
        let base = base.to_string();
        *self.instance.lock().unwrap_or_else(|p| p.into_inner()) = Some(base.clone());
        Ok(base)
    }

    fn data(&self, instance: &str) -> String {
        format!("{instance}/services/data/v{API_VERSION}")
    }

    /// Runs a SOQL query, following `nextRecordsUrl` to the end (at most `max` records).
    pub async fn query(
        &self,
        c: &reqwest::Client,
        token: &str,
        soql: &str,
        max: usize,
        r: &RetryPolicy,
    ) -> Result<Vec<Value>, ConnectorError> {
        let endpoint = "salesforce.query";
        let instance = self.instance(c, token, r).await?;
        let mut url = format!("{}/query", self.data(&instance));
        let mut query = vec![("q".to_string(), soql.to_string())];
        let mut out = Vec::new();
        loop {
            let req = Request {
                client: c,
                method: Method::GET,
                url: url.clone(),
                endpoint,
                token,
                body: None,
                query: std::mem::take(&mut query),
            };
            let a = send(&req, r).await?;
            if !a.status.is_success() {
                return Err(sf_error(endpoint, a.status.as_u16(), &a.body));
            }
            let records = a
                .body
                .get("records")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed(endpoint, a.status.as_u16(), "no records"))?;
            out.extend(records.iter().cloned());
            let next = str_at(&a.body, "/nextRecordsUrl");
            match next {
                Some(n) if out.len() < max && a.body.get("done") != Some(&Value::Bool(true)) => {
                    // The locator is a path on the same instance, never another host.
                    if !n.starts_with("/services/data/") {
                        return Err(malformed(endpoint, 200, "nextRecordsUrl off the instance"));
                    }
                    url = format!("{instance}{n}");
                }
                _ => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// An Opportunity record as a deal.
    pub fn deal_of(&self, rec: &Value) -> Result<Deal, ConnectorError> {
        let bad = |what: &str| malformed("salesforce.query", 200, what);
        let id = str_at(rec, "/Id").ok_or_else(|| bad("an Opportunity without Id"))?;
        let stage_name = str_at(rec, "/StageName").unwrap_or_default();
        let stage = self.settings.stages.to_dealflow(stage_name).ok_or_else(|| {
            ConnectorError::Crm(format!(
                "Opportunity {id} is in stage {stage_name:?}, which crm.salesforce.stages does not map to a dealflow stage"
            ))
        })?;
        let revision = str_at(rec, "/LastModifiedDate")
            .ok_or_else(|| bad("an Opportunity without LastModifiedDate"))?;
        let amount = rec.get("Amount").and_then(Value::as_f64).unwrap_or(0.0);
        let last_touch = str_at(rec, "/LastActivityDate")
            .and_then(parse_date)
            .or_else(|| parse_datetime(revision))
            .unwrap_or_default();
        Ok(Deal {
            id: id.to_string(),
            name: str_at(rec, "/Name").unwrap_or_default().to_string(),
            account: str_at(rec, "/Account/Name").unwrap_or_default().to_string(),
            amount_cents: (amount * 100.0).round() as Cents,
            stage,
            owner: str_at(rec, "/Owner/Name").unwrap_or_default().to_string(),
            last_touch,
            notes: str_at(rec, "/Description").unwrap_or_default().to_string(),
            crm: Some(CrmRecord {
                revision: revision.to_string(),
                close_date: str_at(rec, "/CloseDate").map(str::to_string),
            }),
        })
    }

    /// Open Opportunities (or those in `stage`), largest first.
    pub async fn list_deals(
        &self,
        c: &reqwest::Client,
        token: &str,
        stage: Option<Stage>,
        r: &RetryPolicy,
    ) -> Result<Vec<Deal>, ConnectorError> {
        let filter = match stage {
            None => "IsClosed = false".to_string(),
            Some(s) => format!(
                "StageName IN ({})",
                self.settings
                    .stages
                    .names_of(s)
                    .iter()
                    .map(|n| format!("'{}'", soql_escape(n, false)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let soql = format!(
            "SELECT {OPPORTUNITY_FIELDS} FROM Opportunity WHERE {filter} ORDER BY Amount DESC"
        );
        self.query(c, token, &soql, 10_000, r)
            .await?
            .iter()
            .map(|rec| self.deal_of(rec))
            .collect()
    }

    /// One Opportunity as it is now (`None`: no such record, or not visible to the rep).
    pub async fn get_deal(
        &self,
        c: &reqwest::Client,
        token: &str,
        id: &str,
        r: &RetryPolicy,
    ) -> Result<Option<Deal>, ConnectorError> {
        let soql = format!(
            "SELECT {OPPORTUNITY_FIELDS} FROM Opportunity WHERE Id = '{}'",
            soql_escape(id, false)
        );
        match self.query(c, token, &soql, 1, r).await?.first() {
            Some(rec) => self.deal_of(rec).map(Some),
            None => Ok(None),
        }
    }

    /// Every Contact the rep can see (up to `max`), for the mirror.
    pub async fn list_contacts(
        &self,
        c: &reqwest::Client,
        token: &str,
        max: usize,
        r: &RetryPolicy,
    ) -> Result<Vec<Contact>, ConnectorError> {
        let soql = "SELECT Id, Name, Email, Title, Account.Name FROM Contact ORDER BY Name";
        Ok(self
            .query(c, token, soql, max, r)
            .await?
            .iter()
            .map(contact_of)
            .collect())
    }

    pub async fn search_contacts(
        &self,
        c: &reqwest::Client,
        token: &str,
        q: &str,
        r: &RetryPolicy,
    ) -> Result<Vec<Contact>, ConnectorError> {
        let like = soql_escape(q, true);
        let soql = format!(
            "SELECT Id, Name, Email, Title, Account.Name FROM Contact WHERE Name LIKE '%{like}%' OR Email LIKE '%{like}%' OR Account.Name LIKE '%{like}%' ORDER BY Name LIMIT 50"
        );
        Ok(self
            .query(c, token, &soql, 50, r)
            .await?
            .iter()
            .map(contact_of)
            .collect())
    }

    /// The Opportunity a create with `action_id` made, if any (by the external id).
    pub async fn find_created(
        &self,
        c: &reqwest::Client,
        token: &str,
        action_id: &str,
        r: &RetryPolicy,
    ) -> Result<Option<String>, ConnectorError> {
        let endpoint = "salesforce.get";
        let instance = self.instance(c, token, r).await?;
        let req = Request {
            client: c,
            method: Method::GET,
            url: format!(
                "{}/sobjects/Opportunity/{}/{}",
                self.data(&instance),
                self.settings.external_id_field,
                urlencode(action_id)
            ),
            endpoint,
            token,
            body: None,
            query: vec![],
        };
        let a = send(&req, r).await?;
        match a.status.as_u16() {
            200 => Ok(str_at(&a.body, "/Id").map(str::to_string)),
            404 => Ok(None),
            s => Err(sf_error(endpoint, s, &a.body)),
        }
    }

    /// Creates the Opportunity for `action_id`, or finds the one an earlier try made: an
    /// upsert on the external-id field. Links an Account of that name when one exists.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_deal(
        &self,
        c: &reqwest::Client,
        token: &str,
        action_id: &str,
        name: &str,
        account: &str,
        amount_cents: Cents,
        stage: Stage,
        today: Millis,
        r: &RetryPolicy,
    ) -> Result<Deal, ConnectorError> {
        let endpoint = "salesforce.upsert";
        let account_id = if account.trim().is_empty() {
            None
        } else {
            let soql = format!(
                "SELECT Id FROM Account WHERE Name = '{}' LIMIT 1",
                soql_escape(account, false)
            );
            self.query(c, token, &soql, 1, r)
                .await?
                .first()
                .and_then(|a| str_at(a, "/Id").map(str::to_string))
        };
        // Salesforce requires a close date: a month out, the rep moves it.
        let close = chrono::DateTime::from_timestamp_millis(today + 30 * 86_400_000)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let mut body = json!({
            "Name": name,
            "Amount": amount_cents as f64 / 100.0,
            "StageName": self.settings.stages.to_salesforce(stage),
            "CloseDate": close,
        });
        if let Some(id) = account_id {
            body["AccountId"] = json!(id);
        }
        let instance = self.instance(c, token, r).await?;
        let req = Request {
            client: c,
            method: Method::PATCH,
            url: format!(
                "{}/sobjects/Opportunity/{}/{}",
                self.data(&instance),
                self.settings.external_id_field,
                urlencode(action_id)
            ),
            endpoint,
            token,
            body: Some(body),
            query: vec![],
        };
        let a = send(&req, r).await?;
        if !a.status.is_success() {
            return Err(sf_error(endpoint, a.status.as_u16(), &a.body));
        }
        let id = str_at(&a.body, "/id")
            .ok_or_else(|| malformed(endpoint, a.status.as_u16(), "no id"))?
            .to_string();
        self.get_deal(c, token, &id, r)
            .await?
            .ok_or_else(|| malformed(endpoint, 200, "the created Opportunity cannot be read"))
    }

    /// Applies `changes` to Opportunity `id`, only if it is still at `revision` (when
    /// given): a record changed since is a [`ConnectorError::Conflict`] naming what
    /// changed, and nothing is written. Returns the record as it is afterwards.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_deal(
        &self,
        c: &reqwest::Client,
        token: &str,
        id: &str,
        revision: Option<&str>,
        seen: Option<&Deal>,
        changes: &Changes,
        r: &RetryPolicy,
    ) -> Result<Deal, ConnectorError> {
        let endpoint = "salesforce.update";
        let now =
            self.get_deal(c, token, id, r)
                .await?
                .ok_or_else(|| ConnectorError::Rejected {
                    endpoint: endpoint.into(),
                    status: 404,
                    detail: format!(
                        "NOT_FOUND: no Opportunity {id} (deleted, or not visible to you)"
                    ),
                })?;
        let current = now.crm.as_ref().map(|c| c.revision.as_str());
        if let Some(rev) = revision
            && current != Some(rev)
        {
            return Err(ConnectorError::Conflict {
                endpoint: endpoint.into(),
                detail: describe_change(id, seen, &now),
            });
        }
        let mut body = serde_json::Map::new();
        if let Some(s) = changes.stage {
            body.insert(
                "StageName".into(),
                json!(self.settings.stages.to_salesforce(s)),
            );
        }
        if let Some(a) = changes.amount_cents {
            body.insert("Amount".into(), json!(a as f64 / 100.0));
        }
        if let Some(n) = &changes.notes {
            body.insert("Description".into(), json!(n));
        }
        let instance = self.instance(c, token, r).await?;
        let req = Request {
            client: c,
            method: Method::PATCH,
            url: format!(
                "{}/sobjects/Opportunity/{}",
                self.data(&instance),
                urlencode(id)
            ),
            endpoint,
            token,
            body: Some(Value::Object(body)),
            query: vec![],
        };
        let headers: Vec<(&str, String)> = revision
            .and_then(http_date)
            .map(|d| vec![("If-Unmodified-Since", d)])
            .unwrap_or_default();
        let a = send_with(&req, r, &headers).await?;
        if a.status.as_u16() == 412 {
            // Changed between our read and the write.
            let after = self.get_deal(c, token, id, r).await.ok().flatten();
            return Err(ConnectorError::Conflict {
                endpoint: endpoint.into(),
                detail: match after {
                    Some(d) => describe_change(id, seen, &d),
                    None => format!("Opportunity {id} was modified"),
                },
            });
        }
        if !a.status.is_success() {
            return Err(sf_error(endpoint, a.status.as_u16(), &a.body));
        }
        self.get_deal(c, token, id, r)
            .await?
            .ok_or_else(|| malformed(endpoint, 200, "the updated Opportunity cannot be read"))
    }
}

fn contact_of(rec: &Value) -> Contact {
    Contact {
        id: str_at(rec, "/Id").unwrap_or_default().to_string(),
        name: str_at(rec, "/Name").unwrap_or_default().to_string(),
        email: str_at(rec, "/Email").unwrap_or_default().to_string(),
        account: str_at(rec, "/Account/Name").unwrap_or_default().to_string(),
        title: str_at(rec, "/Title").unwrap_or_default().to_string(),
    }
}

/// What differs between the deal the rep saw and the record now, in words.
fn describe_change(id: &str, seen: Option<&Deal>, now: &Deal) -> String {
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

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
