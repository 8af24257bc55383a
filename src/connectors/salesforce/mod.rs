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
use wire::{contact_of, describe_change, http_date, malformed, parse_date, str_at, urlencode};

mod stages;
mod wire;
use super::http::{Request, RetryPolicy, send, send_with};
use crate::core::domain::{Cents, Contact, CrmRecord, Deal, Millis, Stage};
use reqwest::Method;
use serde_json::{Value, json};
pub use stages::{STANDARD, StageMap};
use std::sync::Mutex;
pub use wire::{parse_datetime, sf_error, soql_escape};

/// The API version every path names (`/services/data/v62.0/…`).
pub const API_VERSION: &str = "62.0";
/// The Opportunity field dealflow keys its creates by (an External ID text field the
/// tenant admin adds; see the README).
pub const EXTERNAL_ID_FIELD: &str = "Dealflow_Action_Id__c";

const OPPORTUNITY_FIELDS: &str = "Id, Name, Amount, StageName, CloseDate, Account.Name, \
     Owner.Name, LastActivityDate, LastModifiedDate, Description";

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
    /// Not written: the amount consent was given for (a close's), which the record must
    /// still hold.
    pub expect_amount_cents: Option<Cents>,
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
        // A server that keeps handing out locators (empty pages) must not keep us here.
        for _page in 0..1_000 {
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
        let mut out = Vec::new();
        for rec in self.query(c, token, &soql, 10_000, r).await? {
            match self.deal_of(&rec) {
                Ok(d) => out.push(d),
                // A stage of the org's own that no one mapped: that deal is left out, said
                // once in the log, rather than every read failing on one record.
                Err(ConnectorError::Crm(why)) => tracing::warn!(%why, "left out of the pipeline"),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// These Opportunities as they are now (those the rep can still see), 100 ids a query.
    pub async fn get_deals(
        &self,
        c: &reqwest::Client,
        token: &str,
        ids: &[String],
        r: &RetryPolicy,
    ) -> Result<Vec<Deal>, ConnectorError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(100) {
            let list = chunk
                .iter()
                .map(|i| format!("'{}'", soql_escape(i, false)))
                .collect::<Vec<_>>()
                .join(", ");
            let soql = format!("SELECT {OPPORTUNITY_FIELDS} FROM Opportunity WHERE Id IN ({list})");
            for rec in self.query(c, token, &soql, chunk.len(), r).await? {
                if let Ok(d) = self.deal_of(&rec) {
                    out.push(d);
                }
            }
        }
        Ok(out)
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
        let amount_moved = changes
            .expect_amount_cents
            .is_some_and(|a| a != now.amount_cents);
        if amount_moved || revision.is_some_and(|rev| current != Some(rev)) {
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
        // The write is done: a read-back that fails must not make it look undone (nor,
        // retried, like someone else's change). The record as written stands in.
        match self.get_deal(c, token, id, r).await {
            Ok(Some(d)) => Ok(d),
            _ => {
                let mut d = now;
                if let Some(s) = changes.stage {
                    d.stage = s;
                }
                if let Some(a) = changes.amount_cents {
                    d.amount_cents = a;
                }
                if let Some(n) = &changes.notes {
                    d.notes = n.clone();
                }
                Ok(d)
            }
        }
    }
}
