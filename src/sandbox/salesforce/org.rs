//! The emulated org's data: Opportunities, Accounts and Contacts, seeded with the demo
//! pipeline, and each record as the REST API shows it.

use super::EXTERNAL_ID_FIELD;
use crate::connectors::salesforce::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The org's restricted StageName picklist: the standard sales process's.
pub(super) fn in_picklist(name: &str) -> bool {
    STANDARD.iter().any(|(n, _)| *n == name)
}

pub(super) fn picklist() -> String {
    STANDARD.map(|(n, _)| n).join(", ")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    pub id: String,
    pub name: String,
    pub amount: f64,
    pub stage_name: String,
    pub close_date: String,
    pub account_id: Option<String>,
    pub owner_name: String,
    pub last_activity_date: Option<String>,
    pub last_modified_ms: i64,
    pub description: String,
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SfContact {
    pub id: String,
    pub name: String,
    pub email: String,
    pub title: String,
    pub account_id: Option<String>,
}

/// The org's data, as it is kept with the sandbox world.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Org {
    #[serde(default)]
    pub seeded: bool,
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
    #[serde(default)]
    pub opportunities: BTreeMap<String, Opportunity>,
    #[serde(default)]
    pub contacts: Vec<SfContact>,
    /// Upserts that created a record, by external id (a test counts them).
    #[serde(default)]
    pub creates: u64,
}

/// A Salesforce-looking 18-character id with the object's key prefix.
pub(super) fn sf_id(prefix: &str, seed: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(seed.as_bytes())).to_uppercase();
    format!("{prefix}SB{}", &h[..13])
}

pub fn datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string())
        .unwrap_or_default()
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

impl Org {
    /// The demo pipeline as this org's Opportunities, Accounts and Contacts.
    pub fn seed(&mut self, now: i64) {
        // The names a demo org's records are in (not always the name dealflow writes
        // for a stage: the demo has its proposals at "Proposal/Price Quote").
        use crate::core::domain::Stage;
        let stage = |s: Stage| {
            match s {
                Stage::Prospecting => "Prospecting",
                Stage::Qualified => "Qualification",
                Stage::Proposal => "Proposal/Price Quote",
                Stage::Negotiation => "Negotiation/Review",
                Stage::ClosedWon => "Closed Won",
                Stage::ClosedLost => "Closed Lost",
            }
            .to_string()
        };
        for d in crate::sandbox::demo::deals(now) {
            let account_id = sf_id("001", &d.account);
            self.accounts.insert(account_id.clone(), d.account.clone());
            let id = sf_id("006", &d.id);
            self.opportunities.insert(
                id.clone(),
                Opportunity {
                    id,
                    name: d.name,
                    amount: d.amount_cents as f64 / 100.0,
                    stage_name: stage(d.stage),
                    close_date: date(now + 30 * 86_400_000),
                    account_id: Some(account_id),
                    owner_name: "Dana Demo".into(),
                    last_activity_date: Some(date(d.last_touch)),
                    last_modified_ms: d.last_touch,
                    description: d.notes,
                    external_id: None,
                },
            );
        }
        for c in crate::sandbox::demo::contacts() {
            let account_id = self
                .accounts
                .iter()
                .find(|(_, n)| **n == c.account)
                .map(|(id, _)| id.clone());
            self.contacts.push(SfContact {
                id: sf_id("003", &c.id),
                name: c.name,
                email: c.email,
                title: c.title,
                account_id,
            });
        }
        self.seeded = true;
    }

    fn account(&self, id: &Option<String>) -> Value {
        match id
            .as_ref()
            .and_then(|i| self.accounts.get(i).map(|n| (i, n)))
        {
            Some((id, name)) => json!({
                "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")},
                "Id": id,
                "Name": name,
            }),
            None => Value::Null,
        }
    }

    /// The record as the API shows it (every field; queries project).
    pub fn record(&self, o: &Opportunity) -> Value {
        let closed = o.stage_name.starts_with("Closed");
        json!({
            "attributes": {"type": "Opportunity", "url": format!("/services/data/v62.0/sobjects/Opportunity/{}", o.id)},
            "Id": o.id,
            "Name": o.name,
            "Amount": o.amount,
            "StageName": o.stage_name,
            "CloseDate": o.close_date,
            "AccountId": o.account_id,
            "Account": self.account(&o.account_id),
            "Owner": {"attributes": {"type": "User"}, "Name": o.owner_name},
            "LastActivityDate": o.last_activity_date,
            "LastModifiedDate": datetime(o.last_modified_ms),
            "Description": o.description,
            "IsClosed": closed,
            "IsWon": o.stage_name == "Closed Won",
            EXTERNAL_ID_FIELD: o.external_id,
        })
    }

    pub(super) fn records(&self, object: &str) -> Option<Vec<Value>> {
        match object.to_ascii_lowercase().as_str() {
            "opportunity" => Some(
                self.opportunities
                    .values()
                    .map(|o| self.record(o))
                    .collect(),
            ),
            "contact" => Some(
                self.contacts
                    .iter()
                    .map(|c| {
                        json!({
                            "attributes": {"type": "Contact"},
                            "Id": c.id, "Name": c.name, "Email": c.email, "Title": c.title,
                            "AccountId": c.account_id,
                            "Account": self.account(&c.account_id),
                        })
                    })
                    .collect(),
            ),
            "account" => Some(
                self.accounts
                    .iter()
                    .map(|(id, name)| json!({"attributes": {"type": "Account"}, "Id": id, "Name": name}))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// An edit made in Salesforce by someone else (the sandbox's `crm set`).
    pub fn edit(&mut self, id: &str, stage: Option<&str>, amount: Option<f64>, at: i64) -> bool {
        let Some(o) = self.opportunities.get_mut(id) else {
            return false;
        };
        if let Some(s) = stage {
            o.stage_name = s.to_string();
        }
        if let Some(a) = amount {
            o.amount = a;
        }
        o.last_modified_ms = at.max(o.last_modified_ms + 1);
        true
    }
}
