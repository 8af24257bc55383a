//! Keeping a user's namespace: adopting the keys of a legacy namespace once, scanning,
//! the health `doctor` reports, and purging.

use super::scripts::ADOPT;
use super::{RedisStore, clean_namespace, json, refused_by_acl};
use crate::core::audit::{AuditEntry, NewAuditEntry};
use crate::store::{Result, Store};
use redis::Script;
use std::time::{Duration, Instant};

/// What [`RedisStore::adopt_legacy`] did.
#[derive(Debug)]
pub enum Adoption {
    /// No legacy namespace, or adopted before.
    Nothing,
    /// `keys` keys moved from the legacy namespace; `entry` audits it.
    Moved {
        from: String,
        keys: usize,
        entry: AuditEntry,
    },
    /// Both namespaces hold data: the legacy one was left where it is (audited).
    LeftInPlace { from: String, entry: AuditEntry },
}

/// The keys any namespace that was ever used holds at least one of.
pub(super) const NAMESPACE_MARKS: [&str; 7] = [
    "audit:log",
    "audit",
    "audit:head",
    "permissions",
    "deals",
    "actions",
    "contacts",
];

/// What `doctor` reports about the server.
#[derive(Debug, Clone)]
pub struct Health {
    pub latency: Duration,
    pub namespace: String,
    pub keys_in_namespace: u64,
}

impl RedisStore {
    /// Moves the namespace `legacy` (what dealflow keyed this user's data by before
    /// namespaces were verified identities: the Unix account, or "sandbox") into this
    /// one, once: the first open after sign-in finds the old keys and renames them in
    /// one script, and audits it here, naming where they came from. Who calls this
    /// must derive `legacy` from something the caller cannot choose (the uid's account),
    /// never from `$USER`, or anyone could adopt anyone's data.
    pub fn adopt_legacy(&self, legacy: &str, mut entry: NewAuditEntry) -> Result<Adoption> {
        let legacy = clean_namespace(legacy).map_err(|e| self.err(e))?;
        if legacy == self.namespace {
            return Ok(Adoption::Nothing);
        }
        let marker = self.key("adopted");
        let old = Self::prefix_of(&legacy);
        // Two cheap round trips on every open; the scan only when there is something.
        // A member's ACL user reaches only its own namespace: refused here, it is not this
        // namespace's user, and the command's own reads will say so; refused below, it
        // cannot see (or take) an old namespace: nothing to adopt with this credential.
        let marked: bool = match self.with(|c| redis::cmd("EXISTS").arg(&marker).query(c)) {
            Ok(m) => m,
            Err(e) if refused_by_acl(&e) => return Ok(Adoption::Nothing),
            Err(e) => return Err(e),
        };
        if marked {
            return Ok(Adoption::Nothing);
        }
        let probes: Vec<String> = NAMESPACE_MARKS
            .iter()
            .map(|k| format!("{old}{k}"))
            .collect();
        let present: u64 = match self.with(|c| redis::cmd("EXISTS").arg(&probes).query(c)) {
            Ok(n) => n,
            Err(e) if refused_by_acl(&e) => return Ok(Adoption::Nothing),
            Err(e) => return Err(e),
        };
        if present == 0 {
            return Ok(Adoption::Nothing);
        }
        // A legacy namespace was written before the log became a stream: move its log
        // into a stream there first, so what is adopted is in today's layout.
        self.migrate_log(&old)?;
        let keys = self.scan(&format!("{old}*"))?;
        let renamed: Vec<String> = keys.iter().map(|k| self.key(&k[old.len()..])).collect();
        let stamp = json(&serde_json::json!({ "from": legacy, "at": entry.ts }));
        let answer: String = self.with(|c| {
            let script = Script::new(ADOPT);
            let mut inv = script.key(&marker);
            for k in keys.iter().chain(&renamed) {
                inv.key(k);
            }
            inv.arg(&stamp).invoke(c)
        })?;
        let moved = match answer.as_str() {
            "moved" => true,
            "occupied" => false,
            _ => return Ok(Adoption::Nothing),
        };
        // The cached head (if any) was this namespace's before the move.
        *self.audit_head.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let serde_json::Value::Object(m) = &mut entry.detail {
            m.insert("from_namespace".into(), legacy.clone().into());
            m.insert("keys".into(), keys.len().into());
            m.insert("moved".into(), moved.into());
        }
        let entry = self.append_audit(entry)?;
        Ok(if moved {
            Adoption::Moved {
                from: legacy,
                keys: keys.len(),
                entry,
            }
        } else {
            Adoption::LeftInPlace {
                from: legacy,
                entry,
            }
        })
    }

    /// Every key matching `pattern`.
    pub(super) fn scan(&self, pattern: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut out = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                out.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// PING latency and how many keys this namespace holds, for `dealflow doctor`.
    pub fn health(&self) -> Result<Health> {
        let start = Instant::now();
        self.with(|c| redis::cmd("PING").query::<String>(c))?;
        let latency = start.elapsed();
        let pattern = self.key("*");
        let keys_in_namespace = self.with(|c| {
            let mut n = 0u64;
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                n += batch.len() as u64;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            Ok(n)
        })?;
        Ok(Health {
            latency,
            namespace: self.namespace.clone(),
            keys_in_namespace,
        })
    }

    /// Deletes every key of this user's namespace (tests, and `doctor`-guided resets).
    pub fn purge_namespace(&self) -> Result<u64> {
        let pattern = self.key("*");
        self.with(|c| {
            let mut n = 0u64;
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                if !batch.is_empty() {
                    n += redis::cmd("DEL").arg(&batch).query::<u64>(c)?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            Ok(n)
        })
    }
}
